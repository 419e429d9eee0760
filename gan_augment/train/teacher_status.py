"""A run's teacher as a lifecycle, and what every entry point says of it.

A run of ``fit`` is in one of five teacher states (``describe_teacher``'s ``state``):

- ``trained``: ``teacher.pt`` is there and readable (finished);
- ``training``: only ``teacher-training.pt``: its training was interrupted (``fit --resume`` continues it);
- ``missing``: the run was to train one (``--teacher auto``, ``ssl`` or ``supervised``) and has neither
  file: it stopped before its teacher, or ``teacher.pt`` was removed (``fit --resume`` trains it);
- ``unreadable``: ``teacher.pt`` is there but corrupt (``fit --resume`` trains it again);
- ``none``: trained with ``--teacher none`` (or before teachers existed): synthetic images keep their
  generator's labels, by choice.

Only ``trained`` and ``none`` are used as they are; every other state stops the entry point with what to
do (:func:`finished_teacher`), instead of falling back to the generator's labels or other features.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, GanAugmentError
from ..io.checkpoint import TEACHER_NAME, TEACHER_TRAINING_NAME, run_file
from ..io.classifier_record import NetworkRecord, load_network_record
from ..io.record import load_run
from ..io.teacher_training import load_training_record

TEACHER_METRICS = ("steps", "num_labeled", "num_unlabeled", "labeled_accuracy", "train_seconds", "heldout")


class TeacherStateError(GanAugmentError):
    """A run's teacher that cannot be used as it is (interrupted, missing, unreadable); says what to do."""


def _planned_kind(run: str | os.PathLike[str]) -> str:
    """The teacher the run's configuration asks for (``none`` when its checkpoint cannot be read)."""
    try:
        return str(load_run(run).config.teacher)
    except GanAugmentError:
        return "none"


def describe_teacher(run: str | os.PathLike[str], planned: str | None = None) -> dict[str, Any]:
    """What ``info``, ``report`` and every entry point know of a run's teacher: ``{"state": ...}`` (see the
    module), with the finished teacher's kind, budget and metrics (its ``labeled_accuracy`` is on the images
    it trained on: optimistic), an interrupted one's ``step`` and ``steps``, an unreadable one's ``reason``.
    Never raises for a damaged teacher file: that is a state."""
    final, partial = run_file(run, TEACHER_NAME), run_file(run, TEACHER_TRAINING_NAME)
    if final.is_file():
        try:
            record = load_network_record(final)
            metrics = record.metrics
            return {
                "state": "trained",
                "kind": record.kind,
                "architecture": record.architecture,
                **{k: metrics[k] for k in TEACHER_METRICS if k in metrics},
            }
        except CheckpointError as exc:
            return {"state": "unreadable", "reason": str(exc)}
    if partial.is_file():
        try:
            record = load_training_record(partial)
            return {"state": "training", "kind": record.kind, "step": record.step, "steps": record.steps}
        except CheckpointError as exc:
            return {"state": "unreadable", "reason": str(exc)}
    kind = planned if planned is not None else _planned_kind(run)  # planned: the run's config.teacher, read
    return {"state": "none"} if kind == "none" else {"state": "missing", "kind": kind}


def teacher_line(summary: dict[str, Any]) -> str:
    """One line for a person: the teacher :func:`describe_teacher` describes, and what to do if it cannot be used."""
    state = summary["state"]
    if state == "none":
        return (
            "none (--teacher none: GANAugmentedDataset(base, run) labels synthetic images with their generator's class)"
        )
    if state == "trained":
        acc, held = summary.get("labeled_accuracy"), summary.get("heldout")
        return (
            f"{summary['kind']} ({summary['architecture']} network), {summary.get('steps')} iterations on "
            f"{summary.get('num_labeled')} labeled"
            + (f" + {summary.get('num_unlabeled')} unlabeled" if summary["kind"] in ("ssl", "self-training") else "")
            + " images"
            + (f"; {heldout_words(held)}" if isinstance(held, dict) else "")
            + (f"; {acc:.3f} on the labeled images (optimistic: most trained it)" if isinstance(acc, float) else "")
        )
    return _advice(summary)


def heldout_words(held: dict[str, Any]) -> str:
    """The held-out comparison a teacher file records, in words: both accuracies and which was kept."""
    try:
        kept = "the teacher" if held.get("kept") == "teacher" else "the labels-only classifier"
        return (
            f"on {int(held['images'])} held-out labeled images the teacher scored "
            f"{100 * float(held['teacher']):.1f}%, the labels alone {100 * float(held['labels_only']):.1f}%: "
            f"{kept} kept"
        )
    except (KeyError, TypeError, ValueError):
        return "its held-out comparison cannot be read"


def _advice(summary: dict[str, Any]) -> str:
    """What is wrong with a teacher that cannot be used, and the command that mends it."""
    resume = "`gan-augment fit LABELED [UNLABELED] --out RUN --resume`"
    if summary["state"] == "training":
        return (
            f"{summary['kind']}, interrupted at iteration {summary['step']} of {summary['steps']}: continue it with "
            f"{resume}"
        )
    if summary["state"] == "missing":
        return (
            f"{summary['kind']}, not trained (the run stopped before its teacher, or teacher.pt was removed): "
            f"{resume} trains it"
        )
    return f"unreadable ({summary['reason']}); {resume} trains it again"


def finished_teacher(
    run: str | os.PathLike[str], fallback: str, planned: str | None = None
) -> tuple[Path, NetworkRecord] | None:
    """The run's ``teacher.pt`` and its record (loaded once, here) when it is finished; None when the run
    has none by choice (``--teacher none``).

    Args:
        run: A run directory, or a file in it.
        fallback: What the caller can be told to do instead (``pass labels='generator'``, say).

    Raises:
        TeacherStateError: For an interrupted, missing or unreadable teacher: never used silently as none.
    """
    final = run_file(run, TEACHER_NAME)
    if final.is_file():
        try:
            return final, load_network_record(final)
        except CheckpointError as exc:
            summary: dict[str, Any] = {"state": "unreadable", "reason": str(exc)}
    else:
        summary = describe_teacher(run, planned)
        if summary["state"] == "none":
            return None
    raise TeacherStateError(
        f"the run {str(run)!r} has a teacher that cannot be used: {_advice(summary)}; or {fallback}"
    )
