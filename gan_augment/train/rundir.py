"""The run directory: checked before anything is written, cleared only of the package's own files, its log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import RunDirError
from ..io.atomic import open_append, strict_json
from ..io.checkpoint import CHECKPOINT_NAME, CLASSIFIER_NAME
from ..io.outdir import RUN, check_output_folder, mark, remove_own, remove_stale_temporaries


def check_run_dir(out: Path, resume: bool, overwrite: bool, *, resumable: bool = True) -> None:
    """Check, without writing anything, that ``out`` may be used as asked.

    A folder holding files the package did not write at the paths it writes (a ``config.json`` of
    the user's, say), or links and special files there, is refused even with ``overwrite``:
    ``overwrite`` replaces only the package's own files (:mod:`gan_augment.io.outdir`, the run's
    layout with its nested GAN run). A run that stopped before its first checkpoint is replaced
    without ``overwrite``.

    Raises:
        RunDirError: If another run is there and neither ``resume`` nor ``overwrite`` is set,
            ``resume`` is set and there is nothing to resume, or files that are not the package's
            are in the way.
    """
    if out.exists() and not out.is_dir():
        raise RunDirError(f"output path {str(out)!r} is a file: pass a folder for --out")
    check_output_folder(out, RUN, overwrite=True)  # what is not ours (or a link) is refused, whatever is asked
    if resume:
        if not (out / CHECKPOINT_NAME).is_file():
            raise RunDirError(f"nothing to resume: {str(out / CHECKPOINT_NAME)!r} does not exist; drop --resume")
        return
    if not overwrite and (out / CLASSIFIER_NAME).exists():
        raise RunDirError(f"{str(out)!r} already holds a classifier: pass --overwrite or another --out")
    if not overwrite and (out / CHECKPOINT_NAME).exists():
        options = "--resume to continue it, --overwrite to replace it" if resumable else "--overwrite to replace it"
        raise RunDirError(f"{str(out)!r} already holds a run: pass {options}, or another --out")


def prepare_run_dir(out: Path, resume: bool, overwrite: bool, *, resumable: bool = True) -> None:
    """Create and mark ``out``; unless resuming, first remove the previous run's files (and only those:
    the package's own, see :mod:`gan_augment.io.outdir`), e.g. of a run that stopped before its first
    checkpoint."""
    check_run_dir(out, resume, overwrite, resumable=resumable)
    if out.is_dir():
        remove_stale_temporaries(out, RUN)
        if not resume:
            remove_own(out, RUN)  # only in a folder the package marked: its own files
    mark(out, RUN)


def append_event(out: Path, row: dict[str, Any]) -> None:
    """Append one row to the run's ``metrics.jsonl`` (strict JSON: a NaN or infinite value is written
    as null), never through a link or into a FIFO.

    Raises:
        WriteError: If the disk is full, the folder unwritable, or ``metrics.jsonl`` is not a plain file.
    """
    line = strict_json(row) + "\n"
    with open_append(out / "metrics.jsonl") as f:
        f.write(line.encode())
