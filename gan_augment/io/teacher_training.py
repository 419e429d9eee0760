"""``teacher-training.pt``, a run's teacher while it trains (what resumes it), typed and read in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .checkpoint import load_checkpoint, reading, save_checkpoint
from .classifier_record import load_network_record


@dataclass(frozen=True)
class TrainingRecord:
    """A teacher in training: the semi-supervised one (its trainer's state) or the self-trained one (its stages).

    Attributes:
        settings: What identifies the teacher (its ``kind``, ``ssl_config`` and data): a saved one with other
            settings is trained again.
        training: Where it stands: the trainer's state, or the self-trained teacher's ``stage``, ``phase``,
            ``choice`` and networks; both hold ``step`` (done) and may hold ``steps`` (to do).
        labels_only: The labels-only rival the teacher is measured against, once trained (its classifier state
            and held-out verdicts).
    """

    settings: dict[str, Any]
    training: dict[str, Any]
    labels_only: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TrainingRecord:
        """The record of the file's dict; KeyError, TypeError or ValueError for a missing or wrong field (inside
        :func:`reading`: one line)."""
        settings, training, rival = state["settings"], state["training"], state.get("labels_only")
        if not (isinstance(settings, dict) and isinstance(training, dict) and isinstance(rival, (dict, type(None)))):
            raise TypeError("settings, training or labels_only is not a dict")
        record = cls(settings, training, rival)
        if not isinstance(settings["kind"], str) or record.step < 0 or record.steps < 0:
            raise ValueError(f"kind {settings['kind']!r}, step {record.step} or steps {record.steps} out of range")
        return record

    @property
    def kind(self) -> str:
        return str(self.settings["kind"])

    @property
    def step(self) -> int:
        """Iterations (steps) done."""
        return int(self.training["step"])

    @property
    def steps(self) -> int:
        """Iterations (steps) to do in all: the file's own count, else its configuration's."""
        return int(self.training.get("steps", self.settings["ssl_config"]["steps"]))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the record to ``path`` (atomically)."""
        rival = {"labels_only": self.labels_only} if self.labels_only is not None else {}
        save_checkpoint({"settings": self.settings, "training": self.training, **rival}, path)


def load_training_record(path: str | os.PathLike[str]) -> TrainingRecord:
    """The record in ``path``; CheckpointError (one line naming it) for a file that is not one."""
    state = load_checkpoint(path, map_location="cpu")
    with reading(path):
        return TrainingRecord.from_dict(state)


def finished_settings(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The settings a run's finished teacher (``teacher.pt`` at ``path``) was trained with; None when there is
    none or it cannot be read (the package's own file: trained again, and replaced)."""
    try:
        settings = load_network_record(path).state.get("settings") if Path(path).is_file() else None
    except CheckpointError:
        return None
    return settings if isinstance(settings, dict) else None
