"""The run's teacher on colour photos: self-training (:mod:`~gan_augment.train.self_training`), measured.

Both networks it is chosen between learn from the labeled images less a stratified
:data:`~gan_augment.train.teacher_choice.HELDOUT_FRACTION` of each class (at least one): the labels-only
small ResNet (self-training's round 0, the strongest labels-only classifier the package has: crops and
flips, the benchmark's baseline network) and the last round's student. Both are scored on the held-out
images; ``--teacher auto`` hands over the student unless it measured worse
(:meth:`~gan_augment.train.teacher_choice.Heldout.not_worse`), otherwise the labels-only network.

Files: ``teacher-training.pt`` after each phase (a stopped run continues from the last finished phase),
``teacher.pt`` at the end, both with ``fit``'s teacher layout: ``architecture`` ``small-resnet`` and the
recipe under ``ssl_config``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import ImageData, stratified_split
from ..device import synchronize
from ..errors import CheckpointError
from ..io.checkpoint import TEACHER_NAME, TEACHER_TRAINING_NAME, load_checkpoint, reading, save_checkpoint
from ..progress import Reporter, duration
from .health import stop_signals
from .metrics import accuracy, predict_logits
from .self_training import SelfTrainingConfig, Student, self_training_config, train_self_training
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
    """The run's self-training recipe: its budget from the images it will learn from."""
    train_idx, _ = split_labeled(data, seed)
    return self_training_config(len(train_idx), data.num_unlabeled, seed, steps)


def settings_of(config: SelfTrainingConfig, data: ImageData) -> dict[str, Any]:
    """What identifies a self-trained teacher: a saved one with other settings is trained again."""
    data_id = {k: v for k, v in data.fingerprint().items() if k != "files_sha256"}
    return {"kind": KIND, "ssl_config": config.to_dict(), "data": data_id, "heldout_fraction": HELDOUT_FRACTION}


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


def _finished(path: Path, settings: dict[str, Any]) -> bool:
    """Whether ``path`` holds a finished teacher trained with ``settings`` (kept as it is)."""
    try:
        return path.is_file() and load_checkpoint(path, map_location="cpu").get("settings") == settings
    except CheckpointError:
        return False


def _partial(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The saved phases at ``path`` when trained with ``settings`` (anything else is trained again)."""
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path, map_location="cpu")
        with reading(path):
            if state.get("settings") != settings:
                return None
            phase = int(state["training"]["phase"])
            if not 1 <= phase <= len(settings["ssl_config"]["round_steps"]) + 1:
                raise ValueError(f"phase {phase} out of range")
            return state
    except CheckpointError:
        return None


def train_self_teacher(
    data: ImageData, out_dir: Path, seed: int, steps: int, asked: str, device: torch.device, reporter: Reporter
) -> Path:
    """Train (or continue) the run's self-trained teacher into ``out_dir/teacher.pt`` and choose what it
    hands over (``asked``: the ``--teacher`` option)."""
    config = self_config(data, seed, steps)
    settings = settings_of(config, data)
    final, partial_path = out_dir / TEACHER_NAME, out_dir / TEACHER_TRAINING_NAME
    if _finished(final, settings):
        reporter.message(f"the run's self-trained teacher is trained already ({config.steps} steps)")
        return final
    train_idx, held = split_labeled(data, seed)
    saved = _partial(partial_path, settings)
    phase = int(saved["training"]["phase"]) if saved is not None else 0
    reporter.message(
        f"training the run's teacher by self-training: a small ResNet on {len(train_idx)} labeled images "
        f"({config.labels_steps} steps; {len(held)} held out to measure it), then {len(config.round_steps)} rounds "
        f"on the {data.num_unlabeled} unlabeled images ({'+'.join(map(str, config.round_steps))} steps)"
        + (f"; resuming after phase {phase}" if saved is not None else "")
    )

    def save(done: int, first: nn.Module, current: nn.Module) -> None:
        training = {"phase": done, "step": config.labels_steps + sum(config.round_steps[: done - 1]),
                    "labels_only": first.state_dict(), "network": current.state_dict()}  # fmt: skip
        save_checkpoint({"settings": settings, "training": training}, partial_path)

    t0 = time.perf_counter()
    with stop_signals(reporter) as stop:
        try:
            first, last = train_self_training(
                data.images[train_idx], data.labels[train_idx], data.images[data.labels < 0], config, device,
                reporter, start=(phase, saved["training"] if saved is not None else None), save=save, stop=stop,
            )  # fmt: skip
        except KeyboardInterrupt:
            reporter.message("teacher interrupted: its finished rounds are saved; continue with --resume")
            raise
    networks = {"labels_only": first, "teacher": last, "train_seconds": round(time.perf_counter() - t0, 1)}
    _choose_and_save(data, config, held, networks, asked, final, reporter)
    if partial_path.is_file() and not partial_path.is_symlink():
        partial_path.unlink()
    return final


def _choose_and_save(
    data: ImageData,
    config: SelfTrainingConfig,
    held: torch.Tensor,
    networks: dict[str, Any],
    asked: str,
    final: Path,
    reporter: Reporter,
) -> None:
    """Score both networks on the held-out images, say which is kept and why, and write ``teacher.pt``."""
    first, last = networks["labels_only"], networks["teacher"]
    heldout = Heldout.of(correct(last, data, held), correct(first, data, held))
    keep = heldout.not_worse() or asked == KIND
    why = (
        "it did not measure worse than the labels alone"
        if heldout.not_worse()
        else "--teacher self-training asks for it, though it measured worse than the labels alone"
        if keep
        else "the self-trained network measured worse, so it is not handed over"
    )
    kept_words = "it" if keep else "the labels-only network"
    reporter.message(f"teacher {heldout.line('self-trained')}: keeping {kept_words}; {why}")
    kept = last if keep else first
    labeled = data.labels >= 0
    metrics = {
        "steps": config.steps if keep else config.labels_steps,
        "architecture": ARCHITECTURE,
        "num_labeled": int((data.labels >= 0).sum()) - len(held),
        "num_unlabeled": data.num_unlabeled if keep else 0,
        "labeled_accuracy": accuracy(kept, data.images[labeled], data.labels[labeled]),
        "train_seconds": networks["train_seconds"],
        "heldout": {**heldout.to_dict(), "kept": "teacher" if keep else "labels_only"},
    }
    state = network_state(KIND if keep else "supervised", kept, data, config)
    save_checkpoint({**state, "settings": settings_of(config, data), "metrics": metrics}, final)


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


def self_teacher_expectation(data: ImageData, out_dir: Path, seed: int, steps: int, device: torch.device) -> str:
    """One line on the self-trained teacher before anything trains: its phases and their time, timed
    here; empty when it is trained already."""
    config = self_config(data, seed, steps)
    settings = settings_of(config, data)
    if _finished(out_dir / TEACHER_NAME, settings):
        return ""
    saved = _partial(out_dir / TEACHER_TRAINING_NAME, settings)
    done = int(saved["training"]["phase"]) if saved is not None else 0
    phases = [config.labels_steps, *config.round_steps][done:]
    per_step, per_image = self_training_seconds(data, config, device)
    rounds = len(phases) - (done == 0)  # the phases that label the pool first
    seconds = per_step * sum(phases) + per_image * data.num_unlabeled * rounds
    return (
        f"then the run's teacher by self-training: {len(phases)} phases of a small ResNet "
        f"({'+'.join(map(str, phases))} steps, {per_step:.3f} s a step, timed), each round labeling the "
        f"{data.num_unlabeled} unlabeled images: "
        f"about {duration(seconds)}"
    )
