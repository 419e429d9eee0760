"""The public entry points of training: ``fit`` (folders) and ``fit_data`` (decoded images)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterable

import torch

from ..config import TrainConfig, for_device
from ..data import ImageData, load_image_data, native_image_size, summary
from ..device import resolve_device
from ..errors import GanAugmentError
from ..io.atomic import atomic_write_json
from ..io.checkpoint import CHECKPOINT_NAME, TEACHER_NAME, TEACHER_TRAINING_NAME, load_checkpoint, reading
from ..io.lock import FolderLock
from ..io.outdir import check_apart
from ..io.record import RunRecord
from ..progress import Reporter
from ..seeds import keeps_callers_rng
from . import loop
from .board import Board, require_tensorboard
from .checkpointer import Checkpointer
from .distributed import DistContext, from_environment
from .pair import check_compile
from .plan import tell_plan
from .rundir import check_run_dir, prepare_run_dir
from .teacher import resolve_teacher, train_teacher
from .trainer import Trainer


@dataclass(frozen=True)
class RunOptions:
    """How a run of ``fit`` goes, not what it trains (that is :class:`TrainConfig`): one value through the
    layers from :func:`fit` and :func:`fit_data` to the loop.

    Attributes:
        resume: Continue the run in the output folder from its checkpoint.
        overwrite: Replace a run already there.
        compile: ``torch.compile`` the training models (see :class:`Trainer`).
        tensorboard: Also write TensorBoard logs in ``out/tensorboard``.
        sources: The folders the run's record names (``labeled``, ``unlabeled``).
        checkpoint: The run's checkpoint, when resuming and the caller has read it already.
    """

    resume: bool = False
    overwrite: bool = False
    compile: str = "off"
    tensorboard: bool = False
    sources: dict[str, str | None] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None


def fit(
    labeled: str | os.PathLike[str],
    unlabeled: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] = "runs/run",
    config: TrainConfig | None = None,
    *,
    device: str | torch.device = "auto",
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    reporter: Reporter | None = None,
    strict: bool = False,
    compile: str = "off",
    explicit: Collection[str] | None = None,
    tensorboard: bool = False,
) -> Path:
    """Train DCGAN(s) on image folders and write a run directory.

    Args:
        labeled: ImageFolder-style folder (one sub-folder of images per class).
        unlabeled: Optional folder of unlabeled images of the same kind (searched recursively).
        out: Run directory to write (``checkpoint.pt``, ``samples/``, ``metrics.jsonl``, ``config.json``).
        config: Training configuration (default: :func:`default_config`: :class:`TrainConfig`'s defaults, smaller
            on a CPU, at the labeled images' own side when all are 16 to 32 px squares). With ``resume``, the
            checkpoint's; only ``steps``, ``teacher``, ``teacher_steps`` and ``checkpoint_minutes`` are taken from it.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        resume: Continue the run in ``out`` from its checkpoint.
        overwrite: Replace a run already in ``out``.
        quiet: No progress bar or messages.
        reporter: Where progress goes (default: a terminal reporter honouring ``quiet``).
        strict: Fail on an unreadable image file instead of skipping and listing it.
        compile: ``torch.compile`` the training models (see :class:`Trainer`); honoured on resume.
        tensorboard: Also write TensorBoard logs in ``out/tensorboard`` (needs the ``tensorboard`` extra).
        explicit: With ``resume``, the settings the caller chose on purpose (the CLI: the options given), as field
            names of ``config`` or its model: one that differs from the run's is refused. Without it, the fields
            of ``config`` that differ from the defaults count as chosen, and those the run keeps are warned of.

    Returns:
        Path of the final checkpoint.

    Raises:
        GanAugmentError: On bad folders, a run directory in the way, or an unusable device.
    """
    out_dir, dev = Path(out).expanduser(), resolve_device(device)
    _check_first(out_dir, labeled, unlabeled, resume, overwrite, tensorboard)  # before the (long) decoding
    sources = {"labeled": str(Path(labeled).resolve()), "unlabeled": unlabeled and str(Path(unlabeled).resolve())}
    options = RunOptions(resume, overwrite, compile, tensorboard, sources)
    with run_lock(out_dir):  # held until the run ends: one process per run directory
        reporter = reporter or Reporter(quiet=quiet)
        return _fit_folders(labeled, unlabeled, out_dir, config, explicit, dev, reporter, strict, options)


def _fit_folders(
    labeled: str | os.PathLike[str],
    unlabeled: str | os.PathLike[str] | None,
    out_dir: Path,
    config: TrainConfig | None,
    explicit: Collection[str] | None,
    device: torch.device,
    reporter: Reporter,
    strict: bool,
    options: RunOptions,
) -> Path:
    """:func:`fit` under the run's lock: its configuration (the checkpoint's, when resuming), then the folders
    decoded, then the run."""
    config, ckpt = _run_config(out_dir, config, options.resume, explicit, device.type, labeled)
    check_compile(options.compile, config)  # before the (possibly long) decoding
    data = load_image_data(labeled, unlabeled, image_size=config.image_size, channels=config.channels, strict=strict)
    reporter.message(summary(data))
    return _fit_data(data, out_dir, config, device, reporter, dataclasses.replace(options, checkpoint=ckpt))


def _check_first(
    out_dir: Path,
    labeled: str | os.PathLike[str],
    unlabeled: str | os.PathLike[str] | None,
    resume: bool,
    overwrite: bool,
    tensorboard: bool,
) -> None:
    check_apart(out_dir, labeled, unlabeled)  # a run among its data would train on its own outputs
    check_run_dir(out_dir, resume, overwrite)
    if tensorboard:
        require_tensorboard()


def default_config(labeled: str | os.PathLike[str], device_type: str) -> TrainConfig:
    """``fit``'s configuration when none is given: the sizes for the device
    (:func:`~gan_augment.config.for_device`), at the labeled images' own side where it suits
    (:func:`~gan_augment.data.native_image_size`)."""
    return for_device(device_type, image_size=native_image_size(labeled))


def run_lock(out_dir: Path) -> FolderLock | contextlib.nullcontext[None]:
    """The lock on ``out_dir`` for this process; under torchrun only the first process takes it."""
    return FolderLock(out_dir) if int(os.environ.get("RANK", "0")) == 0 else contextlib.nullcontext()


def _run_config(
    out_dir: Path,
    config: TrainConfig | None,
    resume: bool,
    explicit: Collection[str] | None,
    device_type: str,
    labeled: str | os.PathLike[str],
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The configuration to train with, and the checkpoint when resuming (its configuration, with
    pre-training fixed at what the run resolved it to and only ``steps`` taken from ``config``;
    what else ``config`` asks for is refused or named, see :func:`fit`). A new run without ``config``
    gets :func:`default_config`."""
    if not resume:
        return config or default_config(labeled, device_type), None
    ckpt = load_checkpoint(out_dir, map_location="cpu")
    with reading(out_dir / CHECKPOINT_NAME):
        record = RunRecord.from_dict(ckpt)
        asked_then = record.config  # as given to the run (pre-training not yet resolved)
        saved = asked_then.replace(pretrain_steps=record.pretrain_steps)
    if config is None:
        return saved, ckpt
    _check_resume_settings(config, asked_then, explicit)
    # What may change on resume: the GAN's steps (to train longer) and the teacher (trained after the GAN).
    chosen = explicit if explicit is not None else {"steps"} | {k for k in RESUME_CHANGES if _changed(config, k)}
    changes = {k: getattr(config, k) for k in RESUME_CHANGES if k in chosen}
    _check_teacher_change(out_dir, saved, changes)
    return saved.replace(**changes), ckpt


