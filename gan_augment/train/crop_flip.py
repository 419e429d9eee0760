"""The classic augmentation (reflect-pad, random crop, flip) for whole uint8 batches on any device: the
classifier's device path (``evaluate``) and the self-trained colour teacher (``train.self_training``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UsageError
from ..io.images import to_unit


def crop_pad(image_size: int) -> int:
    """Padding on each side before the random crop: 1/8 of the image size (at least 1 pixel)."""
    return max(1, image_size // 8)


def crop_flip(
    padded: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flipped: torch.Tensor, size: int
) -> torch.Tensor:
    """Crop ``size``×``size`` windows at (``top``, ``left``) from each padded image (B, C, H', W'), mirrored
    where ``flipped``; one gather for the whole batch. Returns (B, C, size, size)."""
    b = padded.shape[0]
    dev = padded.device
    ar = torch.arange(size, device=dev)
    rows = top.to(dev)[:, None] + ar  # (B, size)
    cols = left.to(dev)[:, None] + torch.where(flipped.to(dev)[:, None], size - 1 - ar, ar)
    out = padded[
        torch.arange(b, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]
    ]  # (B, size, size, C)
    return out.permute(0, 3, 1, 2)


def device_augmentation(images: torch.Tensor, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """:func:`classic_augmentation` for a uint8 batch (B, C, H, W) on any device, in one pass.

    Reflect-pads by :func:`crop_pad` (OpenCV's BORDER_REFLECT_101, as the albumentations pipeline),
    crops a random window of the original size, flips half the images horizontally when ``flip``,
    and scales to [-1, 1]. Random draws come from ``generator`` (a CPU generator).
    """
    b, _, h, w = images.shape
    if h != w:
        raise UsageError(f"device augmentation needs square images, got {h}×{w}")
    pad = crop_pad(h)
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="reflect")
    top = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    flipped = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    return to_unit(crop_flip(padded, top, left, flipped, h))
