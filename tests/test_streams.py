"""Issue 13, item 5: output that nobody reads any more (``| head -1``, a closed stderr) is not an
error, and never stops a training run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_CLI
from test_reliability import fit_cli

from gan_augment.io import load_checkpoint

CLI = [sys.executable, "-m", "gan_augment.cli"]
TINY = [a for a in TINY_CLI if a != "--quiet"]  # conftest's tiny run, printing its progress
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture
def run(labeled: Path, tmp_path: Path) -> Path:
    assert fit_cli(str(labeled), "--out", str(tmp_path / "run"))[0] == 0
    return tmp_path / "run"


@pytest.mark.parametrize("args", [["--json"], []])
def test_info_into_a_reader_that_went_away_is_quiet(run: Path, args: list[str]) -> None:
    """``gan-augment info --json | head -1``: no error message, no "Exception ignored" noise."""
    proc = subprocess.Popen([*CLI, "info", str(run), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 1)
    assert err == "", err


@pytest.mark.slow  # a training subprocess
def test_fit_keeps_training_when_its_log_pipe_closes(labeled: Path, tmp_path: Path) -> None:
    """``gan-augment fit ... 2>&1 | head -1``: the run goes on to its last step and checkpoint."""
    out = tmp_path / "run"
    cmd = [*CLI, "fit", str(labeled), "--out", str(out), *TINY, "--steps", "40", "--sample-every", "1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV)
    assert proc.stdout is not None
    assert proc.stdout.readline()  # the first line (the data summary), as `head -1` reads it
    proc.stdout.close()
    assert proc.wait(timeout=300) == 0
    assert load_checkpoint(out)["step"] == 40


@pytest.mark.slow  # training subprocesses
def test_a_closed_stderr_is_not_an_error(labeled: Path, tmp_path: Path) -> None:
    """``2>&-``: the job runs; an expected error still exits 2 (with nowhere to say it)."""
    out = tmp_path / "run"
    close_stderr = lambda: os.close(2)  # noqa: E731
    cmd = [*CLI, "fit", str(labeled), "--out", str(out), *TINY, "--steps", "2"]
    ok = subprocess.run(cmd, stdout=subprocess.DEVNULL, preexec_fn=close_stderr, env=ENV, timeout=300)
    assert ok.returncode == 0 and load_checkpoint(out)["step"] == 2
    bad = subprocess.run([*cmd[:4], str(tmp_path / "missing"), *cmd[5:]], preexec_fn=close_stderr, env=ENV, timeout=300)
    assert bad.returncode == 2
