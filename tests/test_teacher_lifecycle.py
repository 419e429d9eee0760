"""Issue 30: a run's teacher is finished, interrupted, missing, unreadable or none by choice, and every
entry point says which and what to do; ``--resume`` applies teacher options (and keeps them) or refuses
them by name. Each test failed on the code before the change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_reliability import one_line_error
from test_teacher import TEACHER_STEPS, runner, teacher_config, teacher_interrupted_at
from torchvision.datasets import ImageFolder

from gan_augment import DiscriminatorFeatures, GANAugmentedDataset, fit
from gan_augment.cli import app
from gan_augment.io import load_checkpoint
from gan_augment.io.checkpoint import TEACHER_NAME
from gan_augment.train.teacher_status import TeacherStateError, describe_teacher


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, gray: dict[str, Path]) -> dict[str, Path]:
    """Copies of the gray run with its teacher interrupted (at iteration 5), removed, and corrupt."""
    root = tmp_path_factory.mktemp("lifecycle")
    with teacher_interrupted_at(5):
        fit(gray["labeled"], gray["unlabeled"], root / "interrupted", teacher_config(), device="cpu", quiet=True)
    for name in ("missing", "corrupt"):
        shutil.copytree(gray["run"], root / name)
    (root / "missing" / TEACHER_NAME).unlink()
    (root / "corrupt" / TEACHER_NAME).write_bytes(b"PK\x03\x04 not a teacher any more")
    return {**gray, "interrupted": root / "interrupted", "missing": root / "missing", "corrupt": root / "corrupt"}


@pytest.fixture(scope="module")
def gray(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from conftest import gray_runs

    return gray_runs(tmp_path_factory.mktemp("teacher-lifecycle"), {"run": teacher_config()})


STATES = {"interrupted": ("training", "interrupted at iteration 5"), "missing": ("missing", "not trained"),
          "corrupt": ("unreadable", "trains it again")}  # fmt: skip


class TestEveryEntryPointSaysWhichStateAndWhatToDo:
    @pytest.mark.parametrize("which", list(STATES))
    def test_the_dataset_never_falls_back_to_the_generators_labels(self, which: str, runs: dict[str, Path]) -> None:
        """An interrupted or missing teacher used to be taken for none: the generator's labels, the worst measured."""
        with pytest.raises(TeacherStateError, match=STATES[which][1]) as err:
            GANAugmentedDataset(ImageFolder(runs["labeled"]), runs[which], device="cpu")
        assert "--resume" in str(err.value) and "labels='generator'" in str(err.value)
        ds = GANAugmentedDataset(ImageFolder(runs["labeled"]), runs[which], labels="generator", device="cpu")
        assert ds.labels == "generator"  # asked for: no teacher needed

    @pytest.mark.parametrize("which", list(STATES))
    def test_features_never_switch_to_other_features(self, which: str, runs: dict[str, Path]) -> None:
        """``auto`` used to switch to the discriminator's features (384 columns instead of 2,720) without a word."""
        with pytest.raises(TeacherStateError, match=STATES[which][1]):
            DiscriminatorFeatures(runs[which]).fit()
        assert DiscriminatorFeatures(runs[which], source="discriminator").fit().n_features_out_ > 0

    @pytest.mark.parametrize("which", list(STATES))
    def test_predict_and_info_name_the_state(self, which: str, runs: dict[str, Path], tmp_path: Path) -> None:
        result = runner.invoke(app, ["predict", str(runs[which]), str(runs["unlabeled"]), "--out",
                                     str(tmp_path / "p.csv"), "--device", "cpu"])  # fmt: skip
        one_line_error(result.exit_code, result.output, STATES[which][1], "--resume")
        info = runner.invoke(app, ["info", str(runs[which]), "--json"])
        assert info.exit_code == 0, info.output  # a corrupt teacher.pt used to make the whole run unreadable
        assert json.loads(info.output)["teacher"]["state"] == STATES[which][0]
        assert describe_teacher(runs[which])["state"] == STATES[which][0]

    def test_a_corrupt_teacher_is_trained_again_on_resume(self, runs: dict[str, Path], tmp_path: Path) -> None:
        run = tmp_path / "run"
        shutil.copytree(runs["corrupt"], run)
        result = runner.invoke(app, ["fit", str(runs["labeled"]), str(runs["unlabeled"]), "--out", str(run),
                                     "--resume"])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert describe_teacher(run)["state"] == "trained"


class TestResumeWithTeacherOptions:
    def args(self, runs: dict[str, Path], run: Path, *more: str) -> list[str]:
        return ["fit", str(runs["labeled"]), str(runs["unlabeled"]), "--out", str(run), "--resume", "--quiet", *more]

    def test_teacher_none_on_resume_of_a_run_with_a_teacher_is_refused(
        self, runs: dict[str, Path], tmp_path: Path
    ) -> None:
        """It used to be accepted and ignored: the run kept its teacher."""
        for which in ("run", "interrupted"):
            run = tmp_path / which
            shutil.copytree(runs[which], run)
            result = runner.invoke(app, self.args(runs, run, "--teacher", "none"))
            one_line_error(result.exit_code, result.output, "--teacher none", "--resume")

    def test_a_teacher_chosen_on_resume_is_kept_by_a_later_resume(self, runs: dict[str, Path], tmp_path: Path) -> None:
        """The choice was not saved: a later plain --resume trained the other kind again."""
        run = tmp_path / "run"
        shutil.copytree(runs["run"], run)
        assert runner.invoke(app, self.args(runs, run, "--teacher", "supervised")).exit_code == 0
        assert load_checkpoint(run / TEACHER_NAME)["kind"] == "supervised"
        assert load_checkpoint(run)["config"]["teacher"] == "supervised"
        result = runner.invoke(app, self.args(runs, run))
        assert result.exit_code == 0, result.output
        assert load_checkpoint(run / TEACHER_NAME)["kind"] == "supervised"

    def test_a_raised_budget_continues_an_interrupted_teacher(self, runs: dict[str, Path], tmp_path: Path) -> None:
        """Raising --teacher-steps on --resume used to start the teacher again from iteration 0."""
        run = tmp_path / "run"
        shutil.copytree(runs["interrupted"], run)
        more = ["--teacher-steps", str(TEACHER_STEPS + 4)]
        result = runner.invoke(app, [a for a in self.args(runs, run, *more) if a != "--quiet"])  # its messages
        assert result.exit_code == 0, result.output
        assert f"resuming the ssl teacher at iteration 5 of {TEACHER_STEPS + 4}" in result.output
        assert load_checkpoint(run / TEACHER_NAME)["metrics"]["steps"] == TEACHER_STEPS + 4
