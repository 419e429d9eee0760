"""Issue 31: the run's semi-supervised teacher is measured against a labels-only classifier on held-out
labeled images, and ``--teacher auto`` never hands over one that measured worse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_config, write_folder
from test_teacher import teacher_interrupted_at
from typer.testing import CliRunner

from gan_augment import GANAugmentedDataset, fit
from gan_augment.cli import app
from gan_augment.io import load_checkpoint
from gan_augment.io.checkpoint import TEACHER_NAME
from gan_augment.train import ssl as ssl_module
from gan_augment.train.teacher_choice import Heldout

runner = CliRunner()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Gray dark and light images (10 labeled each: 2 held out of each class) and 8 unlabeled ones."""
    root = tmp_path_factory.mktemp("choice")
    labeled = write_folder(root / "labeled", ["dark", "light"], [10, 10], channels=1)
    return labeled, write_folder(root / "unlabeled", ["a", "b"], [4, 4], channels=1, seed=1)


def untrained_ssl(monkeypatch: pytest.MonkeyPatch) -> None:
    """The semi-supervised teacher learns nothing (its weights stay as initialised); the labels-only one trains."""
    original = ssl_module.SSLRun.train_step

    def step(self: ssl_module.SSLRun) -> dict[str, torch.Tensor]:
        if self.supervised:
            return original(self)
        self.step += 1
        return {}

    monkeypatch.setattr(ssl_module.SSLRun, "train_step", step)


def teacher_run(folders: tuple[Path, Path], out: Path, **changes: object) -> Path:
    cfg = tiny_config(steps=1, channels=1, teacher="auto", teacher_steps=80, **changes)
    fit(*folders, out, cfg, device="cpu", quiet=True)
    return out


class TestNeverWorseThanTheLabelsAlone:
    def test_auto_keeps_the_labels_only_classifier_when_the_teacher_measured_worse_and_says_so(
        self, folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        untrained_ssl(monkeypatch)
        args = ["fit", *map(str, folders), "--out", str(tmp_path / "run"), "--image-size", "16", "--batch-size",
                "4", "--g-width", "8", "--d-width", "8", "--z-dim", "8", "--steps", "1", "--teacher-steps", "80",
                "--channels", "1", "--device", "cpu"]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert "keeping the labels-only classifier" in said and "measured no better" in said
        state = load_checkpoint(tmp_path / "run" / TEACHER_NAME)
        held = state["metrics"]["heldout"]
        assert state["kind"] == "supervised" and held["kept"] == "labels_only" and held["images"] == 4
        assert held["labels_only"] > held["teacher"]
        info = json.loads(runner.invoke(app, ["info", str(tmp_path / "run"), "--json"]).output)
        assert info["teacher"]["heldout"]["teacher"] == held["teacher"]
        assert info["teacher"]["heldout"]["labels_only"] == held["labels_only"]
        ds = GANAugmentedDataset(torch_folder(folders[0]), tmp_path / "run", device="cpu")
        assert ds.teacher is not None and ds.teacher.kind == "supervised"  # the one the run handed over

    def test_teacher_ssl_keeps_it_and_says_it_measured_no_better(
        self, folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        untrained_ssl(monkeypatch)
        lines: list[str] = []
        from gan_augment.progress import Reporter

        class Recording(Reporter):
            def message(self, text: str) -> None:
                lines.append(text)

        cfg = tiny_config(steps=1, channels=1, teacher="ssl", teacher_steps=80)
        fit(*folders, tmp_path / "run", cfg, device="cpu", reporter=Recording())
        state = load_checkpoint(tmp_path / "run" / TEACHER_NAME)
        assert state["kind"] == "ssl" and state["metrics"]["heldout"]["kept"] == "teacher"
        assert any("--teacher ssl asks for it" in line for line in lines)

    def test_a_resumed_teacher_does_not_train_its_rival_again(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        with teacher_interrupted_at(10):
            teacher_run(folders, tmp_path / "run", checkpoint_every=5)
        args = ["fit", *map(str, folders), "--out", str(tmp_path / "run"), "--resume"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert "resuming the ssl teacher at iteration 10" in said and "first the labels-only" not in said
        assert "held-out labeled images" in said
        teacher_run(folders, tmp_path / "straight", checkpoint_every=5)
        resumed, straight = (load_checkpoint(p / TEACHER_NAME) for p in (tmp_path / "run", tmp_path / "straight"))
        untimed = [
            {k: v for k, v in t["metrics"]["heldout"].items() if k != "labels_only_seconds"}
            for t in (resumed, straight)
        ]
        assert untimed[0] == untimed[1]
        assert all(torch.equal(resumed["d"][k], straight["d"][k]) for k in straight["d"])


def torch_folder(path: Path):
    from torchvision.datasets import ImageFolder

    return ImageFolder(str(path))


@pytest.mark.parametrize(
    ("b", "c", "kept"),
    [
        (0, 0, True),
        (1, 0, True),
        (0, 1, False),
        (2, 1, False),
        (3, 1, True),
        (4, 2, False),
        (4, 1, True),
        (10, 5, True),
    ],
)
def test_the_teacher_is_kept_only_when_it_beats_the_labels_alone_by_more_than_chance(b: int, c: int, kept: bool):
    """b − c ≥ √(b + c): images only the teacher gets right, against those only the labels-only classifier does."""
    right_t = torch.tensor([True] * b + [False] * c + [True, False])
    right_s = torch.tensor([False] * b + [True] * c + [True, False])
    held = Heldout.of(right_t, right_s)
    assert (held.teacher_only, held.labels_only_only, held.images) == (b, c, b + c + 2)
    assert held.keeps_ssl() is kept
