"""Which files in an output folder the package wrote: the only ones it may replace or remove.

A folder the package writes a run (``fit``) or a classifier (``classify``) into gets a marker file,
:data:`MARKER_NAME`, before anything else. A file counts as the package's own only when the folder
holds the marker *and* the file's path is one the package writes (:data:`OWN_FILES`, sample grids
``samples/step_NNNNNN.png``). A user's ``config.json`` in a folder without the marker is never
removed or written over; a user's ``notes.txt`` in a run folder is never touched. Runs written
before the marker existed are recognised by their checkpoint (a gan-augment checkpoint archive).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from ..errors import RunDirError
from .atomic import atomic_write_text
from .checkpoint import CHECKPOINT_NAME, CLASSIFIER_NAME

MARKER_NAME = ".gan-augment-run"
OWN_FILES = (CHECKPOINT_NAME, CLASSIFIER_NAME, "config.json", "metrics.jsonl", "metrics.json")
SAMPLES_DIR = "samples"
_SAMPLE_GRID = re.compile(r"step_\d{6,}\.png")
RESULTS = (CHECKPOINT_NAME, CLASSIFIER_NAME)  # what makes a folder "hold a run"


def own_names(folder: Path) -> list[str]:
    """The paths (relative, ``/``-separated) under ``folder`` that the package writes and that exist
    now, whoever wrote them. Links are listed too (removing a link never touches its target)."""
    names = [n for n in OWN_FILES if (folder / n).is_file() or (folder / n).is_symlink()]
    samples = folder / SAMPLES_DIR
    if samples.is_dir() and not samples.is_symlink():
        names += [f"{SAMPLES_DIR}/{p.name}" for p in sorted(samples.iterdir()) if _SAMPLE_GRID.fullmatch(p.name)]
    return names


def is_marked(folder: Path) -> bool:
    """Whether the package wrote the run or classifier in ``folder`` (its marker, or a checkpoint of
    gan-augment's from before the marker existed)."""
    if (folder / MARKER_NAME).is_file():
        return True
    return any(_is_our_archive(folder / name) for name in RESULTS)


def _is_our_archive(path: Path) -> bool:
    """A torch.save archive holding gan-augment's ``format_version`` record (read without unpickling)."""
    if path.is_symlink() or not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:  # the record of a checkpoint is small: a larger one is not ours
            records = [i for i in z.infolist() if i.filename.endswith("/data.pkl") and i.file_size < 2**26]
            return any(b"format_version" in z.read(info) for info in records)
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return False


def not_ours(folder: Path) -> list[str]:
    """Files at the package's paths in ``folder`` that the package did not write (no marker)."""
    return [] if not folder.is_dir() or is_marked(folder) else own_names(folder)


def mark(folder: Path) -> None:
    """Create ``folder`` if needed and write its marker (before any other file the package writes there)."""
    if not (folder / MARKER_NAME).is_file():
        atomic_write_text(folder / MARKER_NAME, json.dumps({"written_by": "gan-augment"}) + "\n")


def remove_own(folder: Path) -> None:
    """Remove the package's files from a marked ``folder`` (and ``samples/`` if that leaves it empty).
    Anything else in the folder stays."""
    if not folder.is_dir() or not is_marked(folder):
        return
    for name in own_names(folder):
        (folder / name).unlink(missing_ok=True)
    samples = folder / SAMPLES_DIR
    if samples.is_dir() and not samples.is_symlink() and not any(samples.iterdir()):
        samples.rmdir()


def remove_stale_temporaries(folder: Path) -> None:
    """Remove the temporary files (``.NAME.XXXX.tmp``) that a killed write of one of the package's
    files left; a user's own hidden ``.tmp`` files do not match and stay."""
    own = (*OWN_FILES, MARKER_NAME)
    for stale in folder.glob(".*.tmp"):
        if any(stale.name.startswith(f".{name}.") for name in own) and stale.is_file():
            stale.unlink(missing_ok=True)
    samples = folder / SAMPLES_DIR
    if samples.is_dir() and not samples.is_symlink():
        for stale in samples.glob(".step_*.png.*.tmp"):
            stale.unlink(missing_ok=True)


def check_new_output(path: Path, overwrite: bool, what: str = "--out") -> None:
    """Refuse to replace an existing file (a user's, or an earlier result) unless ``overwrite``.

    Raises:
        RunDirError: If ``path`` exists and ``overwrite`` is not set, or it is a folder.
    """
    if path.is_dir():
        raise RunDirError(f"{what} {str(path)!r} is a folder: pass a file name")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise RunDirError(f"{str(path)!r} already exists: pass --overwrite to replace it, or another {what}")
