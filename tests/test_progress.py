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
        def progress(self, total: int, completed: int = 0):  # type: ignore[override]
            class Bar:
                def update(self, step: int, row: dict | None) -> None:
                    updates.append((step, row))

            yield Bar()

    reporter = Recording(console=Console(file=io.StringIO()))
    fit(labeled, None, tmp_path / "run", tiny_config(steps=3, log_every=50), device="cpu", reporter=reporter)
    step, row = updates[0]
    assert step == 1 and row is not None and row["img_per_s"] > 0 and {"loss_d", "loss_g"} <= set(row)
