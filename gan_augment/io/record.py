"""The run record: the one schema of a run's ``checkpoint.pt``, written by training and read by every command.

A checkpoint on disk stays a plain dict of tensors and built-in types (loaded with
``weights_only=True``); :class:`RunRecord` is that dict with types: :meth:`RunRecord.to_dict`
writes it and :meth:`RunRecord.from_dict` reads it back, checking what it reads. Checkpoints of
format 1 written before the record existed (without ``train_state``, or with only part of it)
read the same way.

The layout (format 1)::

    format_version, package_version   stamped by save_checkpoint
    config, model_config              TrainConfig / ModelConfig as dicts
    mode                              config.mode (kept for readers of the raw dict)
    step, phase, elapsed_s            TrainState: where training is
    train_state                       TrainState: lr_g, lr_d, batch_size, rollbacks, oom_retries
    pretrain_steps, total_steps       the phases' lengths, resolved
    models                            one {g, g_ema, d, opt_g, opt_d} per model, in class order
    class_names, image_size, channels, normalization, diffaugment
    data                              the images' fingerprint and the folders they came from
    rng                               random states (per rank in a multi-process job)
    pretrained                        per-class runs past pre-training: the shared {g_ema, d}
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import MAX_CLASSES, ModelConfig, TrainConfig
from ..errors import CheckpointError, UsageError
from .checkpoint import FORMAT_VERSION, load_checkpoint, reading

NORMALIZATION = {"mean": 0.5, "std": 0.5, "range": [-1.0, 1.0]}  # images in [-1, 1]: x = (pixel - 0.5) / 0.5
REQUIRED_CONFIG = ("mode", "image_size", "steps", "batch_size")  # what no reader may guess
PHASES = ("pretrain", "per-class", "conditional", "unconditional")


@dataclass
class TrainState:
    """What changes while a run trains; the checkpoint holds all of it and resuming restores all of it.

    Attributes:
        step: Steps done (both phases together).
        phase: ``pretrain``, ``per-class``, ``conditional`` or ``unconditional``.
        lr_g, lr_d: The learning rates now (a roll-back halves both).
        batch_size: The batch now (running out of GPU memory halves it).
        rollbacks: Roll-backs spent of ``config.max_rollbacks``.
        oom_retries: Out-of-memory retries spent (at most three).
        elapsed_s: Seconds of training so far.
    """

    step: int
    phase: str
    lr_g: float
    lr_d: float
    batch_size: int
    rollbacks: int = 0
    oom_retries: int = 0
    elapsed_s: float = 0.0

    @classmethod
    def start(cls, config: TrainConfig, phase: str) -> TrainState:
        """The state of a run about to take its first step."""
        return cls(step=0, phase=phase, lr_g=config.lr_g, lr_d=config.lr_d, batch_size=config.batch_size)

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise UsageError(f"phase {self.phase!r} is not one of {', '.join(PHASES)}")
        if self.step < 0 or not 1 <= self.batch_size <= 65536 or self.rollbacks < 0 or self.oom_retries < 0:
            raise UsageError(f"impossible training state {self}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RunRecord:
    """A run's checkpoint with types (see the module's docstring for the layout on disk).

    ``models`` and ``pretrained`` hold the weights as written (checked with
    :func:`~gan_augment.io.checkpoint.check_weights` where they are loaded into modules); ``rng``
    is the random states as :class:`~gan_augment.train.Trainer` wrote them.
    """

    config: TrainConfig
    model: ModelConfig
    state: TrainState
    pretrain_steps: int
    total_steps: int
    class_names: list[str]
    image_size: int
    channels: int
    diffaugment: bool
    data: dict[str, Any]
    models: list[dict[str, Any]]
    rng: dict[str, Any] = field(default_factory=dict)
    pretrained: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION
    package_version: str | None = None

    @property
    def mode(self) -> str:
        return self.config.mode

    @property
    def conditional(self) -> bool:
        """Whether the run's generator draws chosen classes (per-class past pre-training, or conditional)."""
        return self.state.phase in ("per-class", "conditional")

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint dict (format 1; ``save_checkpoint`` stamps the versions)."""
        state = self.state
        kept = {"pretrained": self.pretrained} if self.pretrained is not None else {}
        return {
            "config": self.config.to_dict(),
            "model_config": self.model.to_dict(),
            "mode": self.config.mode,
            "phase": state.phase,
            "step": state.step,
            "pretrain_steps": self.pretrain_steps,
            "total_steps": self.total_steps,
            "models": self.models,
            "class_names": list(self.class_names),
            "image_size": self.image_size,
            "channels": self.channels,
            "normalization": dict(NORMALIZATION),
            "diffaugment": self.diffaugment,
            "data": self.data,
            "train_state": {k: getattr(state, k) for k in ("lr_g", "lr_d", "batch_size", "rollbacks", "oom_retries")},
            "rng": self.rng,
            "elapsed_s": state.elapsed_s,
            **kept,
        }

    @classmethod
    def from_dict(cls, ckpt: dict[str, Any]) -> RunRecord:
        """Read a checkpoint dict, checking the type of everything read (call it inside
        :func:`~gan_augment.io.checkpoint.reading`, which names the file when something is wrong)."""
        missing = set(REQUIRED_CONFIG) - set(_dict(ckpt["config"], "config"))
        if missing:  # TrainConfig.from_dict would fill them with today's defaults: not this run's
            raise KeyError(f"its config lacks {', '.join(sorted(missing))}")
        config = TrainConfig.from_dict(ckpt["config"])
        saved = dict(ckpt.get("train_state") or {})  # before train_state: the rates and batch in the config
        state = TrainState(
            step=_int(ckpt["step"], "step"),
            phase=str(ckpt["phase"]),
            lr_g=float(saved.get("lr_g", config.lr_g)),
            lr_d=float(saved.get("lr_d", config.lr_d)),
            batch_size=_int(saved.get("batch_size", config.batch_size), "batch_size"),
            rollbacks=_int(saved.get("rollbacks", 0), "rollbacks"),
            oom_retries=_int(saved.get("oom_retries", 0), "oom_retries"),
            elapsed_s=float(ckpt.get("elapsed_s", 0.0)),
        )
        names = check_class_names(ckpt["class_names"])
        models = ckpt["models"]
        if not isinstance(models, list) or not models or not all(isinstance(m, dict) for m in models):
            raise TypeError("models is not a list of model states")
        pretrained = ckpt.get("pretrained")
        record = cls(
            config=config,
            model=ModelConfig.from_dict(_dict(ckpt["model_config"], "model_config")),
            state=state,
            pretrain_steps=_int(ckpt["pretrain_steps"], "pretrain_steps"),
            total_steps=_int(ckpt["total_steps"], "total_steps"),
            class_names=list(names),
            image_size=_int(ckpt["image_size"], "image_size"),
            channels=_int(ckpt["channels"], "channels"),
            diffaugment=bool(ckpt.get("diffaugment", False)),
            data=_dict(ckpt.get("data") or {}, "data"),
            models=models,
            rng=_dict(ckpt.get("rng") or {}, "rng"),
            pretrained=_dict(pretrained, "pretrained") if pretrained is not None else None,
            format_version=_int(ckpt.get("format_version", FORMAT_VERSION), "format_version"),
            package_version=None if ckpt.get("package_version") is None else str(ckpt["package_version"]),
        )
        record.check_parts()
        return record

    def check_parts(self) -> None:
        """The record's parts checked against each other before anything is built from them: as many
        models as its phase has (one per class name for per-class), one image size and channel count,
        step counts that are not negative. Raises ValueError naming the first that does not fit."""
        per_class = self.state.phase == "per-class"
        expected = len(self.class_names) if per_class else 1
        if len(self.models) != expected:
            raise ValueError(f"{len(self.models)} models for {len(self.class_names)} class names ({self.state.phase})")
        if self.conditional and not self.class_names:
            raise ValueError("no class names for a conditional generator")
        if not (self.image_size == self.model.image_size == self.config.image_size):
            raise ValueError(f"image size {self.image_size}, but its model's is {self.model.image_size}")
        if self.channels != self.model.channels:
            raise ValueError(f"{self.channels} channels, but its model's are {self.model.channels}")
        if self.pretrain_steps < 0 or self.total_steps < 0 or self.format_version < 1:
            raise ValueError("negative step counts or format version")


def check_class_names(names: Any) -> list[str]:
    """``names`` if they are a list of distinct strings (at most ``MAX_CLASSES``); TypeError or ValueError
    otherwise (inside :func:`reading`, one CheckpointError naming the file)."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TypeError("class_names is not a list of strings")
    if len(set(names)) != len(names) or len(names) > MAX_CLASSES:
        raise ValueError(f"class_names has duplicates or more than {MAX_CLASSES} names")
    return list(names)


def _int(value: Any, name: str) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_floating_point:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} is a {type(value).__name__}, not a whole number")
    return value


def _dict(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{name} is a {type(value).__name__}, not a dict")
    return value


def is_run_checkpoint(ckpt: dict[str, Any]) -> bool:
    """Whether a loaded checkpoint is a run of ``fit`` (not a classifier or a teacher, which have a ``kind``)."""
    return ckpt.get("kind") is None


def load_run(path_or_run_dir: str | os.PathLike[str], ckpt: dict[str, Any] | None = None) -> RunRecord:
    """Load a run's checkpoint as a :class:`RunRecord` (tensors on the CPU; ``ckpt``: the checkpoint
    dict when the caller has loaded it already).

    Raises:
        CheckpointError: If the file is missing, untrusted, unreadable, not a run of ``fit``, or
            holds something of the wrong type.
    """
    if ckpt is None:
        ckpt = load_checkpoint(path_or_run_dir, map_location="cpu")
    if not is_run_checkpoint(ckpt):
        raise CheckpointError(
            f"{str(path_or_run_dir)!r} holds a classifier, not a run of `gan-augment fit`: pass a run directory of fit"
        )
    with reading(path_or_run_dir):
        return RunRecord.from_dict(ckpt)
