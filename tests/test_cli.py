from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY_CLI
from PIL import Image
from typer.testing import CliRunner

from gan_augment.cli import app
from gan_augment.io import load_checkpoint

runner = CliRunner()

TINY = TINY_CLI


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def run(labeled: Path, unlabeled: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    result = invoke("fit", labeled, unlabeled, "--out", out, "--steps", "2", *TINY)
    assert result.exit_code == 0, result.output
    return out


class TestFit:
    def test_writes_run_directory(self, run: Path) -> None:
        assert {p.name for p in run.iterdir()} >= {"checkpoint.pt", "config.json", "metrics.jsonl", "samples"}
        assert list((run / "samples").glob("step_*.png"))

    def test_resume_trains_longer(self, run: Path, labeled: Path, unlabeled: Path) -> None:
        result = invoke("fit", labeled, unlabeled, "--out", run, "--resume", "--steps", "4", "--quiet")
        assert result.exit_code == 0, result.output
        assert load_checkpoint(run)["step"] == 1 + 4  # pre-training stays at the 1 step (2 // 2) it had

    def test_existing_run_is_refused(self, run: Path, labeled: Path) -> None:
        result = invoke("fit", labeled, "--out", run, "--steps", "1", *TINY)
        assert result.exit_code == 2
        assert "already holds a run" in result.output and "Traceback" not in result.output

    def test_missing_folder(self, tmp_path: Path) -> None:
        result = invoke("fit", tmp_path / "nope", "--out", tmp_path / "run", *TINY)
        assert result.exit_code == 2
        assert "does not exist" in result.output and "Traceback" not in result.output
        assert not (tmp_path / "run").exists()

    @pytest.mark.parametrize(
        ("option", "value", "why"),
        [
            ("--image-size", "4", "greater than or equal to 8"),
            ("--batch-size", "1", "greater than or equal to 2"),
            ("--steps", "0", "greater than or equal to 1"),
            ("--mode", "gan", "'gan' is not one of 'per-class', 'conditional', 'unconditional'"),
            ("--loss", "l2", "'l2' is not one of 'bce', 'wgan-gp', 'hinge'"),
        ],
    )
    def test_bad_values(self, labeled: Path, tmp_path: Path, option: str, value: str, why: str) -> None:
        result = invoke("fit", labeled, "--out", tmp_path / "run", option, value)
        assert result.exit_code == 2
        said = " ".join(result.output.replace("│", " ").split())  # the error box, unwrapped
        assert f"Invalid value for '{option}'" in said and why in said
        assert not (tmp_path / "run").exists()

    def test_unsupported_image_size(self, labeled: Path, tmp_path: Path) -> None:
        result = invoke("fit", labeled, "--out", tmp_path / "run", "--image-size", "30", "--quiet")
        assert result.exit_code == 2 and "image_size=30" in result.output


class TestSample:
    def test_grid_one_row_per_class(self, run: Path, tmp_path: Path) -> None:
        out = tmp_path / "grid.png"
        result = invoke("sample", run, "--n", "6", "--out", out, "--device", "cpu")
        assert result.exit_code == 0, result.output
        with Image.open(out) as im:
            # 2 classes × 3 images of 16 px, upscaled ×4, 2 px padding; a title band of 16 px above
            # and the class names in a margin on the left
            assert im.height == 2 * (64 + 8) + 8 + 16 and im.width > 3 * (64 + 8) + 8

    def test_image_folder(self, run: Path, tmp_path: Path) -> None:
        out_dir = tmp_path / "synthetic"
        result = invoke("sample", run, "--per-class", "3", "--out-dir", out_dir, "--device", "cpu")
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out_dir.iterdir()) == [".gan-augment-run", "class_0", "class_1"]
        assert all(len(list((out_dir / c).glob("*.png"))) == 3 for c in ("class_0", "class_1"))

    def test_unconditional_grid_is_near_square(self, labeled: Path, tmp_path: Path) -> None:
        run = tmp_path / "uncond"
        assert invoke("fit", labeled, "--out", run, "--mode", "unconditional", "--steps", "1", *TINY).exit_code == 0
        result = invoke("sample", run, "--n", "9", "--out", tmp_path / "g.png", "--device", "cpu")
        assert result.exit_code == 0, result.output
        with Image.open(tmp_path / "g.png") as im:
            assert im.size == (3 * (64 + 8) + 8, 3 * (64 + 8) + 8 + 16)  # no class names: a title only

    def test_needs_an_output(self, run: Path) -> None:
        result = invoke("sample", run)
        assert result.exit_code == 2 and "nothing to write" in result.output

    def test_not_a_run(self, tmp_path: Path) -> None:
        result = invoke("sample", tmp_path, "--out", tmp_path / "g.png")
        assert result.exit_code == 2 and "no checkpoint" in result.output


