"""The run's teacher on colour photos: self-training (:mod:`~gan_augment.train.self_training`), measured.

Both networks it is chosen between learn from the labeled images less a stratified
:data:`~gan_augment.train.teacher_choice.HELDOUT_FRACTION` of each class (at least one): the labels-only
small ResNet (self-training's round 0, the strongest labels-only classifier the package has: crops and
flips, the benchmark's baseline network) and the last round's student. Both are scored on the held-out
images; ``--teacher auto`` keeps self-training unless it measured worse by more than chance
(:meth:`~gan_augment.train.teacher_choice.Heldout.not_clearly_worse`), otherwise the labels-only network,
and the recipe kept is trained again on every labeled image: the network handed over.

Files: ``teacher-training.pt`` after each phase (a stopped run continues from the last finished phase),
``teacher.pt`` at the end, both with ``fit``'s teacher layout: ``architecture`` ``small-resnet`` and the
recipe under ``ssl_config``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import ImageData, stratified_split
from ..device import synchronize
from ..errors import CheckpointError
from ..io.checkpoint import TEACHER_NAME, TEACHER_TRAINING_NAME, reading, save_checkpoint
from ..io.teacher_training import TrainingRecord, finished_settings, load_training_record
from ..progress import Reporter
from .health import stop_signals
from .metrics import accuracy, predict_logits
from .self_training import ROUND_SHARES, SelfTrainingConfig, Student, self_training_config, train_self_training
from .teacher_choice import HELDOUT_FRACTION, Heldout, correct

KIND = "self-training"
ARCHITECTURE = "small-resnet"


def split_labeled(data: ImageData, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training, held-out) indices of the labeled images: :data:`HELDOUT_FRACTION` of each class held out."""
    labels = data.labels.numpy()
    labeled = np.flatnonzero(labels >= 0)
    tr, va = stratified_split(labels[labeled], HELDOUT_FRACTION, seed, min_held_out=1)
    return torch.as_tensor(labeled[tr]), torch.as_tensor(labeled[va])


def self_config(data: ImageData, seed: int, steps: int = 0) -> SelfTrainingConfig:
    """The measuring stage's recipe: its budget from the labeled images less the held-out ones and the pool."""
    train_idx, _ = split_labeled(data, seed)
    return self_training_config(len(train_idx), data.num_unlabeled, seed, steps)


def refit_config(data: ImageData, seed: int, steps: int, keep: bool) -> SelfTrainingConfig:
    """The last stage's recipe, on every labeled image: self-training again when it was kept, else the
    labels-only network alone (no round)."""
    config = self_training_config(int((data.labels >= 0).sum()), data.num_unlabeled, seed, steps)
    return config if keep else replace(config, round_steps=(), shares=())


def settings_of(config: SelfTrainingConfig, data: ImageData) -> dict[str, Any]:
    """What identifies a self-trained teacher: a saved one with other settings is trained again."""
    data_id = {k: v for k, v in data.fingerprint().items() if k != "files_sha256"}
    return {
        "kind": KIND,
        "ssl_config": config.to_dict(),
        "data": data_id,
        "heldout_fraction": HELDOUT_FRACTION,
        "refit": True,
    }


def network_state(kind: str, net: nn.Module, data: ImageData, config: SelfTrainingConfig) -> dict[str, Any]:
    """A trained network in the layout of a run's teacher file."""
    return {
        "kind": kind,
        "class_names": list(data.class_names),
        "image_size": int(data.images.shape[-1]),
        "channels": int(data.images.shape[1]),
        "architecture": ARCHITECTURE,
        "ssl_config": config.to_dict(),
        "d": {k: v.detach().cpu() for k, v in net.state_dict().items()},
    }


def _partial(path: Path, settings: dict[str, Any]) -> TrainingRecord | None:
    """The saved stage and phases at ``path`` when trained with ``settings`` (anything else is trained again)."""
    if not path.is_file():
        return None
    try:
        record = load_training_record(path)
        with reading(path):
            if record.settings != settings:
                return None
            training = record.training
            phase, stage = int(training["phase"]), training["stage"]
            if stage not in ("measure", "refit") or not 0 <= phase <= len(settings["ssl_config"]["round_steps"]) + 1:
                raise ValueError(f"stage {stage!r}, phase {phase} out of range")
            if stage == "refit" and not isinstance(training["choice"]["keep"], bool):
                raise ValueError("no choice recorded")
            return record
    except CheckpointError:
        return None


