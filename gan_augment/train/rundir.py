"""The run directory: checked before anything is written, cleared only of the package's own files, its log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RunDirError
from ..io.atomic import write_failure
from ..io.checkpoint import CHECKPOINT_NAME, CLASSIFIER_NAME
from ..io.outdir import mark, not_ours, remove_own, remove_stale_temporaries


def check_run_dir(out: Path, resume: bool, overwrite: bool, *, resumable: bool = True) -> None:
    """Check, without writing anything, that ``out`` may be used as asked.

    A folder holding files the package did not write at the paths it writes (a ``config.json`` of
    the user's, say) is refused even with ``overwrite``: ``overwrite`` replaces only the package's
    own files. A run that stopped before its first checkpoint is replaced without ``overwrite``.

    Raises:
        RunDirError: If another run is there and neither ``resume`` nor ``overwrite`` is set,
            ``resume`` is set and there is nothing to resume, or files that are not the package's
            are in the way.
    """
    if out.exists() and not out.is_dir():
        raise RunDirError(f"output path {str(out)!r} is a file: pass a folder for --out")
    foreign = not_ours(out)
    if foreign:
        raise RunDirError(
            f"{str(out / foreign[0])!r} was not written by gan-augment (the folder has no run marker): "
            "it is never replaced or removed, even with --overwrite; move it, or pass another --out"
        )
    if resume:
        if not (out / CHECKPOINT_NAME).is_file():
            raise RunDirError(f"nothing to resume: {str(out / CHECKPOINT_NAME)!r} does not exist; drop --resume")
        return
    if overwrite or not out.is_dir():
        return
    if (out / CLASSIFIER_NAME).exists():
        raise RunDirError(f"{str(out)!r} already holds a classifier: pass --overwrite or another --out")
    if (out / CHECKPOINT_NAME).exists():
        options = "--resume to continue it, --overwrite to replace it" if resumable else "--overwrite to replace it"
        raise RunDirError(f"{str(out)!r} already holds a run: pass {options}, or another --out")


def prepare_run_dir(out: Path, resume: bool, overwrite: bool, *, resumable: bool = True) -> None:
    """Create and mark ``out``; unless resuming, first remove the previous run's files (and only those:
    the package's own, see :mod:`gan_augment.io.outdir`), e.g. of a run that stopped before its first
    checkpoint."""
    check_run_dir(out, resume, overwrite, resumable=resumable)
    if out.is_dir():
        remove_stale_temporaries(out)
        if not resume:
            remove_own(out)  # only in a folder the package marked: its own files
    mark(out)


def append_event(out: Path, row: dict[str, Any]) -> None:
    """Append one row to the run's ``metrics.jsonl``.

    Raises:
        WriteError: If the disk is full or the folder unwritable.
    """
    try:
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
    except OSError as exc:
        raise write_failure(out / "metrics.jsonl", exc) from None
