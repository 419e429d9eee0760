"""Issue 31: on colour images with an unlabeled pool the run's teacher is self-trained (a small ResNet on the
labels, then rounds on the pool), measured against its own labels-only network on held-out labeled images,
never handed over when it measured worse, resumable phase by phase, and its budget follows the data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import tiny_config, write_folder
from typer.testing import CliRunner

from gan_augment import GANAugmentedDataset, fit
from gan_augment.cli import app
from gan_augment.errors import UsageError
from gan_augment.io import load_checkpoint
from gan_augment.io.checkpoint import TEACHER_NAME, TEACHER_TRAINING_NAME
from gan_augment.train import self_training
from gan_augment.train.self_training import ROUND_STEPS, Student, aligned_pick, self_training_config

runner = CliRunner()
STEPS = 60  # every phase of the tiny teacher together


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Colour images of 3 classes (10 labeled each: 2 held out of each class) and 30 unlabeled ones."""
    root = tmp_path_factory.mktemp("self")
    labeled = write_folder(root / "labeled", ["dark", "mid", "light"], [10, 10, 10])
    return labeled, write_folder(root / "unlabeled", ["a", "b", "c"], [10, 10, 10], seed=1)


def colour_run(folders: tuple[Path, Path], out: Path, reporter: Any = None, **changes: object) -> Path:
    cfg = tiny_config(steps=1, teacher=changes.pop("teacher", "auto"), teacher_steps=STEPS, **changes)
    fit(*folders, out, cfg, device="cpu", quiet=reporter is None, reporter=reporter)
    return out


def recording() -> tuple[Any, list[str]]:
    from gan_augment.progress import Reporter

    lines: list[str] = []

    class Recording(Reporter):
        def message(self, text: str) -> None:
            lines.append(text)

    return Recording(quiet=True), lines


