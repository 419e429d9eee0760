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
# 2: the identity holds the data's content fingerprints instead of the folders' path strings.
JOURNAL_VERSION = 2
# The largest journal read (a record is a few hundred bytes: this is tens of thousands of them).
MAX_JOURNAL_BYTES = 64 * 2**20
# What each identity key stands for, in the message that refuses other data or settings.
IDENTITY_NAMES = {
    "labeled": "the LABELED images or their labels",
    "unlabeled": "the UNLABELED images",
    "test": "the --test-dir images or their labels",
    "test_fraction": "--test-fraction",
    "settings": "the training settings",
    "run": "the --run (its path, settings or files)",
    "version": "the journal's format (written by another version of gan-augment)",
}
# Record fields that are fractions, and fields that are non-negative numbers.
_FRACTIONS = ("accuracy", "balanced_accuracy", "rare_recall")
_AMOUNTS = ("seconds", "test_images")


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
        self.identity = _plain({**identity, "version": JOURNAL_VERSION})
        self.records: list[dict[str, Any]] = []
        self.board: Any = None  # a TensorBoard log (train.board.Board) that gets each record as it is added
        if resume and self.path.is_file():
            saved = _read(self.path)
            before = saved.get("identity") or {}
            before = before if isinstance(before, dict) else {}
            differ = sorted(k for k in set(before) | set(self.identity) if before.get(k) != self.identity.get(k))
            if differ:
                raise UsageError(
                    f"--resume continues the evaluation in {str(out_dir)!r} with its own data and settings, and "
                    f"{'; '.join(IDENTITY_NAMES.get(k, k) for k in differ)} differ from its: use the same folders "
                    "and options, or start again with --overwrite"
                )
            self.records = saved["records"]

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

    def seconds_left(
        self, arms: Sequence[str], seeds: Sequence[int], expected: dict[str, float] | None = None
    ) -> float | None:
        """Time left for the (arm, seed) pairs not done, each at its arm's mean time so far; an arm with no
        record yet at its ``expected`` seconds, scaled by how the records so far compared with theirs. None
        while an arm still to run has neither."""
        expected = expected or {}
        timed = [r for r in self.records if r.get("arm") in arms and r.get("seed") in seeds and "seconds" in r]
        planned = sum(expected.get(str(r["arm"]), 0.0) for r in timed)
        took = sum(float(r["seconds"]) for r in timed if str(r["arm"]) in expected)
        scale = took / planned if planned > 0 and took > 0 else 1.0
        left = 0.0
        for seed in seeds:
            for arm in arms:
                if self.done(arm, seed) is not None:
                    continue
                times = [float(r["seconds"]) for r in timed if r.get("arm") == arm]
                if times:
                    left += sum(times) / len(times)
                elif arm in expected:
                    left += expected[arm] * scale
                else:
                    return None
        return left


def _read(path: Path) -> dict[str, Any]:
    """A journal's contents, every record checked (an arm name, an integer seed, fractions in [0, 1], finite
    non-negative times); anything else refused in one line naming the file, never averaged in."""
    again = f"{str(path)!r} is not an evaluation's progress as gan-augment writes it"
    fix = "start again with --overwrite"
    try:
        if path.stat().st_size > MAX_JOURNAL_BYTES:
            raise UsageError(f"{again} (over {MAX_JOURNAL_BYTES // 2**20} MiB): {fix}")
        saved = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UsageError(f"{again} ({type(exc).__name__}: cut short or edited?): {fix}") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("records"), list):
        raise UsageError(f"{again}: {fix}")
    for i, record in enumerate(saved["records"]):
        problem = _record_problem(record)
        if problem:
            raise UsageError(f"{again}: record {i + 1} {problem}: {fix}")
    return saved


def _record_problem(record: Any) -> str:
    """What is wrong with one journal record, or ''."""
    if not isinstance(record, dict):
        return f"is a {type(record).__name__}, not a record"
    if not isinstance(record.get("arm"), str):
        return "has no arm name"
    seed = record.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"has the seed {seed!r}, not an integer"
    for key in (*_FRACTIONS, *_AMOUNTS):
        value = record.get(key)
        if value is None and key != "accuracy":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"has {key}={value!r}, not a number"
        if value < 0 or (key in _FRACTIONS and value > 1):
            return f"has {key}={value!r}, outside {'[0, 1]' if key in _FRACTIONS else 'the numbers >= 0'}"
    return ""


def progress_line(
    journal: Journal, arms: Sequence[str], seeds: Sequence[int], expected: dict[str, float] | None = None
) -> str:
    """``k of n arm runs done; about T left`` (:meth:`Journal.seconds_left`)."""
    n = len(arms) * len(seeds)
    k = sum(journal.done(a, s) is not None for s in seeds for a in arms)
    left = journal.seconds_left(arms, seeds, expected)
    when = "" if left is None or not math.isfinite(left) else f"; about {duration(left)} left"
    return f"{k} of {n} arm runs done{when}"
