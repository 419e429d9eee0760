"""Issue 22: TensorBoard logs, an optional extra: fit --tensorboard writes the GAN's losses and D(x), its
sample grids and the teacher's curves; evaluate --tensorboard its accuracies; read back with tensorboard's
own reader."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_reliability import runner

from gan_augment.cli import app

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TINY = ["--image-size", "16", "--g-width", "4", "--d-width", "4", "--z-dim", "8", "--batch-size", "4",
        "--device", "cpu", "--quiet"]  # fmt: skip


def _read(folder: Path) -> EventAccumulator:
    files = sorted((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder / 'tensorboard'}"
    acc = EventAccumulator(str(folder / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    return acc.Reload()


def test_fit_writes_losses_samples_and_the_teachers_curves(folders: tuple[Path, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["fit", *map(str, folders), "--out", str(run), "--steps", "4", "--sample-every", "2",
            "--teacher", "ssl", "--teacher-steps", "50", "--tensorboard", *TINY]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    events = _read(run)
    tags = events.Tags()
    assert {"gan/loss_d", "gan/loss_g", "gan/d_real", "gan/d_fake", "teacher/loss_lab"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("gan/loss_d")][-1] == 6  # 2 pre-training + 4 per-class steps
    assert [e.step for e in events.Scalars("teacher/loss_lab")] == [50]
    assert "samples" in tags["images"] and len(events.Images("samples")) >= 2
    again = runner.invoke(app, [*args, "--overwrite"])  # the run's own event files are replaced, not kept
    assert again.exit_code == 0, again.output


def test_evaluate_writes_its_accuracies(folders: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "ev"
    args = ["evaluate", str(folders[0]), "--out", str(out), "--arms", "baseline", "--seeds", "2",
            "--clf-steps", "2", "--tensorboard", *TINY]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    events = _read(out)
    assert [e.step for e in events.Scalars("accuracy/baseline")] == [0, 1]


def test_without_the_extra_it_says_how_to_install_it(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard → ImportError
    result = runner.invoke(app, ["fit", *map(str, folders), "--out", str(tmp_path / "run"), "--tensorboard", *TINY])
    assert result.exit_code == 2 and "pip install 'gan-augment[tensorboard]'" in result.output
    assert not (tmp_path / "run").exists()  # refused before anything was written
