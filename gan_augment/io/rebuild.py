"""Rebuilding a run's generator or discriminator from its checkpoint, ready to sample or score."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import ModelConfig
from ..device import resolve_device
from ..errors import CheckpointError
from ..models import Discriminator, Generator, PerClassDiscriminator, PerClassGenerator
from .checkpoint import load_checkpoint, materialize, reading
from .classifier_record import NetworkRecord, classifier_record
from .record import RunRecord, is_run_checkpoint, load_run


@dataclass(frozen=True)
class GeneratorInfo:
    """What a loaded generator produces.

    Attributes:
        mode: The training mode (``per-class``, ``conditional`` or ``unconditional``).
        class_names: Class names in label order (empty when the generator is unconditional).
        image_size: Side of the images in pixels.
        channels: 1 or 3.
        step: Training step of the checkpoint.
        model: The architecture.
        checkpoint: Path of the checkpoint file.
    """

    mode: str
    class_names: list[str]
    image_size: int
    channels: int
    step: int
    model: ModelConfig
    checkpoint: str


def _require_pretrained(run: RunRecord, where: str) -> dict[str, Any]:
    kept = run.pretrained
    if not isinstance(kept, dict) or not {"g_ema", "d"} <= set(kept):
        raise CheckpointError(
            f"{where!r} holds no pre-trained models: only per-class runs past their pre-training keep them "
            "(runs written before gan-augment kept them lack them too: train the run again)"
        )
    return kept


def _pretrained(run: RunRecord, kept: dict[str, Any], part: str) -> nn.Module:
    """The shared pre-trained generator (``g_ema``) or discriminator (``d``) a per-class run kept."""
    return materialize(lambda: Generator(run.model) if part == "g_ema" else Discriminator(run.model), kept[part])


def _models(model_cfg: ModelConfig, phase: str, models: list[dict[str, Any]], part: str) -> nn.Module:
    """The generator(s) (``part`` ``g`` or ``g_ema``) or discriminator(s) (``d``) of a run's model states,
    as one module (per class: ``PerClassGenerator`` / ``PerClassDiscriminator``)."""
    build = Discriminator if part == "d" else Generator
    modules = [materialize(lambda: build(model_cfg), entry[part]) for entry in models]
    if phase == "per-class":
        return PerClassDiscriminator(modules) if part == "d" else PerClassGenerator(modules)
    return modules[0]


def build_generator(ckpt: dict[str, Any] | RunRecord, ema: bool = True) -> nn.Module:
    """Rebuild the sampling generator (EMA weights by default) from a run (or its checkpoint dict)."""
    run = ckpt if isinstance(ckpt, RunRecord) else RunRecord.from_dict(ckpt)
    key = "g_ema" if ema and run.models[0].get("g_ema") is not None else "g"
    return _models(run.model, run.state.phase, run.models, key)


def build_discriminator(ckpt: dict[str, Any] | RunRecord) -> nn.Module:
    """Rebuild the discriminator(s) of a run, or of a dict with its ``model_config``, ``phase`` and
    ``models`` (what a ``classify --method features`` classifier keeps); per class: one module with ``D(x, y)``."""
    if isinstance(ckpt, RunRecord):
        return _models(ckpt.model, ckpt.state.phase, ckpt.models, "d")
    return _models(ModelConfig.from_dict(ckpt["model_config"]), str(ckpt["phase"]), list(ckpt["models"]), "d")


def load_discriminator(
    path_or_run_dir: str | os.PathLike[str],
    device: str | torch.device | None = None,
    pretrained: bool = False,
    run: RunRecord | None = None,
) -> nn.Module:
    """Load a run's discriminator(s) in eval mode (for scoring or filtering samples, or features), or the
    discriminator of an ssl classifier (``classifier.pt`` of ``gan-augment classify --method ssl``, or a
    run's ``teacher.pt``).
    ``pretrained``: a per-class run's shared discriminator at the end of pre-training on every image.
    ``run``: the run's record when the caller has read it already (the file is not read again).

    Raises:
        CheckpointError: If the checkpoint is missing, untrusted or unreadable.
    """
    if run is None:
        ckpt = load_checkpoint(path_or_run_dir, map_location="cpu")
        record = None if is_run_checkpoint(ckpt) else classifier_record(ckpt, path_or_run_dir)
        if isinstance(record, NetworkRecord):  # classify --method ssl's classifier, or a run's teacher
            with reading(path_or_run_dir):
                return record.build().to(resolve_device(device))
        run = load_run(path_or_run_dir, ckpt)
    if pretrained:
        kept = _require_pretrained(run, str(path_or_run_dir))
    with reading(path_or_run_dir):
        d = _pretrained(run, kept, "d") if pretrained else build_discriminator(run)
    return d.to(resolve_device(device)).eval()


def load_generator(
    path_or_run_dir: str | os.PathLike[str],
    device: str | torch.device | None = None,
    ema: bool = True,
    pretrained: bool = False,
    run: RunRecord | None = None,
) -> tuple[nn.Module, GeneratorInfo]:
    """Load a ready-to-sample generator (eval mode) and its metadata.

    Args:
        path_or_run_dir: A run directory from ``gan-augment fit`` or its ``checkpoint.pt``.
        device: Where to put the generator (default: CUDA when available, else CPU).
        ema: Use the exponential-moving-average weights (what sampling should use).
        pretrained: A per-class run's shared generator as it was at the end of pre-training on every
            image (labeled and unlabeled): unconditional (``info.class_names`` empty), EMA weights.
        run: The run's record when the caller has read it already (the file is not read again).

    Returns:
        ``(generator, info)``; call ``generator(z, y)`` or, simpler, :func:`sample`.

    Raises:
        CheckpointError: If the checkpoint is missing, untrusted or unreadable.
    """
    run = run if run is not None else load_run(path_or_run_dir)
    if pretrained:
        kept = _require_pretrained(run, str(path_or_run_dir))
    with reading(path_or_run_dir):
        gen = _pretrained(run, kept, "g_ema") if pretrained else build_generator(run, ema=ema)
        info = GeneratorInfo(
            mode=run.mode,
            class_names=list(run.class_names) if run.conditional and not pretrained else [],
            image_size=run.image_size,
            channels=run.channels,
            step=run.pretrain_steps if pretrained else run.state.step,
            model=run.model,
            checkpoint=str(path_or_run_dir),
        )
    return gen.to(resolve_device(device)).eval(), info
