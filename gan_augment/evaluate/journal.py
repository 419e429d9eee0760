"""An evaluation's results as they complete: one (arm, seed) record at a time, on disk after each, so
an interrupted evaluation keeps what it finished and ``--resume`` reuses it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from ..errors import UsageError
from ..io.atomic import atomic_write_json
from ..progress import duration

JOURNAL_NAME = "evaluation-progress.json"


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists, paths as strings), for comparing with a file's."""
    return json.loads(json.dumps(value, default=str))


class Journal:
    """The finished (arm, seed) records of one evaluation, and what identifies it.

    ``identity``: what the records depend on (data, settings, held-out protocol, the run used). With
    ``resume``, a journal of another identity is refused, naming what differs; arms and seeds may
    change (more seeds narrow the intervals; records of seeds or arms not asked for are kept aside).
    """

    def __init__(self, out_dir: Path, identity: dict[str, Any], resume: bool) -> None:
        self.path = out_dir / JOURNAL_NAME
        self.identity = _plain(identity)
        self.records: list[dict[str, Any]] = []
        self.board: Any = None  # a TensorBoard log (train.board.Board) that gets each record as it is added
        if resume and self.path.is_file():
            saved = json.loads(self.path.read_text())
            if not isinstance(saved, dict) or not isinstance(saved.get("records"), list):
                raise UsageError(f"{str(self.path)!r} is not an evaluation's progress: start again with --overwrite")
            before = saved.get("identity") or {}
            differ = sorted(k for k in set(before) | set(self.identity) if before.get(k) != self.identity.get(k))
            if differ:
                raise UsageError(
                    f"--resume continues the evaluation in {str(out_dir)!r} with its own data and settings, and "
                    f"{', '.join(differ)} differ: use the same options, or start again with --overwrite"
                )
            self.records = [r for r in saved["records"] if isinstance(r, dict)]

    def done(self, arm: str, seed: int) -> dict[str, Any] | None:
        """The finished record of ``arm`` on ``seed``, or None."""
        return next((r for r in self.records if r.get("arm") == arm and r.get("seed") == seed), None)

    def add(self, record: dict[str, Any]) -> None:
        """Keep ``record`` and write the journal at once (atomically)."""
        self.records.append(_plain(record))
        atomic_write_json(self.path, {"identity": self.identity, "records": self.records})
        if self.board is not None:
            self.board.arm_record(self.records[-1])

    def chosen(self, arms: Sequence[str], seeds: Sequence[int]) -> list[dict[str, Any]]:
        """The records of these arms and seeds, in seed then arm order."""
        return [r for s in seeds for a in arms if (r := self.done(a, s)) is not None]

    def seconds_left(self, arms: Sequence[str], seeds: Sequence[int]) -> float | None:
        """Time left for the (arm, seed) pairs not done, each at its arm's mean time so far; None while an
        arm still to run has no finished record to go by."""
        left = 0.0
        for seed in seeds:
            for arm in arms:
                if self.done(arm, seed) is not None:
                    continue
                times = [float(r["seconds"]) for r in self.records if r.get("arm") == arm and "seconds" in r]
                if not times:
                    return None
                left += sum(times) / len(times)
        return left


def progress_line(journal: Journal, arms: Sequence[str], seeds: Sequence[int]) -> str:
    """``k of n trainings done; about T left`` (the time once every arm has run once)."""
    n = len(arms) * len(seeds)
    k = sum(journal.done(a, s) is not None for s in seeds for a in arms)
    left = journal.seconds_left(arms, seeds)
    when = "" if left is None or not math.isfinite(left) else f"; about {duration(left)} left"
    return f"{k} of {n} arm runs done{when}"
