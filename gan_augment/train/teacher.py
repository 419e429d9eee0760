"""The run's teacher: the classifier ``fit`` trains after the GAN(s) and keeps in the run.

By default, on colour photos with an unlabeled pool, a small ResNet self-trained on the pool and measured
against the labels alone (:mod:`~gan_augment.train.self_teacher`); on gray images with a pool, the
semi-supervised GAN's discriminator (``classify --method ssl``'s recipe, trained on every labeled image and
the whole pool); without an unlabeled folder, a network on the labels alone. ``GANAugmentedDataset(base_ds,
run)`` labels its images with it, so the user's own network learns what the teacher learned from the unlabeled pool.

Files: ``teacher.pt`` (the finished teacher: its averaged weights, settings and metrics) and, while
it trains, ``teacher-training.pt`` (everything to continue exactly, written every
``checkpoint_every`` iterations and on Ctrl-C; removed once ``teacher.pt`` is written).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import SSLConfig, TrainConfig
from ..data import ImageData
from ..device import synchronize
from ..errors import CheckpointError, UsageError
from ..io.checkpoint import TEACHER_NAME, TEACHER_TRAINING_NAME, reading, save_checkpoint
from ..io.classifier_record import build_network
from ..io.teacher_training import TrainingRecord, finished_settings, load_training_record
from ..progress import Reporter, duration
from .board import Board
from .health import stop_signals
from .metrics import accuracy
from .self_teacher import KIND, self_teacher_plan, train_self_teacher
from .ssl import SSLRun, classifier_state, default_ssl_steps, start_ssl
from .ssl_steps import run_steps
from .teacher_choice import (
    HELDOUT_FRACTION,
    Heldout,
    can_hold_out,
    correct,
    labels_only_config,
    train_labels_only,
)


def resolve_teacher(config: TrainConfig, data: ImageData) -> str:
    """``self-training``, ``ssl``, ``supervised`` or ``none``: ``auto`` is ``self-training`` on colour images
    with unlabeled ones and two labeled images a class or more (one held out to measure it), ``ssl`` on
    other images with unlabeled ones, else ``supervised``.

    Raises:
        UsageError: If ``self-training`` is asked for without unlabeled images or with a class of one labeled image.
    """
    colour = int(data.images.shape[1]) == 3
    if config.teacher == "self-training" and not (data.num_unlabeled and can_hold_out(data)):
        raise UsageError(
            "--teacher self-training needs an UNLABELED folder with images and two labeled images in every class "
            "(one is held out to measure it): add them, or use --teacher auto"
        )
    if config.teacher != "auto":
        return config.teacher
    if data.num_unlabeled and colour and can_hold_out(data):
        return "self-training"
    return "ssl" if data.num_unlabeled else "supervised"


# The CPU budget of the mlp teacher: 16,000 iterations took 14-20 minutes on 2 cores at 28 px (MNIST, 98.47%
# alone with 10 labels per class; the same machine on two days), about a fifth more at 32 px.
# (``classify --method ssl`` keeps 24,000: 98.8% on MNIST with 10 labels per class, docs/results/ssl_mnist.md.)
CPU_MLP_TEACHER_STEPS = 16_000
# The conv teacher (RGB) on a CPU: the paper's width (96) takes about 3.4 s an iteration on 2 cores at 32 px,
# width 32 1.25 s, width 16 0.5 s (measured with ``start_ssl``/``run_steps`` on random images). Early in
# training more iterations are expected to count for more than width (a guess, not compared), so width 16
# and 3,000 iterations: about 25 minutes, within the 30 aimed at.
CPU_CONV_TEACHER_WIDTH = 16
CPU_CONV_TEACHER_STEPS = 3_000
# Said up front when the teacher would take longer on a CPU: the self-trained teacher's gain on colour photos
# was measured with a teacher of 10.5 minutes on 2 cores (CIFAR-10, docs/results/self-teacher-cifar10).
SLOW_TEACHER_SECONDS = 3600


def default_teacher_steps(kind: str, device: torch.device, architecture: str) -> int:
    """The teacher's iterations when none are asked for: ``ssl`` as ``classify --method ssl``
    (:func:`~gan_augment.train.ssl.default_ssl_steps`) but :data:`CPU_MLP_TEACHER_STEPS` for the mlp on
    a CPU; ``supervised`` a quarter of that (it has only the labeled images to learn from, and no
    generator step)."""
    if device.type == "cpu":
        steps = CPU_MLP_TEACHER_STEPS if architecture == "mlp" else CPU_CONV_TEACHER_STEPS
    else:
        steps = default_ssl_steps(device, architecture)
    return steps if kind == "ssl" else max(1, steps // 4)


def teacher_config(config: TrainConfig, kind: str, data: ImageData, device: torch.device) -> SSLConfig:
    """The teacher's recipe: :class:`SSLConfig`'s defaults, the run's seed, its budget resolved (and on a
    CPU the conv networks :data:`CPU_CONV_TEACHER_WIDTH` wide)."""
    ssl = SSLConfig(seed=config.seed)
    architecture = ssl.resolved_architecture(int(data.images.shape[-1]), int(data.images.shape[1]))
    steps = config.teacher_steps or default_teacher_steps(kind, device, architecture)
    width = CPU_CONV_TEACHER_WIDTH if device.type == "cpu" else ssl.width
    unlabeled_weight = 0.0 if kind == "supervised" else 1.0
    return ssl.replace(steps=steps, architecture=architecture, width=width, unlabeled_weight=unlabeled_weight)


def _settings(kind: str, ssl: SSLConfig, data: ImageData, measured: bool = False) -> dict[str, Any]:
    """What identifies a teacher: a saved one with other settings is trained again (``measured``: with its
    labels-only rival and held-out images; a finished teacher from before the rival is kept, see :func:`_finished`)."""
    data_id = {k: v for k, v in data.fingerprint().items() if k != "files_sha256"}  # as spelled: may differ
    return {
        "kind": kind,
        "ssl_config": ssl.to_dict(),
        "data": data_id,
        **({"heldout_fraction": HELDOUT_FRACTION} if measured else {}),
    }


def _finished(final: Path, settings: dict[str, Any]) -> bool:
    """Whether ``final`` holds a finished teacher trained with ``settings``; whether it was measured against a
    labels-only rival does not count (a run's teacher from before the rival is kept, not trained again)."""
    saved = finished_settings(final)
    return saved is not None and _unmeasured(saved) == _unmeasured(settings)


def _partial(path: Path, settings: dict[str, Any]) -> TrainingRecord | None:
    """The interrupted teacher at ``path`` if it was trained with ``settings``, or with a smaller budget
    (``--teacher-steps`` raised on ``--resume``: it continues to the new budget instead of starting again).
    A file that cannot be read is not taken (it is the package's own: trained again, and replaced)."""
    if not path.is_file():
        return None
    try:
        record = load_training_record(path)
        with reading(path):
            saved = record.settings
            if saved == settings:
                return record
            if not isinstance(saved.get("ssl_config"), dict):
                return None
            same_but_budget = {**saved, "ssl_config": {**saved["ssl_config"], "steps": settings["ssl_config"]["steps"]}}
            fits = record.step <= int(settings["ssl_config"]["steps"])
            return record if same_but_budget == settings and fits else None
    except CheckpointError:
        return None


def _unmeasured(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k != "heldout_fraction"}


def train_teacher(
    data: ImageData,
    out_dir: Path,
    config: TrainConfig,
    device: torch.device,
    reporter: Reporter,
    board: Board | None = None,
) -> Path | None:
    """Train the run's teacher into ``out_dir/teacher.pt`` (continuing an interrupted one); None for
    ``teacher="none"``. A finished teacher of the same settings is kept as it is. A semi-supervised teacher
    is measured against a labels-only classifier on held-out labeled images, and ``--teacher auto`` hands
    over the labels-only one when the teacher measured no better (:mod:`~gan_augment.train.teacher_choice`).
    ``board``: its curves to TensorBoard too."""
    kind = resolve_teacher(config, data)
    if kind == "none":
        return None
    if kind == KIND:
        return train_self_teacher(data, out_dir, config.seed, config.teacher_steps, config.teacher, device, reporter)
    ssl = teacher_config(config, kind, data, device)
    measured = kind == "ssl" and can_hold_out(data)
    settings = _settings(kind, ssl, data, measured)
    final, partial = out_dir / TEACHER_NAME, out_dir / TEACHER_TRAINING_NAME
    if _finished(final, settings):
        return _trained_already(final, partial, f"{kind} teacher is trained already ({ssl.steps} iterations)", reporter)
    saved = _partial(partial, settings)
    with stop_signals(reporter) as stop:
        rival = saved.labels_only if measured and saved is not None else None
        if measured and rival is None:
            rival = train_labels_only(data, ssl, device, reporter, stop)
        held_out = dict(supervised=kind == "supervised", min_held_out=int(measured))
        run, held = start_ssl(data, ssl, device, HELDOUT_FRACTION if measured else 0.0, reporter, **held_out)
        _start_message(run, saved, partial, final, kind, data, reporter)

        def save() -> None:
            TrainingRecord(settings, run.state_dict(), rival).save(partial)

        t0 = time.perf_counter()
        try:
            every = {"save_every": config.checkpoint_every, "save_seconds": 60.0 * config.checkpoint_minutes}
            on_stats = (lambda step, row: board.scalars("teacher", row, step)) if board is not None else None
            run_steps(run, reporter, save=save, stop=stop, on_stats=on_stats, **every)
        except KeyboardInterrupt:
            save()
            reporter.message(f"teacher interrupted at iteration {run.step}: saved; continue with --resume")
            raise
    classifier = run.average.averaged(run.gan.d)  # the teacher as trained: its averaged weights
    choice = _choose(classifier, data, held, rival, config.teacher, reporter)
    _save_teacher(run, classifier, data, kind, settings, time.perf_counter() - t0, final, choice)
    _remove(partial)
    return final


def _trained_already(final: Path, partial: Path, what: str, reporter: Reporter) -> Path:
    """A finished teacher of the same settings is kept: say so, drop a partial file left beside it."""
    reporter.message(f"the run's {what}")
    _remove(partial)
    return final


def _start_message(
    run: SSLRun,
    saved: TrainingRecord | None,
    partial: Path,
    final: Path,
    kind: str,
    data: ImageData,
    reporter: Reporter,
) -> None:
    """Resume the teacher from ``saved`` (the partial file's record), or say what trains now."""
    ssl = run.config
    if saved is not None:
        with reading(partial):
            run.load_state_dict(saved.training)
        reporter.message(f"resuming the {kind} teacher at iteration {run.step} of {ssl.steps}")
    elif final.is_file() or partial.is_file():
        reporter.message("the run's teacher was trained with other settings, or cannot be read: training it again")
    else:
        reporter.message(
            f"training the run's {kind} teacher ({run.architecture} network, {ssl.steps} iterations"
            + (f", {data.num_unlabeled} unlabeled images" if kind == "ssl" else ", the labeled images alone")
            + ")"
        )
    if kind == "ssl" and not data.num_unlabeled:
        reporter.message(
            "the ssl teacher has no unlabeled image to learn from (no UNLABELED folder, or none of its images could "
            "be read): it learns from the labels alone, as --teacher supervised does in a quarter of the iterations"
        )


def _choose(
    classifier: nn.Module,
    data: ImageData,
    held: torch.Tensor,
    rival: dict[str, Any] | None,
    asked: str,
    reporter: Reporter,
) -> dict[str, Any]:
    """Which classifier becomes the run's teacher: ``{"state", "heldout"}`` (``state`` None: ``classifier``,
    the semi-supervised one as trained). Without a rival (nothing measured), the teacher as trained."""
    if rival is None:
        return {"state": None, "heldout": None}
    heldout = Heldout.of(correct(classifier, data, held), torch.as_tensor(rival["right"]))
    keep = heldout.keeps_ssl() or asked == "ssl"
    if keep and heldout.keeps_ssl():
        why = "it measured better than the labels alone"
    elif keep:
        why = "--teacher ssl asks for it, though it measured no better than the labels alone"
    else:
        why = "the semi-supervised teacher measured no better, so it is not handed over (--teacher ssl keeps it)"
    reporter.message(f"teacher {heldout.line()}: keeping {'it' if keep else 'the labels-only classifier'}; {why}")
    return {
        "state": None if keep else rival["state"],
        "heldout": {
            **heldout.to_dict(),
            "kept": "teacher" if keep else "labels_only",
            "labels_only_seconds": rival.get("seconds"),
        },
    }


def _save_teacher(
    run: SSLRun,
    classifier: nn.Module,
    data: ImageData,
    kind: str,
    settings: dict[str, Any],
    seconds: float,
    path: Path,
    choice: dict[str, Any],
) -> None:
    labeled = data.labels >= 0
    kept = classifier if choice["state"] is None else build_network(choice["state"])
    state = classifier_state(run, data, classifier, kind) if choice["state"] is None else dict(choice["state"])
    trained_on = int(len(run.labeled.pool))
    metrics = {
        "steps": run.config.steps if choice["state"] is None else int(labels_only_config(run.config).steps),
        "architecture": run.architecture,
        "num_labeled": trained_on,
        "num_unlabeled": data.num_unlabeled if state["kind"] == "ssl" else 0,
        # On the labeled images: those it trained on, and (with a rival) some it never saw; optimistic.
        "labeled_accuracy": accuracy(kept, data.images[labeled], data.labels[labeled]),
        "train_seconds": round(seconds, 1),
        **({"heldout": choice["heldout"]} if choice["heldout"] is not None else {}),
    }
    save_checkpoint({**state, "settings": settings, "metrics": metrics}, path)


def _remove(path: Path) -> None:
    if path.is_file() and not path.is_symlink():
        path.unlink()


PROBE_ITERATIONS = 3  # timed after one warm-up iteration, on a throwaway copy


def ssl_seconds(data: ImageData, ssl: SSLConfig, device: torch.device, supervised: bool = False) -> float:
    """Seconds an iteration of the SSL GAN ``ssl`` on ``data``, timed on a throwaway copy (random streams forked)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        run, _ = start_ssl(data, ssl, device, 0.0, Reporter(quiet=True), supervised=supervised)
        run.train_step()  # warm-up: allocations, kernels chosen
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(PROBE_ITERATIONS):
            run.train_step()
        synchronize(device)
        return (time.perf_counter() - t0) / PROBE_ITERATIONS


def teacher_plan(
    data: ImageData, out_dir: Path | None, config: TrainConfig, device: torch.device
) -> list[tuple[str, str, float]]:
    """``(phase, what it trains, seconds)`` of each phase of the run's teacher still to train in ``out_dir``
    (None: a teacher not started, as evaluate's budget prices it), before anything trains, each timed on a
    throwaway copy's first iterations (random streams forked). Empty for no teacher or one already trained."""
    kind = resolve_teacher(config, data)
    if kind == "none":
        return []
    if kind == KIND:
        return self_teacher_plan(data, out_dir, config.seed, config.teacher_steps, device)
    ssl = teacher_config(config, kind, data, device)
    measured = kind == "ssl" and can_hold_out(data)
    settings = _settings(kind, ssl, data, measured)
    if out_dir is not None and _finished(out_dir / TEACHER_NAME, settings):
        return []
    partial = None if out_dir is None else _partial(out_dir / TEACHER_TRAINING_NAME, settings)
    left = max(0, ssl.steps - (partial.step if partial is not None else 0))
    per = ssl_seconds(data, ssl, device, supervised=kind == "supervised")
    phases = [(f"teacher ({kind})", f"{left} iterations of its {ssl.architecture} discriminator", per * left)]
    if measured and (partial is None or partial.labels_only is None):
        rival = labels_only_config(ssl)
        rival_seconds = rival.steps * ssl_seconds(data, rival, device, supervised=True)
        what = f"{rival.steps} iterations of a labels-only classifier, to measure the teacher against"
        phases.append(("teacher's rival", what, rival_seconds))
    return phases


def teacher_warning(config: TrainConfig, data: ImageData, device: torch.device, seconds: float) -> str:
    """A line to say before training when this device is too slow for the run's teacher; empty otherwise."""
    kind = resolve_teacher(config, data)
    if device.type != "cpu" or kind in ("none", "supervised"):
        return ""
    if kind == "ssl" and teacher_config(config, kind, data, device).architecture == "conv":
        return (
            "this teacher will not pay off here: the ssl teacher's conv networks take seconds an iteration on a "
            "CPU (on CIFAR-10 with 25 labels a class it learned 29% where the labels alone gave 39%); use a GPU"
            + (
                ", or --teacher auto (self-training: +4 points there on 2 CPU cores)"
                if data.images.shape[1] == 3 and data.num_unlabeled and can_hold_out(data)
                else ""
            )
        )
    if seconds > SLOW_TEACHER_SECONDS:
        return (
            f"the teacher will take about {duration(seconds)} on this CPU, where its gain was measured with one "
            "of about 10 minutes (docs/usage.md): a GPU takes a small share of that; --teacher supervised (the "
            "labels alone) takes far less but learns nothing from the unlabeled images"
        )
    return ""
