"""Issue 14, item 4: progress reaches a log when the output is not a terminal (nohup, a scheduler):
a plain line every so often with the step, img/s, losses and the time left."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import TINY_CLI
from rich.console import Console
from typer.testing import CliRunner

from gan_augment.cli import app
from gan_augment.progress import Reporter


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    reporter = Reporter(console=Console(file=out, force_terminal=False, width=200), plain_every=0)
    with reporter.progress(total=4) as bar:
        bar.update(1, None)
        bar.update(2, {"img_per_s": 1234.0, "loss_d": 1.5, "loss_g": 0.7, "d_real": 0.6, "d_fake": 0.4})
        bar.update(4, None)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("step 1/4 (25%)") and "left" in lines[0]
    assert "1,234 img/s  D 1.500  G 0.700" in lines[1] and lines[2].endswith("done")


def test_lines_come_at_the_interval_not_every_step() -> None:
    out = io.StringIO()
    reporter = Reporter(console=Console(file=out, force_terminal=False), plain_every=3600)
    with reporter.progress(total=100) as bar:
        for step in range(1, 101):
            bar.update(step, None)
    assert out.getvalue().splitlines() == ["step 100/100 (100%)  done"]  # only the end, within the hour


def test_fit_under_a_log_writes_progress_lines(labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAN_AUGMENT_PROGRESS_EVERY", "0")
    args = [a for a in TINY_CLI if a != "--quiet"]
    result = CliRunner().invoke(app, ["fit", str(labeled), "--out", str(tmp_path / "run"), *args, "--steps", "3"])
    assert result.exit_code == 0, result.output
    steps = [line for line in result.output.splitlines() if line.startswith("step ")]
    assert steps[-1].startswith("step 3/3 (100%)") and "img/s" in steps[-1] and steps[-1].endswith("done")


def test_the_bar_gets_img_per_s_and_losses_from_the_first_step(labeled: Path, tmp_path: Path) -> None:
    """Before, the bar's fields stayed blank until the first logged row (50 steps by default)."""
    import contextlib

    from conftest import tiny_config

    from gan_augment import fit

    updates: list[tuple[int, dict | None]] = []

    class Recording(Reporter):
        @contextlib.contextmanager
        def progress(self, total: int, completed: int = 0, left=None):  # type: ignore[override]
            class Bar:
                def update(self, step: int, row: dict | None) -> None:
                    updates.append((step, row))

            yield Bar()

    reporter = Recording(console=Console(file=io.StringIO()))
    fit(labeled, None, tmp_path / "run", tiny_config(steps=3, log_every=50), device="cpu", reporter=reporter)
    step, row = updates[0]
    assert step == 1 and row is not None and row["img_per_s"] > 0 and {"loss_d", "loss_g"} <= set(row)


def test_time_left_counts_a_per_class_step_as_k_pre_training_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22: the time left was wrong by a factor of three (a per-class step trains K models). Before the
    per-class phase is timed, its steps are K measured pre-training steps; then its own measured cost."""
    from types import SimpleNamespace

    import gan_augment.train.clock as clock_module
    from gan_augment.train.clock import PhaseClock

    now = {"t": 0.0}
    monkeypatch.setattr(clock_module.time, "perf_counter", lambda: now["t"])
    state = SimpleNamespace(phase="pretrain")
    trainer = SimpleNamespace(state=state, num_classes=3, pretrain_steps=10, total_steps=30,
                              config=SimpleNamespace(mode="per-class"))  # fmt: skip
    clock = PhaseClock(trainer)  # type: ignore[arg-type]
    assert clock.left(0) is None  # nothing timed yet: "timing"
    for _ in range(5):  # pre-training steps of 1 s (the first only starts the clock)
        now["t"] += 1.0
        clock.tick()
    assert clock.left(5) == pytest.approx(5 * 1.0 + 20 * 3.0)  # 5 pre-training steps, 20 per-class at 3 s
    state.phase = "per-class"
    for _ in range(5):  # per-class steps of 2.5 s: measured, they replace the estimate
        now["t"] += 2.5
        clock.tick()
    assert clock.left(15) == pytest.approx(15 * 2.5)


def test_fit_states_every_phase_and_the_teachers_time_up_front(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """--steps 4 with an unlabeled folder runs 6 steps: said before training, with the teacher's timed share."""
    from conftest import tiny_config

    from gan_augment import fit

    lines: list[str] = []

    class Recording(Reporter):
        def message(self, text: str) -> None:
            lines.append(text)

    cfg = tiny_config(steps=4, pretrain_steps=-1, teacher="ssl", teacher_steps=3)
    fit(*folders, tmp_path / "run", cfg, device="cpu", reporter=Recording(console=Console(file=io.StringIO())))
    text = "\n".join(lines)
    assert "6 steps in all: 2 of unconditional pre-training on all 20 images, then 4 per-class steps (--steps)" in text
    assert "then the run's ssl teacher: 3 iterations" in text and "timed" in text
