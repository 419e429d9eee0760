"""``teacher-training.pt`` is typed and read in one place (issue 33): what the three readers (the teacher's resume,
the self-trained teacher's, ``info``) once each parsed from a dict by string keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gan_augment.errors import CheckpointError
from gan_augment.io.checkpoint import TEACHER_TRAINING_NAME, save_checkpoint
from gan_augment.io.teacher_training import TrainingRecord, finished_settings, load_training_record
from gan_augment.train.teacher_status import describe_teacher

SETTINGS = {"kind": "ssl", "ssl_config": {"steps": 40}, "data": {"num_labeled": 12}}


def test_a_record_reads_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / TEACHER_TRAINING_NAME
    rival = {"correct": torch.tensor([True, False])}
    TrainingRecord(SETTINGS, {"step": 7, "w": torch.ones(2)}, rival).save(path)
    record = load_training_record(path)
    assert (record.kind, record.step, record.steps) == ("ssl", 7, 40)  # steps: the configuration's when not saved
    assert torch.equal(record.training["w"], torch.ones(2)) and torch.equal(
        record.labels_only["correct"], rival["correct"]
    )
    TrainingRecord(SETTINGS, {"step": 7, "steps": 90}).save(path)
    assert load_training_record(path).steps == 90 and load_training_record(path).labels_only is None


@pytest.mark.parametrize(
    "state",
    [
        {"settings": SETTINGS, "training": {"step": -3}},  # a step out of range
        {"settings": {**SETTINGS, "kind": 5}, "training": {"step": 1}},  # a kind that is no name
        {"settings": [1, 2], "training": {"step": 1}},  # settings that are no dict
        {"settings": SETTINGS, "training": {"step": 1}, "labels_only": "rival"},
        {"settings": SETTINGS},  # no training
    ],
)
def test_an_ill_formed_file_is_one_line_naming_it_and_info_reads_it_unreadable(state: dict, tmp_path: Path) -> None:
    """``info`` used to report a negative step, or a number for a kind, as a teacher in training."""
    path = tmp_path / TEACHER_TRAINING_NAME
    save_checkpoint(state, path)
    with pytest.raises(CheckpointError, match=TEACHER_TRAINING_NAME) as err:
        load_training_record(path)
    assert "\n" not in str(err.value)
    assert describe_teacher(tmp_path, planned="ssl")["state"] == "unreadable"


def test_finished_settings_of_a_missing_or_foreign_file_is_none(tmp_path: Path) -> None:
    assert finished_settings(tmp_path / "teacher.pt") is None
    save_checkpoint({"settings": SETTINGS}, tmp_path / "teacher.pt")  # no network in it: not a finished teacher
    assert finished_settings(tmp_path / "teacher.pt") is None
