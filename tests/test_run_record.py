"""The run record: one typed schema for a run's checkpoint, written by training and read by every command."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from gan_augment import load_generator
from gan_augment.errors import CheckpointError, UsageError
from gan_augment.io import RunRecord, TrainState, load_checkpoint, load_run
from gan_augment.io.checkpoint import save_checkpoint


def test_the_record_reads_back_what_training_wrote(tiny_run: Path) -> None:
    raw = load_checkpoint(tiny_run)
    run = load_run(tiny_run)
    assert run.state.step == raw["step"] == 2 and run.state.phase == raw["phase"] == "per-class"
    assert run.config.to_dict() == raw["config"] and run.model.to_dict() == raw["model_config"]
    assert run.class_names == raw["class_names"] and run.format_version == raw["format_version"]
    again = run.to_dict()
    assert set(again) == set(raw) - {"format_version", "package_version"}  # save_checkpoint stamps those
    assert all(again[k] == raw[k] for k in again if k not in ("models", "rng", "pretrained"))


def test_a_checkpoint_written_before_the_training_state_still_loads(tiny_run: Path, tmp_path: Path) -> None:
    """Format-1 checkpoints of earlier releases had no train_state (rates and batch in the config)."""
    raw = load_checkpoint(tiny_run)
    del raw["train_state"], raw["elapsed_s"]
    save_checkpoint(raw, tmp_path / "old.pt")
    run = load_run(tmp_path / "old.pt")
    cfg = run.config
    assert (run.state.lr_g, run.state.lr_d, run.state.batch_size) == (cfg.lr_g, cfg.lr_d, cfg.batch_size)
    assert (run.state.rollbacks, run.state.oom_retries, run.state.elapsed_s) == (0, 0, 0.0)
    gen, info = load_generator(tmp_path / "old.pt", device="cpu")
    assert info.step == 2 and gen(torch.zeros(2, info.model.z_dim), torch.tensor([0, 1])).shape[0] == 2


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("step", "7", "step is a str"),
        ("class_names", ["a", 3], "class_names"),
        ("models", [], "models"),
        ("phase", "sideways", "phase 'sideways'"),
        ("config", None, "config is a NoneType"),
    ],
)
def test_wrong_contents_are_one_error_naming_the_file(
    tiny_run: Path, tmp_path: Path, key: str, value: object, says: str
) -> None:
    raw = load_checkpoint(tiny_run)
    raw[key] = value
    save_checkpoint(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="bad.pt") as err:
        load_run(tmp_path / "bad.pt")
    assert says in str(err.value)


def test_a_classifier_is_not_taken_for_a_run(tiny_run: Path, tmp_path: Path) -> None:
    save_checkpoint({"kind": "ssl", "class_names": ["a", "b"]}, tmp_path / "classifier.pt")
    with pytest.raises(CheckpointError, match="holds a classifier, not a run"):
        load_run(tmp_path / "classifier.pt")


def test_the_training_state_refuses_impossible_values() -> None:
    state = TrainState.start(tiny_config(), "unconditional")
    assert state.step == 0 and state.rollbacks == 0
    with pytest.raises(UsageError, match="impossible training state"):
        dataclasses.replace(state, batch_size=0)
    fields = {f.name for f in dataclasses.fields(RunRecord)}
    assert {"config", "model", "state", "models", "format_version"} <= fields


def test_every_command_reads_the_run_through_the_record(tiny_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """info, report, sample and load_generator all go through RunRecord.from_dict (one schema)."""
    from typer.testing import CliRunner

    from gan_augment.cli import app

    calls = []
    real = RunRecord.from_dict.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(RunRecord, "from_dict", classmethod(lambda cls, d: calls.append(1) or real(cls, d)))
    runner = CliRunner()
    grid = tiny_run.parent / "grid.png"
    for args in (
        ["info", str(tiny_run)],
        ["report", str(tiny_run), "--out", str(tiny_run.parent / "r.html")],
        ["sample", str(tiny_run), "--n", "4", "--out", str(grid), "--device", "cpu"],
    ):
        before = len(calls)
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert len(calls) > before, args
    assert grid.is_file()
    before = len(calls)
    load_generator(tiny_run, device="cpu")
    assert len(calls) > before