def _check_teacher_change(out_dir: Path, saved: TrainConfig, changes: dict[str, Any]) -> None:
    """``--teacher none`` on ``--resume`` of a run that has a teacher (finished or interrupted) is refused:
    resuming never removes a trained teacher. Other kinds are applied (the teacher is trained again, and the
    checkpoint keeps the new choice)."""
    if changes.get("teacher") != "none" or saved.teacher == "none":
        return
    for name in (TEACHER_NAME, TEACHER_TRAINING_NAME):
        if (out_dir / name).is_file():
            raise GanAugmentError(
                f"--teacher none on --resume: the run {str(out_dir)!r} has a teacher ({name}), which resuming never "
                "removes; drop --teacher none (GANAugmentedDataset(base, run, labels='generator') does not use it), "
                "or start a new run with --overwrite or another --out"
            )


RESUME_CHANGES = ("steps", "teacher", "teacher_steps", "checkpoint_minutes")


def _changed(config: TrainConfig, name: str) -> bool:
    return bool(getattr(config, name) != _DEFAULTS.get(name))


def _settings(config: TrainConfig) -> dict[str, Any]:
    """A configuration's settings by option name (its model's included)."""
    return {**config.model.to_dict(), **{k: v for k, v in config.to_dict().items() if k != "model"}}


def _check_resume_settings(config: TrainConfig, saved: TrainConfig, explicit: Collection[str] | None) -> None:
    """Refuse settings chosen on purpose that the resumed run would not use; name, in a warning, the
    non-default settings of a Python caller's ``config`` that the run keeps instead."""
    asked, have = _settings(config), _settings(saved)
    chosen = set(explicit) if explicit is not None else {k for k, v in asked.items() if v != _DEFAULTS.get(k)}
    differ = sorted(k for k in chosen - set(RESUME_CHANGES) if k in asked and asked[k] != have.get(k))
    if not differ:
        return
    listed = ", ".join(f"{k}={asked[k]!r} (the run's: {have.get(k)!r})" for k in differ)
    if explicit is not None:
        flags = ", ".join("--" + k.replace("_", "-") for k in differ)
        raise GanAugmentError(
            f"--resume continues the run with its own settings, and {flags} differ: {listed}; drop them (only "
            f"{_listed('--' + k.replace('_', '-') for k in RESUME_CHANGES)} may change on --resume), or start a new "
            "run with --overwrite or another --out"
        )
    warnings.warn(
        f"resuming keeps the run's settings; ignored: {listed} (only {_listed(RESUME_CHANGES)} are taken)",
        stacklevel=3,
    )


