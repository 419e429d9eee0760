"""The run directory: checked before anything is written, cleared only of the files a run writes, its log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import RunDirError
from ..io.checkpoint import CHECKPOINT_NAME

RUN_FILES = (CHECKPOINT_NAME, "config.json", "metrics.jsonl", "samples")


def check_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Check, without writing anything, that ``out`` may be used as asked.

    Raises:
        RunDirError: If another run is there and neither ``resume`` nor ``overwrite`` is set, or
            ``resume`` is set and there is nothing to resume.
    """
    if resume:
        if not (out / CHECKPOINT_NAME).is_file():
            raise RunDirError(f"nothing to resume: {str(out / CHECKPOINT_NAME)!r} does not exist; drop --resume")
        return
    if out.exists() and not out.is_dir():
        raise RunDirError(f"output path {str(out)!r} is a file: pass a folder for --out")
    has_run = out.is_dir() and any((out / name).exists() for name in RUN_FILES)
    if has_run and not overwrite:
        raise RunDirError(
            f"{str(out)!r} already holds a run: pass --resume to continue it, --overwrite to "
            "replace it, or another --out"
        )


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Create ``out``; with ``overwrite``, first remove the previous run's files (and only those)."""
    check_run_dir(out, resume, overwrite)
    if out.is_dir():  # temporary files of a write that a kill -9 cut short
        for stale in out.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    if overwrite and not resume:
        for name in RUN_FILES:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def append_event(out: Path, row: dict[str, Any]) -> None:
    """Append one row to the run's ``metrics.jsonl``."""
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
