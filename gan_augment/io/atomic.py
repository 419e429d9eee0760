"""Atomic writes: a temporary file in the same folder, fsync, then ``os.replace`` (readers never see half a file)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import WriteError

UMASK = os.umask(0)
os.umask(UMASK)


def write_failure(path: Path, exc: BaseException) -> WriteError:
    """The package's one-line error for a failed write of ``path``: what failed and what to do."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
    else:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return WriteError(
        f"could not write {str(path)!r} ({reason}): free disk space or fix the folder's permissions, "
        "then run again; the previous file, if any, is intact",
        reason,
    )


class _RecordingFile:
    """A file that remembers the ``OSError`` of a failed write: ``torch.save`` turns a full disk
    into a ``RuntimeError`` of its zip writer ("unexpected pos ..."), which no longer says why."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


def atomic_write(path: str | os.PathLike[str], write: Any) -> None:
    """Call ``write(file)`` on a temporary file in the same folder, fsync, then ``os.replace`` onto ``path``.

    A link, FIFO or other special file at ``path`` is replaced, never followed or written into
    (``os.replace`` replaces the directory entry); a folder there is refused.

    Raises:
        WriteError: If the folder cannot be created or the file cannot be written (a full disk,
            permissions); the temporary file is removed and ``path`` keeps its previous contents.
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise not_a_plain_file(path, "a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_failure(path, exc) from None
    recording: _RecordingFile | Any = None
    try:
        with os.fdopen(fd, "wb") as f:
            recording = _RecordingFile(f)
            write(recording)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o666 & ~UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_name, path)
    except BaseException as exc:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        if isinstance(exc, (OSError, RuntimeError)):
            raise write_failure(path, getattr(recording, "error", None) or exc) from None
        raise


@contextlib.contextmanager
def open_append(path: str | os.PathLike[str]) -> Iterator[Any]:
    """Open ``path`` for appending bytes, creating it, never through a symbolic link and never into a
    FIFO, device or other non-regular file (``O_NOFOLLOW``, ``O_NONBLOCK``, then a check of what was
    opened).

    Raises:
        WriteError: Naming the file, if it is not a plain file or cannot be written.
    """
    path = Path(path)
    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        raise not_a_plain_file(path, "a symbolic link" if path.is_symlink() else "not a plain file")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if os.path.islink(path):
            raise not_a_plain_file(path, "a symbolic link") from None
        raise write_failure(path, exc) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise not_a_plain_file(path, "not a plain file")
    try:
        with os.fdopen(fd, "ab") as f:
            yield f
    except OSError as exc:
        raise write_failure(path, exc) from None


def not_a_plain_file(path: Path, what: str) -> WriteError:
    """The error for a path the package would write that holds a link or a special file."""
    return WriteError(
        f"{str(path)!r} is {what}: gan-augment never writes through links or into special files; remove it, "
        "or pass another output folder",
        what,
    )


def strict_json(obj: Any, indent: int | None = None) -> str:
    """``obj`` as strict JSON (RFC 8259): NaN and infinities become null, which every reader takes."""
    return json.dumps(_finite(obj), indent=indent, sort_keys=indent is not None, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to ``path`` atomically: readers see the old file or the new one, never half."""
    atomic_write(Path(path), lambda f: torch.save(obj, f))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write text to ``path`` atomically."""
    atomic_write(Path(path), lambda f: f.write(text.encode(errors="surrogateescape")))  # file names as on disk


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, strict_json(obj, indent=2) + "\n")