def train_self_teacher(
    data: ImageData, out_dir: Path, seed: int, steps: int, asked: str, device: torch.device, reporter: Reporter
) -> Path:
    """Train (or continue) the run's self-trained teacher into ``out_dir/teacher.pt``: measure it against
    the labels alone on held-out labels, choose (``asked``: the ``--teacher`` option), then train the
    chosen recipe again on every labeled image (the network handed over)."""
    config = self_config(data, seed, steps)
    settings = settings_of(config, data)
    final, partial_path = out_dir / TEACHER_NAME, out_dir / TEACHER_TRAINING_NAME
    if finished_settings(final) == settings:
        reporter.message(f"the run's self-trained teacher is trained already ({config.steps} steps and its refit)")
        return final
    saved = _partial(partial_path, settings)
    both = config.steps + refit_config(data, seed, steps, keep=True).steps  # the refit as self-training
    training = saved.training if saved is not None else {"stage": "measure", "phase": 0, "steps": both}
    t0 = time.perf_counter()
    with stop_signals(reporter) as stop:
        try:
            if training["stage"] == "measure":
                choice = _measure(data, config, training, asked, device, reporter, stop, settings, partial_path)
                both = config.steps + refit_config(data, seed, steps, bool(choice["keep"])).steps
                training = {"stage": "refit", "phase": 0, "choice": choice, "step": config.steps, "steps": both}
                TrainingRecord(settings, training).save(partial_path)
            refit = refit_config(data, seed, steps, bool(training["choice"]["keep"]))
            _, net = _stage(data, refit, "refit", training, device, reporter, stop, settings, partial_path)
        except KeyboardInterrupt:
            reporter.message("teacher interrupted: its finished phases are saved; continue with --resume")
            raise
    choice = {**training["choice"], "train_seconds": round(time.perf_counter() - t0, 1)}
    _save_teacher(data, config, refit, net, choice, settings, final)
    if partial_path.is_file() and not partial_path.is_symlink():
        partial_path.unlink()
    return final


def _stage_line(data: ImageData, config: SelfTrainingConfig, stage: str, labeled: int, phase: int) -> str:
    """What a stage trains, in one line (and where it resumes)."""
    rounds = (
        f", then {len(config.round_steps)} rounds on the {data.num_unlabeled} unlabeled images "
        f"({'+'.join(map(str, config.round_steps))} steps)"
        if config.round_steps
        else ""
    )
    return (
        ("self-training, measured first: " if stage == "measure" else "the teacher again on every labeled image: ")
        + f"a small ResNet on {labeled} labeled images ({config.labels_steps} steps){rounds}"
        + (f"; resuming after phase {phase}" if phase else "")
    )


def _stage(
    data: ImageData,
    config: SelfTrainingConfig,
    stage: str,
    training: dict[str, Any],
    device: torch.device,
    reporter: Reporter,
    stop: Any,
    settings: dict[str, Any],
    partial: Path,
) -> tuple[nn.Module, nn.Module]:
    """One stage (``measure``: on the labels less the held-out ones; ``refit``: on every label) from where
    ``training`` left it; its labels-only network and last network. Saved after every phase."""
    labeled = split_labeled(data, config.seed)[0] if stage == "measure" else torch.nonzero(data.labels >= 0).flatten()
    phase = int(training["phase"]) if training["stage"] == stage else 0
    reporter.message(_stage_line(data, config, stage, len(labeled), phase))

    # Steps counted over both stages, as ``info`` shows an interrupted teacher's.
    before, total_steps = (int(settings["ssl_config"]["steps"]) if stage == "refit" else 0), int(training["steps"])

    def save(done: int, first: nn.Module, current: nn.Module) -> None:
        step = before + config.labels_steps + sum(config.round_steps[: done - 1])
        state = {
            **{k: v for k, v in training.items() if k == "choice"},
            "stage": stage,
            "phase": done,
            "step": step,
            "steps": total_steps,
            "labels_only": first.state_dict(),
            "network": current.state_dict(),
        }
        TrainingRecord(settings, state).save(partial)

    images, labels, pool = data.images[labeled], data.labels[labeled], data.images[data.labels < 0]
    start = (phase, training if phase else None)
    return train_self_training(images, labels, pool, config, device, reporter, start=start, save=save, stop=stop)


def _measure(
    data: ImageData,
    config: SelfTrainingConfig,
    training: dict[str, Any],
    asked: str,
    device: torch.device,
    reporter: Reporter,
    stop: Any,
    settings: dict[str, Any],
    partial: Path,
) -> dict[str, Any]:
    """Train the measuring stage, score both networks on the held-out images, say which is kept and why."""
    first, last = _stage(data, config, "measure", training, device, reporter, stop, settings, partial)
    held = split_labeled(data, config.seed)[1]
    heldout = Heldout.of(correct(last, data, held), correct(first, data, held))
    keep = heldout.not_clearly_worse() or asked == KIND
    why = (
        "it did not measure worse than the labels alone by more than chance"
        if heldout.not_clearly_worse()
        else "--teacher self-training asks for it, though it measured worse than the labels alone"
        if keep
        else "the self-trained network measured worse by more than chance, so it is not handed over"
    )
    kept_words = "self-training" if keep else "the labels-only network"
    reporter.message(
        f"teacher {heldout.line('self-trained')}: keeping {kept_words}; {why}; now trained again on every labeled image"
    )
    return {"keep": keep, "heldout": {**heldout.to_dict(), "kept": "teacher" if keep else "labels_only"}}