class TestInfo:
    def test_text_and_json(self, run: Path) -> None:
        result = invoke("info", run)
        assert result.exit_code == 0 and "class_0" in result.output and "per-class" in result.output
        data = json.loads(invoke("info", run, "--json").output)
        assert data["step"] == 3 and data["class_names"] == ["class_0", "class_1"]
        assert data["data"]["num_unlabeled"] == 8 and data["num_classes"] == 2 and data["channels"] == 3

    def test_text_says_the_real_class_count_and_channels(self, run: Path) -> None:
        """Issue 14, item 4: readable lines (the settings' auto values, 0 and 0, used to be all one saw)."""
        lines = invoke("info", run).output.splitlines()
        assert "classes: 2: class_0, class_1" in lines[1] and "16×16, 3 channels (RGB)" in lines[2]
        assert lines[0].strip().startswith("run: per-class, step 3 of 3")


class TestErrors:
    """The package's own errors are one line and exit 2; anything else is a bug, and says so."""

    def test_a_bad_value_is_one_line_and_exit_2(self, labeled: Path, tmp_path: Path) -> None:
        result = invoke("fit", labeled, "--out", tmp_path / "r", "--image-size", "18", "--device", "cpu")
        assert result.exit_code == 2
        assert result.output.strip().startswith("Error: image_size=18 is not supported")
        assert "Traceback" not in result.output and "bug" not in result.output

    def test_an_unexpected_exception_is_a_bug_with_a_short_traceback(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        def broken(*args: object, **kwargs: object) -> None:
            raise ValueError("shape mismatch inside a library")  # a ValueError that is not the user's

        monkeypatch.setattr("gan_augment.cli.runs.load_checkpoint", broken)
        result = invoke("info", tmp_path)
        assert result.exit_code == 1
        assert "Traceback" in result.output and "ValueError: shape mismatch inside a library" in result.output
        assert "This is a bug in gan-augment" in result.output and not result.output.startswith("Error:")
        assert result.output.count('File "') <= 6  # the innermost frames only


class TestVersionAndEntryPoints:
    def test_version_and_python_m(self) -> None:
        import subprocess
        import sys

        from gan_augment import __version__

        result = invoke("--version")
        assert result.exit_code == 0 and result.output.strip() == f"gan-augment {__version__}"
        done = subprocess.run([sys.executable, "-m", "gan_augment", "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and "Usage:" in done.stdout and "fit" in done.stdout

    def test_help_shows_the_steps_default_and_completion(self) -> None:
        result = invoke("fit", "--help")
        assert "[default: 5000; 400 on a CPU]" in " ".join(result.output.replace("│", " ").split())  # Rich markup
        assert "--install-completion" in invoke("--help").output

    def test_untrusted_checkpoint(self, tmp_path: Path) -> None:
        marker = tmp_path / "pwned"

        class Evil:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        torch.save({"format_version": 1, "x": Evil()}, tmp_path / "checkpoint.pt")
        result = invoke("info", tmp_path)
        assert result.exit_code == 2 and "not a trusted checkpoint" in result.output
        assert not marker.exists()


class TestDemo:
    def test_demo_runs_end_to_end(self, tmp_path: Path) -> None:
        out = tmp_path / "demo"
        result = invoke("demo", "--out", out, "--steps", "2", "--teacher-steps", "2", "--device", "cpu")
        assert result.exit_code == 0, result.output
        assert "sample grid" in result.output
        assert len(list((out / "data" / "labeled").iterdir())) == 10
        ckpt = load_checkpoint(out / "run")
        assert ckpt["step"] == 6 and ckpt["channels"] == 1 and ckpt["image_size"] == 16
        assert (out / "run" / "samples" / "step_000006.png").is_file()
        # Running it again replaces its own previous run.
        assert (
            invoke("demo", "--out", out, "--steps", "1", "--teacher-steps", "2", "--device", "cpu", "--quiet").exit_code
            == 0
        )

    def test_demo_refuses_foreign_folder(self, tmp_path: Path) -> None:
        (tmp_path / "mine.txt").write_text("keep me")
        result = invoke("demo", "--out", tmp_path, "--steps", "1", "--teacher-steps", "2", "--quiet")
        assert result.exit_code == 2 and (tmp_path / "mine.txt").exists()


class TestPublicAPI:
    def test_the_top_level_holds_what_a_user_calls(self) -> None:
        import gan_augment

        called = ["fit", "sample", "classify", "Predictor", "evaluate_folders", "GANAugmentedDataset"]
        called += ["DiscriminatorFeatures", "SyntheticSwap", "load_generator", "TrainConfig", "UsageError"]
        for name in called:
            assert name in gan_augment.__all__ and hasattr(gan_augment, name), name
        assert not set(gan_augment.MOVED) & set(gan_augment.__all__)

    @pytest.mark.parametrize("name", ["Trainer", "save_checkpoint", "load_checkpoint", "Generator", "Discriminator",
                                      "PerClassGenerator", "PerClassDiscriminator"])  # fmt: skip
    def test_moved_names_still_import_with_a_deprecation_warning(self, name: str) -> None:
        import importlib

        import gan_augment

        with pytest.warns(DeprecationWarning, match=f"import it from {gan_augment.MOVED[name]}"):
            obj = getattr(gan_augment, name)
        assert obj is getattr(importlib.import_module(gan_augment.MOVED[name]), name)
        with pytest.raises(AttributeError):
            gan_augment.no_such_name  # noqa: B018