def _listed(names: Iterable[str]) -> str:
    """``a, b and c``."""
    names = list(names)
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


_DEFAULTS = _settings(TrainConfig())


def fit_data(
    data: ImageData,
    out: str | os.PathLike[str],
    config: TrainConfig,
    *,
    device: str | torch.device = "auto",
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    reporter: Reporter | None = None,
    sources: dict[str, str | None] | None = None,
    checkpoint: dict[str, Any] | None = None,
    compile: str = "off",
    tensorboard: bool = False,
) -> Path:
    """Train on images already decoded (an :class:`ImageData`, e.g. a benchmark's split) into ``out``.

    ``config.image_size`` must match the images; ``checkpoint`` is the run's checkpoint when the
    caller has already read it for ``resume``; ``compile`` as in :class:`Trainer`; see :func:`fit`
    for the rest.
    """
    out_dir = Path(out).expanduser()
    reporter = reporter or Reporter(quiet=quiet)
    options = RunOptions(resume, overwrite, compile, tensorboard, sources or {}, checkpoint)
    if tensorboard:
        require_tensorboard()
    check_run_dir(out_dir, resume, overwrite)
    with run_lock(out_dir):
        return _fit_data(data, out_dir, config, device, reporter, options)


@keeps_callers_rng
def _fit_data(
    data: ImageData,
    out_dir: Path,
    config: TrainConfig,
    device: str | torch.device,
    reporter: Reporter,
    options: RunOptions,
) -> Path:
    dev = resolve_device(device)
    job, dev = from_environment(dev)  # under torchrun: this rank's place and device
    try:
        out_path = _fit_job(data, out_dir, config, job, dev, reporter, options)
    except BaseException:
        job.close(clean=False)
        raise
    job.close()
    if job.is_main:  # the teacher is one classifier: the first process trains it, after the GAN(s)
        board = Board(out_dir) if options.tensorboard else None
        try:
            train_teacher(data, out_dir, config, dev, reporter, board)
        finally:
            if board is not None:
                board.close()
    return out_path


def _fit_job(
    data: ImageData,
    out_dir: Path,
    config: TrainConfig,
    job: DistContext,
    dev: torch.device,
    reporter: Reporter,
    options: RunOptions,
) -> Path:
    if not job.is_main:
        reporter = Reporter(quiet=True)
    if data.images.shape[-1] != config.image_size:
        raise GanAugmentError(f"images are {data.images.shape[-1]} px but config.image_size={config.image_size}")
    check_run_dir(out_dir, options.resume, options.overwrite)
    trainer = Trainer(config, data, dev, reporter, dist=job, compile=options.compile)
    saver = Checkpointer.for_run(trainer, out_dir, options.sources)
    changed = False  # an option that may change on --resume (steps, the teacher) given anew: saved at once
    if options.resume:
        saved = saver.restore(trainer, options.checkpoint).config
        changed = any(getattr(saved, k) != getattr(config, k) for k in RESUME_CHANGES)
        reporter.message(f"resuming at step {trainer.state.step} of {trainer.total_steps}")
    job.barrier()  # every rank has checked the run directory before rank 0 writes to it
    if job.is_main:
        _write_run_header(out_dir, config, trainer, data, dev, options, job.world)
    job.barrier()
    if changed:  # the run's from now on, for a later --resume too (a finished GAN writes no checkpoint otherwise)
        saver.save(trainer)
    tell_plan(trainer, data, out_dir, dev, job, options.compile, reporter)
    saver.board = Board(out_dir) if options.tensorboard and job.is_main else None  # after the header: a fresh folder
    try:
        return loop.train(trainer, saver)
    finally:
        if saver.board is not None:
            saver.board.close()


def _write_run_header(
    out_dir: Path,
    config: TrainConfig,
    trainer: Trainer,
    data: ImageData,
    dev: torch.device,
    options: RunOptions,
    world: int,
) -> None:
    prepare_run_dir(out_dir, options.resume, options.overwrite)  # nothing is written before the data is known good
    atomic_write_json(
        out_dir / "config.json",
        {
            "config": config.to_dict(),
            "model_config": trainer.model_cfg.to_dict(),
            "class_names": data.class_names,
            "data": {
                **data.fingerprint(),
                "class_counts": data.class_counts,
                **{k: v for k, v in options.sources.items() if v},
            },
            "device": str(dev),
            "processes": world,
            "diffaugment": trainer.diffaugment,
            "pretrain_steps": trainer.pretrain_steps,
            "total_steps": trainer.total_steps,
            "teacher": resolve_teacher(config, data),
        },
    )
