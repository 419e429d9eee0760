"""Issue 14, item 4: progress reaches a log when the output is not a terminal (nohup, a scheduler):
a plain line every so often with the step, img/s, losses and the time left."""

from __future__ import annotations

import io
import re
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


def _fit_lines(folders: tuple[Path, Path], out: Path, **changes: object) -> list[str]:
    """What ``fit`` says, line by line, for the tiny configuration with ``changes``."""
    from conftest import tiny_config

    from gan_augment import fit

    lines: list[str] = []

    class Recording(Reporter):
        def message(self, text: str) -> None:
            lines.extend(text.splitlines())

    fit(*folders, out, tiny_config(**changes), device="cpu", reporter=Recording(console=Console(file=io.StringIO())))
    return lines


def test_fit_plans_every_phase_with_its_time_and_warns_up_front(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """--steps 4 with an unlabeled folder runs 6 steps: each phase named with its time before anything trains;
    the ssl teacher's conv networks on a CPU are called out in the plan, not once the GAN is done."""
    lines = _fit_lines(folders, tmp_path / "run", steps=4, pretrain_steps=-1, teacher="ssl", teacher_steps=3)
    text = "\n".join(lines)
    assert "6 steps in all: 2 of unconditional pre-training on all 20 images, then 4 per-class steps (--steps)" in text
    start = lines.index("the plan (each phase timed here on its first steps):")
    plan = lines[start + 1 : start + 6]
    names = [line.split("  ")[1] for line in plan]
    assert names == ["GAN pre-training", "GAN per-class", "teacher (ssl)", "teacher's rival", "in all"]
    assert all(re.search(r"about \d+:\d\d", line) for line in plan), plan
    assert "2 steps of one model on all 20 images" in plan[0] and "4 steps of 2 models" in plan[1]
    assert "3 iterations of its conv discriminator" in plan[2] and "labels-only classifier" in plan[3]
    warning = lines[start + 6]
    assert warning.startswith("this teacher will not pay off here") and "use a GPU" in warning
    assert "--teacher auto" in warning  # colour photos, a pool, two labels a class: self-training is there
    first_step = next(i for i, line in enumerate(lines) if line.startswith("pre-training done"))
    assert start < first_step


def test_the_plan_names_both_stages_of_the_self_trained_teacher(folders: tuple[Path, Path], tmp_path: Path) -> None:
    lines = _fit_lines(folders, tmp_path / "run", steps=2, teacher="self-training", teacher_steps=1)
    start = lines.index("the plan (each phase timed here on its first steps):")
    names = [line.split("  ")[1] for line in lines[start + 1 : start + 6]]
    assert names == ["GAN pre-training", "GAN per-class", "teacher, measured", "teacher, final", "in all"]
    assert not any("will not pay off" in line or "on this CPU" in line for line in lines)


def test_the_plan_leaves_the_run_as_it_would_be_without_it(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """The phases are timed on throwaway copies whose random streams are forked: the same weights either way."""
    import torch
    from conftest import tiny_config

    from gan_augment import fit

    cfg = tiny_config(steps=3, pretrain_steps=-1)
    fit(*folders, tmp_path / "quiet", cfg, device="cpu", quiet=True)
    _fit_lines(folders, tmp_path / "told", steps=3, pretrain_steps=-1)
    a, b = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=True)["models"] for r in ("quiet", "told"))
    assert len(a) == len(b) == 2  # one model a class
    for model_a, model_b in zip(a, b):
        for key in ("g", "g_ema", "d"):
            assert all(torch.equal(model_a[key][k], model_b[key][k]) for k in model_a[key]), key


def test_a_teacher_over_an_hour_on_a_cpu_is_called_out(folders: tuple[Path, Path]) -> None:
    import torch
    from conftest import tiny_config

    from gan_augment.data import load_image_data
    from gan_augment.train.teacher import SLOW_TEACHER_SECONDS, teacher_warning

    data = load_image_data(*folders, image_size=16)
    cfg, cpu = tiny_config(teacher="auto"), torch.device("cpu")
    assert teacher_warning(cfg, data, cpu, SLOW_TEACHER_SECONDS / 2) == ""
    slow = teacher_warning(cfg, data, cpu, 2 * SLOW_TEACHER_SECONDS)
    assert slow.startswith("the teacher will take about 2:00:00 on this CPU") and "--teacher supervised" in slow
    assert teacher_warning(cfg, data, torch.device("cuda"), 2 * SLOW_TEACHER_SECONDS) == ""  # a GPU: no warning
