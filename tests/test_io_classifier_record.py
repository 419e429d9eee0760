"""The classifier files, typed: a run's teacher.pt and classify's classifier.pt read as records, in one place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from typer.testing import CliRunner

from gan_augment import classify
from gan_augment.cli import app
from gan_augment.errors import CheckpointError
from gan_augment.io import load_checkpoint
from gan_augment.io.checkpoint import save_checkpoint
from gan_augment.io.classifier_record import (
    FeaturesRecord,
    NetworkRecord,
    classifier_record,
    load_classifier_record,
)

runner = CliRunner()


def test_a_runs_teacher_is_a_network_record(trained: dict[str, Path]) -> None:
    record = load_classifier_record(trained["taught"] / "teacher.pt")
    assert (
        isinstance(record, NetworkRecord) and record.kind == "self-training" and record.class_names == ["dark", "light"]
    )
    net = record.build()
    assert not net.training and net(torch.zeros(2, 3, record.image_size, record.image_size)).shape == (2, 2)


def test_a_run_checkpoint_or_a_wrong_field_is_refused_naming_the_file(trained: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint.pt' is a GAN checkpoint, not a classifier"):
        classifier_record(load_checkpoint(trained["per-class"]), trained["per-class"] / "checkpoint.pt")
    state = load_checkpoint(trained["taught"] / "teacher.pt")
    state["class_names"] = "dark"  # a string, not a list
    bad = tmp_path / "teacher.pt"
    save_checkpoint({k: v for k, v in state.items() if k not in ("format_version", "package_version")}, bad)
    with pytest.raises(CheckpointError, match="teacher.pt"):
        load_classifier_record(bad)
    state["kind"] = "mystery"
    with pytest.raises(CheckpointError, match="of kind 'mystery', not a classifier"):
        classifier_record(state, bad)


def test_info_on_a_classifier_shows_its_own_fields(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """info reads a classifier's typed record, not a run's keys from its dict."""
    labeled, unlabeled = folders
    classify(labeled, unlabeled, tmp_path / "clf", "features", tiny_config(steps=2), device="cpu", quiet=True)
    assert isinstance(load_classifier_record(tmp_path / "clf" / "classifier.pt"), FeaturesRecord)
    result = runner.invoke(app, ["info", str(tmp_path / "clf" / "classifier.pt"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["classifier"] == "features" and summary["num_classes"] == 2 and "mode" not in summary
    text = runner.invoke(app, ["info", str(tmp_path / "clf" / "classifier.pt")]).output
    assert "classifier: features" in text and "images: 16×16" in text
