"""One source of evaluate's defaults: Python's evaluate_folders with nothing given runs what the CLI runs."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import gan_augment.evaluate as evaluate_module
from gan_augment.cli import app
from gan_augment.evaluate import evaluate_folders
from gan_augment.evaluate.arms import default_settings, with_gan
from gan_augment.evaluate.registry import DEFAULT_ARMS, default_arms


class _Captured(Exception):
    pass


def test_python_and_the_cli_share_evaluates_defaults(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def capture(labeled, unlabeled, out, arms, seeds, test_fraction, settings, run, reporter, **options):  # noqa: ANN001, ANN202
        seen.update(arms=arms, seeds=seeds, test_fraction=test_fraction, settings=settings, options=options)
        raise _Captured

    monkeypatch.setattr(evaluate_module, "evaluate_folders", capture)
    labeled, unlabeled = folders
    result = CliRunner().invoke(app, ["evaluate", str(labeled), str(unlabeled), "--out", str(tmp_path / "ev"),
                                      "--device", "cpu"])  # fmt: skip
    assert "_Captured" in result.output and seen, result.output  # stopped once it called evaluate_folders
    python = inspect.signature(evaluate_folders).parameters
    assert seen["arms"] is None and python["arms"].default is None  # both: default_arms, chosen in one place
    assert "imbalanced_arms" not in seen["options"] and python["imbalanced_arms"].default is None
    assert list(seen["seeds"]) == list(python["seeds"].default)
    assert seen["test_fraction"] == python["test_fraction"].default
    size = seen["settings"].gan.image_size  # the CLI reads it from the folder; Python's evaluate does too
    assert seen["settings"] == with_gan(default_settings("cpu"), image_size=size)
    assert default_arms(True) == list(DEFAULT_ARMS) and "teacher-unlabeled" not in default_arms(False)
