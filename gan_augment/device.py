"""The one device helper: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (or None) to a checked ``torch.device``."""

from __future__ import annotations

import torch

from .errors import GanAugmentError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``auto`` (or None), ``cpu``, ``cuda`` or ``cuda:N`` into a device, checking that it exists.

    ``auto`` is CUDA when available, else the CPU.

    Raises:
        GanAugmentError: If CUDA is asked for but not available, or the name is unknown.
    """
    name = "auto" if device is None else str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise GanAugmentError(f"device {name!r} is not valid: use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise GanAugmentError(f"device {name!r} asked for, but CUDA is not available: use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise GanAugmentError(
                f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type != "cpu":
        raise GanAugmentError(f"device {name!r} is not supported: use auto, cpu, cuda or cuda:N")
    return dev


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing elsewhere. For timing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
