"""evaluate's estimate: each arm charged what the journal will time for it, and a time left that goes by the
estimate until an arm has run, scaled by how the arms run so far compared with theirs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gan_augment.evaluate import budget
from gan_augment.evaluate.journal import Journal, progress_line


def test_each_arm_is_charged_its_classifier_and_the_runs_it_is_first_to_need(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "_classifier_cost", lambda arms: (1.0, 0.5))  # 1 s + 10 steps at 0.5 s: 6 s
    monkeypatch.setattr(budget, "_gan_run_seconds", lambda arms, key: {"default": 100.0}[key])
    monkeypatch.setattr(budget, "teacher_plan", lambda data, out, cfg, dev: [("teacher", "50 steps", 20.0)])  # 20 s
    settings = SimpleNamespace(
        classifier=SimpleNamespace(steps=10, batch_size=256), ssl=SimpleNamespace(steps=50), device=torch.device("cpu"),
        quality=False, synthetic_ratio=0.5,
    )  # fmt: skip
    gan_cfg = SimpleNamespace(replace=lambda **kw: gan_cfg)
    split = SimpleNamespace(train_labels=torch.zeros(12))  # 12 labeled images: batches of 12, of 24 with as many added
    arms = SimpleNamespace(settings=settings, runs={}, gan_cfg=gan_cfg, gan_data=lambda: None, split=split)
    names = ["baseline", "default", "teacher", "teacher-unlabeled"]
    expected = budget.arm_seconds(arms, names)  # type: ignore[arg-type]
    # the default arm trains the run (GAN and teacher) and its classifier, whose steps take twice the images
    # (half of its items added); the teacher arm trains nothing
    assert expected == {"baseline": 6.0, "default": 131.0, "teacher": 0.0, "teacher-unlabeled": 11.0}
    given = SimpleNamespace(**{**vars(arms), "runs": {"default": Path("run")}})  # --run: the run is free
    assert budget.arm_seconds(given, names)["default"] == 11.0  # type: ignore[arg-type]


def test_time_left_goes_by_the_estimate_scaled_until_each_arm_has_run(tmp_path: Path) -> None:
    journal = Journal(tmp_path, {"labeled": "x"}, resume=False)
    arms, seeds = ["baseline", "default"], [0, 1]
    expected = {"baseline": 5.0, "default": 100.0}
    assert journal.seconds_left(arms, seeds) is None  # nothing run, nothing expected: no guess
    assert journal.seconds_left(arms, seeds, expected) == pytest.approx(210.0)
    journal.add({"arm": "baseline", "seed": 0, "accuracy": 0.5, "seconds": 10.0})  # twice as long as expected
    # baseline on seed 1 at its measured 10 s; default twice its 100 s on both seeds
    assert journal.seconds_left(arms, seeds, expected) == pytest.approx(10.0 + 2 * 200.0)
    journal.add({"arm": "default", "seed": 0, "accuracy": 0.6, "seconds": 150.0})
    assert journal.seconds_left(arms, seeds, expected) == pytest.approx(10.0 + 150.0)  # measured means only
    assert progress_line(journal, arms, seeds, expected) == "2 of 4 arm runs done; about 2:40 left"