@pytest.fixture(scope="module")
def run(folders: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colour_run(folders, tmp_path_factory.mktemp("run") / "run")


def untrained_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rounds' students learn nothing (their weights stay as initialised); the labels-only network trains."""
    original = Student.train

    def train(self: Student, labeled: Any, pool: Any, flip: bool, on_step: Any) -> torch.nn.Module:
        if pool is None:
            return original(self, labeled, pool, flip, on_step)
        return self.model.eval()

    monkeypatch.setattr(Student, "train", train)


class TestTheColourTeacher:
    def test_auto_self_trains_on_colour_images_with_a_pool_and_hands_it_over(
        self, run: Path, folders: tuple[Path, Path]
    ) -> None:
        state = load_checkpoint(run / TEACHER_NAME)
        assert state["kind"] == "self-training" and state["architecture"] == "small-resnet"
        held = state["metrics"]["heldout"]
        assert held["images"] == 6 and held["kept"] == "teacher" and held["teacher_only"] >= held["labels_only_only"]
        # Measured on 24 labeled images (6 held out), then trained again on all 30: the network handed over.
        assert state["metrics"]["num_labeled"] == 30 and state["metrics"]["num_unlabeled"] == 30
        measured, refit = state["settings"]["ssl_config"], state["ssl_config"]
        assert len(refit["round_steps"]) == 4 and refit["steps"] == refit["labels_steps"] + sum(refit["round_steps"])
        assert state["metrics"]["steps"] == measured["steps"] + refit["steps"]
        assert not (run / TEACHER_TRAINING_NAME).exists()
        info = json.loads(runner.invoke(app, ["info", str(run), "--json"]).output)
        assert info["teacher"]["heldout"]["teacher"] == held["teacher"]
        assert info["teacher"]["heldout"]["labels_only"] == held["labels_only"]
        from torchvision.datasets import ImageFolder

        ds = GANAugmentedDataset(ImageFolder(str(folders[0])), run, device="cpu")
        assert ds.teacher is not None and ds.teacher.kind == "self-training"
        _, y = ds[len(ds) - 1]  # an extra item, labeled by the teacher: its class probabilities
        target = torch.as_tensor(y, dtype=torch.float32)
        assert target.shape == (3,) and abs(float(target.sum()) - 1) < 1e-4

    def test_predict_and_features_take_the_self_trained_teacher(self, run: Path, folders: tuple[Path, Path]) -> None:
        from gan_augment import DiscriminatorFeatures
        from gan_augment.classify import Predictor

        predictor = Predictor(run, device="cpu")
        images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
        probs = predictor.predict_proba(images)
        assert probs.shape == (4, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
        features = DiscriminatorFeatures(run, source="teacher").fit(np.zeros((2, 16, 16, 3), np.uint8))
        out = features.transform(np.zeros((2, 16, 16, 3), np.uint8))
        assert out.shape[0] == 2 and out.shape[1] > 0 and np.isfinite(out).all()

    def test_auto_keeps_the_labels_only_network_when_the_rounds_measured_worse_and_says_so(
        self, folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        untrained_rounds(monkeypatch)
        reporter, lines = recording()
        colour_run(folders, tmp_path / "run", reporter)
        state = load_checkpoint(tmp_path / "run" / TEACHER_NAME)
        held = state["metrics"]["heldout"]
        assert held["labels_only"] > held["teacher"] and held["kept"] == "labels_only"
        assert state["kind"] == "supervised" and state["architecture"] == "small-resnet"
        assert state["ssl_config"]["round_steps"] == []  # trained again on every label, with no round
        assert any("keeping the labels-only network" in line and "measured worse" in line for line in lines)

    def test_asking_for_self_training_keeps_it_and_says_it_measured_worse(
        self, folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        untrained_rounds(monkeypatch)
        reporter, lines = recording()
        colour_run(folders, tmp_path / "run", reporter, teacher="self-training")
        state = load_checkpoint(tmp_path / "run" / TEACHER_NAME)
        assert state["kind"] == "self-training" and state["metrics"]["heldout"]["kept"] == "teacher"
        assert any("--teacher self-training asks for it" in line for line in lines)

    @pytest.mark.parametrize(("call", "stage"), [(3, "measure"), (8, "refit")])
    def test_a_stopped_teacher_resumes_after_its_last_finished_phase_exactly(
        self, folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: int, stage: str
    ) -> None:
        """Ctrl-C in the third phase of the measuring stage (labels-only and round 1 saved), or of the refit
        (the five measuring phases and the choice saved, then two refit phases)."""
        original = self_training.Student.train
        calls = {"n": 0}

        def stop_at(self: Student, labeled: Any, pool: Any, flip: bool, on_step: Any) -> torch.nn.Module:
            calls["n"] += 1
            if calls["n"] == call:
                raise KeyboardInterrupt
            return original(self, labeled, pool, flip, on_step)

        with monkeypatch.context() as mp:
            mp.setattr(self_training.Student, "train", stop_at)
            with pytest.raises(KeyboardInterrupt):
                colour_run(folders, tmp_path / "run")
        saved = load_checkpoint(tmp_path / "run" / TEACHER_TRAINING_NAME)["training"]
        assert (saved["stage"], saved["phase"]) == (stage, 2)
        assert not (tmp_path / "run" / TEACHER_NAME).exists()
        from gan_augment.train.teacher_status import describe_teacher

        shown = describe_teacher(tmp_path / "run")  # what info says: steps over both stages
        assert shown["state"] == "training" and shown["kind"] == "self-training"
        assert shown["step"] == saved["step"] and 0 < shown["step"] < shown["steps"] == saved["steps"]
        result = runner.invoke(app, ["fit", *map(str, folders), "--out", str(tmp_path / "run"), "--resume"])
        assert result.exit_code == 0, result.output
        assert "resuming after phase 2" in " ".join(result.output.split())
        straight = colour_run(folders, tmp_path / "straight")
        resumed, whole = (load_checkpoint(p / TEACHER_NAME) for p in (tmp_path / "run", straight))
        assert all(torch.equal(resumed["d"][k], whole["d"][k]) for k in whole["d"])
        assert resumed["metrics"]["heldout"] == whole["metrics"]["heldout"]

    def test_gray_images_keep_the_semi_supervised_teacher(self, tmp_path: Path) -> None:
        labeled = write_folder(tmp_path / "l", ["dark", "light"], [6, 6], channels=1)
        unlabeled = write_folder(tmp_path / "u", ["a"], [8], channels=1, seed=1)
        fit(labeled, unlabeled, tmp_path / "run", tiny_config(steps=1, channels=1, teacher="auto", teacher_steps=4),
            device="cpu", quiet=True)  # fmt: skip
        assert load_checkpoint(tmp_path / "run" / TEACHER_NAME)["kind"] == "ssl"

    def test_self_training_without_a_pool_is_refused_with_what_to_do(self, tmp_path: Path) -> None:
        labeled = write_folder(tmp_path / "l", ["a", "b"], [4, 4])
        with pytest.raises(UsageError, match="--teacher self-training needs an UNLABELED folder"):
            fit(labeled, None, tmp_path / "run", tiny_config(steps=1, teacher="self-training"), device="cpu",
                quiet=True)  # fmt: skip
        assert not (tmp_path / "run" / "checkpoint.pt").exists()  # refused before the GAN trains


class TestTheBudgetFollowsTheData:
    def test_a_tiny_folder_takes_the_fewest_steps_and_cifar_sized_data_the_most(self) -> None:
        tiny = self_training_config(labeled=27, pool=90, seed=0)
        big = self_training_config(labeled=200, pool=44_750, seed=0)
        assert tiny.round_steps == (ROUND_STEPS[0],) * 4 and tiny.steps < 600
        assert big.round_steps == (ROUND_STEPS[1],) * 4 and big.labels_steps == 782
        assert tiny.steps < big.steps / 5

    def test_teacher_steps_scale_every_phase_to_add_up_to_them(self) -> None:
        cfg = self_training_config(labeled=200, pool=44_750, seed=0, steps=1000)
        assert abs(cfg.steps - 1000) <= 2 and cfg.labels_steps < cfg.round_steps[0]


def test_the_pool_keeps_the_labeled_classes_balance_not_the_teachers_bias() -> None:
    """A teacher that puts 90% of the pool in class 0: after alignment each class keeps as many images."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1000, 3, generator=g)
    logits[:, 0] += 3.0
    probs = logits.softmax(1)
    assert (probs.argmax(1) == 0).float().mean() > 0.8
    idx, targets = aligned_pick(probs, torch.full((3,), 1 / 3), share=0.3)
    counts = torch.bincount(targets.argmax(1), minlength=3)
    assert counts.tolist() == [100, 100, 100] and len(set(idx.tolist())) == 300
    assert torch.equal(targets.sum(1), torch.ones(300))  # one class each


@pytest.mark.parametrize(
    ("b", "c", "kept"),
    [(0, 0, True), (0, 1, True), (4, 6, True), (5, 5, True), (0, 2, False), (1, 5, False), (3, 12, False)],
)
def test_self_training_is_kept_unless_it_measured_worse_by_more_than_chance(b: int, c: int, kept: bool) -> None:
    """c − b > √(b + c) hands over the labels-only network (b: images only the teacher got right, c: only it)."""
    from gan_augment.train.teacher_choice import Heldout

    held = Heldout.of(torch.tensor([True] * b + [False] * c), torch.tensor([False] * b + [True] * c))
    assert held.not_clearly_worse() is kept


def test_a_teacher_stopped_between_its_two_stages_is_shown_as_training(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the refit's first phase: the file holds the choice and no refit phase yet; info shows the
    teacher training, at the end of its measuring stage (it once read as unreadable: the file had no step)."""
    from gan_augment.train.teacher_status import describe_teacher

    original, calls = self_training.Student.train, {"n": 0}

    def stop_at(self: Student, labeled: Any, pool: Any, flip: bool, on_step: Any) -> torch.nn.Module:
        calls["n"] += 1
        if calls["n"] == 6:  # the five measuring phases done: the refit's first
            raise KeyboardInterrupt
        return original(self, labeled, pool, flip, on_step)

    monkeypatch.setattr(self_training.Student, "train", stop_at)
    with pytest.raises(KeyboardInterrupt):
        colour_run(folders, tmp_path / "run")
    saved = load_checkpoint(tmp_path / "run" / TEACHER_TRAINING_NAME)
    assert (saved["training"]["stage"], saved["training"]["phase"]) == ("refit", 0)
    shown = describe_teacher(tmp_path / "run")
    measured = int(saved["settings"]["ssl_config"]["steps"])
    assert shown["state"] == "training" and shown["step"] == measured < shown["steps"] == saved["training"]["steps"]
