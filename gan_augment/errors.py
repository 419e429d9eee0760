"""Exceptions for expected, user-fixable problems (the CLI prints them as one line, exit code 2)."""

from __future__ import annotations


class GanAugmentError(ValueError):
    """Base class of every expected error: bad input the user can fix."""


class UsageError(GanAugmentError):
    """A value the caller gave (an option, an argument, a setting) is out of range, of the wrong kind or
    contradicts another. A ``ValueError``, as Python code that checks values expects."""


class DataError(GanAugmentError):
    """An image folder is missing, empty, unreadable or holds no usable image."""


class CheckpointError(GanAugmentError):
    """A checkpoint is missing, not a checkpoint, untrusted, corrupt or of another format."""


class RunDirError(GanAugmentError):
    """An output directory cannot be used as asked (for example, another run is already there)."""


class WriteError(GanAugmentError):
    """A file could not be written (a full disk, an unwritable folder); the previous file is intact."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason  # what the system said: "No space left on device", "Permission denied", ...
