"""The usage examples in docs/examples run as written (so the docs cannot rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each example in a subprocess

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


@pytest.mark.parametrize(
    ("script", "run", "extra"),
    [
        ("torchvision_loop.py", "per-class", ["1"]),
        ("torchvision_loop.py", "taught", ["1"]),
        ("albumentations_loop.py", "per-class", ["1"]),
        ("sklearn_features.py", "unconditional", []),
    ],
)
def test_example_runs(trained: dict[str, Path], script: str, run: str, extra: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), str(trained[run]), str(trained["labeled"]), *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert ("epoch 0: loss" in result.stdout) or ("fold accuracy" in result.stdout)
