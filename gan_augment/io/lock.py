"""One process per output folder: an advisory lock held for the whole run.

The lock is ``fcntl.flock`` on :data:`LOCK_NAME` in the folder, which the kernel releases when the
process ends however it ends, so a killed run never leaves a lock that blocks the next one. The
file holds the holder's pid, for the message a second process gets. Where ``fcntl`` is missing
(Windows) nothing is locked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import TracebackType

from ..errors import RunDirError
from .atomic import not_a_plain_file
from .outdir import MARKER_NAME

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".gan-augment.lock"


class FolderLock:
    """Hold ``folder`` for this process; a context manager.

    Creates the folder if it does not exist. On release, when the run wrote nothing there (no run
    marker: a run refused for its data), the lock file goes, and the folder too if this lock
    created it: no trace is left.

    Raises:
        RunDirError: On entry, if another live process holds the folder (its pid is named).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None
        self.created = False

    def __enter__(self) -> FolderLock:
        if fcntl is None:
            return self
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            self.created = True
        while True:  # the file may be replaced between open and flock; lock the one at the path
            try:  # never through a link, never a FIFO or device (O_NONBLOCK: opening one cannot hang)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                self._undo_create()
                if self.path.is_symlink():
                    raise RunDirError(self._not_plain("a symbolic link")) from None
                raise RunDirError(
                    f"cannot use {str(self.folder)!r} ({exc.strerror}): fix its permissions or pass another --out"
                ) from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                self._undo_create()
                raise RunDirError(self._not_plain("not a plain file"))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                self._undo_create()
                raise RunDirError(
                    f"{str(self.folder)!r} is in use by another gan-augment process (pid {holder}): wait for "
                    "it to end or stop it, or pass another --out"
                ) from None
            if self.path.exists() and os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.fd is None:
            return
        unused = not (self.folder / MARKER_NAME).exists()
        if unused:  # nothing was written: leave no trace (unlink while holding the lock)
            self.path.unlink(missing_ok=True)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None
        if unused:
            self._undo_create()

    def _not_plain(self, what: str) -> str:
        return str(not_a_plain_file(self.path, what))

    def _undo_create(self) -> None:
        if self.created:
            try:
                self.folder.rmdir()  # only if empty
            except OSError:
                pass
            self.created = False