def _save_teacher(
    data: ImageData,
    config: SelfTrainingConfig,
    refit: SelfTrainingConfig,
    net: nn.Module,
    choice: dict[str, Any],
    settings: dict[str, Any],
    final: Path,
) -> None:
    labeled = data.labels >= 0
    metrics = {
        "steps": config.steps + refit.steps,
        "architecture": ARCHITECTURE,
        "num_labeled": int(labeled.sum()),
        "num_unlabeled": data.num_unlabeled if choice["keep"] else 0,
        # On the labeled images, every one of which trained it: optimistic.
        "labeled_accuracy": accuracy(net, data.images[labeled], data.labels[labeled]),
        "train_seconds": choice["train_seconds"],
        "heldout": choice["heldout"],
    }
    state = network_state(KIND if choice["keep"] else "supervised", net, data, refit)
    save_checkpoint({**state, "settings": settings, "metrics": metrics}, final)


PROBE_STEPS = 3  # timed after one warm-up step


def self_training_seconds(data: ImageData, config: SelfTrainingConfig, device: torch.device) -> tuple[float, float]:
    """Seconds a training step and seconds an image of labeling the pool, timed on a throwaway network
    (random streams forked: training is the same with or without this)."""
    channels, size = int(data.images.shape[1]), int(data.images.shape[-1])
    classes = len(data.class_names)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        student = Student(config, channels, classes, 1, device)
        images = torch.randint(0, 256, (config.batch_size, channels, size, size), dtype=torch.uint8)
        labels = torch.arange(config.batch_size) % classes
        soft = torch.full((config.batch_size, classes), 1.0 / classes)
        student.steps = 1 + PROBE_STEPS
        ticks: list[float] = []
        student.train((images, labels), (images, soft), True, lambda step, loss: ticks.append(_now(device)))
        per_step = (ticks[-1] - ticks[0]) / PROBE_STEPS
        t0 = _now(device)
        predict_logits(student.model, images.repeat(4, 1, 1, 1), device)
        per_image = (_now(device) - t0) / (4 * config.batch_size)
    return per_step, per_image


def _now(device: torch.device) -> float:
    synchronize(device)
    return time.perf_counter()


def phases_left(data: ImageData, out_dir: Path | None, seed: int, steps: int) -> list[tuple[str, int, bool]] | None:
    """``(stage, steps, labels the pool first)`` of each phase still to train in ``out_dir`` (None: a teacher
    not started), both stages (the refit as self-training: what it usually is); None when it is trained already."""
    config = self_config(data, seed, steps)
    settings = settings_of(config, data)
    if out_dir is not None and finished_settings(out_dir / TEACHER_NAME) == settings:
        return None
    saved = _partial(out_dir / TEACHER_TRAINING_NAME, settings) if out_dir is not None else None
    training = saved.training if saved is not None else {"stage": "measure", "phase": 0}
    keep = bool(training.get("choice", {}).get("keep", True))
    refit = refit_config(data, seed, steps, keep)
    stages = [("measure", config), ("refit", refit)][training["stage"] == "refit" :]
    left = []
    for stage, cfg in stages:
        done = int(training["phase"]) if stage == training["stage"] else 0
        left += [(stage, n, i > 0) for i, n in enumerate([cfg.labels_steps, *cfg.round_steps])][done:]
    return left


def self_teacher_stages(
    data: ImageData, out_dir: Path | None, seed: int, steps: int, device: torch.device
) -> list[tuple[str, int, float]]:
    """``(stage, steps, seconds)`` of each stage still to train (labeling the pool included), timed here
    on a throwaway student; empty when the teacher is trained already."""
    left = phases_left(data, out_dir, seed, steps) or []
    if not left:
        return []
    per_step, per_image = self_training_seconds(data, self_config(data, seed, steps), device)
    stages: dict[str, list[float]] = {}
    for stage, n, relabel in left:
        total = stages.setdefault(stage, [0, 0.0])
        total[0] += n
        total[1] += per_step * n + (per_image * data.num_unlabeled if relabel else 0.0)
    return [(stage, int(n), s) for stage, (n, s) in stages.items()]


def self_teacher_plan(
    data: ImageData, out_dir: Path | None, seed: int, steps: int, device: torch.device
) -> list[tuple[str, str, float]]:
    """``(phase, what it trains, seconds)`` of each stage of the self-trained teacher still to train, timed
    here (``out_dir`` None: a teacher not started); empty when it is trained already."""
    n, pool = int((data.labels >= 0).sum()), data.num_unlabeled
    what = {
        "measure": f"self-training a small ResNet on {1 - HELDOUT_FRACTION:.0%} of each class's labels and the "
        f"{pool} unlabeled images ({len(ROUND_SHARES)} rounds), scored on the rest against the labels alone",
        "refit": f"the recipe kept, trained again on all {n} labeled images: the teacher handed over",
    }
    name = {"measure": "teacher, measured", "refit": "teacher, final"}
    return [
        (name[stage], f"{steps_left} steps: {what[stage]}", seconds)
        for stage, steps_left, seconds in self_teacher_stages(data, out_dir, seed, steps, device)
    ]
