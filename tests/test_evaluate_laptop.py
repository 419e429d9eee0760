"""Issue 22: evaluate for small machines: a separate test folder, results kept as they complete and an
interrupted evaluation resumed, the settings actually used and every caveat in the report, its time up front."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import write_folder
from rich.console import Console
from test_reliability import runner

from gan_augment.cli import app
from gan_augment.evaluate import SeedArms

FAST = ["--image-size", "16", "--gan-steps", "2", "--clf-steps", "2", "--g-width", "4", "--d-width", "4",
        "--device", "cpu", "--quiet"]  # fmt: skip


@pytest.fixture()
def test_folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "test", ["light", "dark"], [3, 4], seed=7)  # the other class order on disk


def test_a_test_folder_replaces_the_held_out_share(
    folders: tuple[Path, Path], test_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ev"
    args = ["evaluate", str(folders[0]), "--out", str(out), "--arms", "baseline", "--seeds", "2",
            "--test-dir", str(test_folder), *FAST]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "evaluation.json").read_text())
    assert report["test_dir"] == str(test_folder) and report["test_fraction"] is None
    assert all(r["labels_per_class"] == 6 for r in report["runs"])  # all 6 labeled images of a class train
    assert all(r["accuracy"] * 7 == pytest.approx(round(r["accuracy"] * 7)) for r in report["runs"])  # of 7 images
    wrong = write_folder(tmp_path / "other", ["a", "b"], [2, 2])
    refused = runner.invoke(app, [*args[:2], "--out", str(tmp_path / "ev2"), "--test-dir", str(wrong), *FAST])
    assert refused.exit_code == 2 and "needs the same class folders" in refused.output


def test_an_interrupted_evaluation_keeps_its_results_and_resumes(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, ran = tmp_path / "ev", []
    real_run = SeedArms.run

    def run(self: SeedArms, arm: str, ratio: float | None = None) -> dict:
        if len(ran) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the fourth (arm, seed)
        ran.append((arm, self.seed))
        return real_run(self, arm, ratio)

    monkeypatch.setattr(SeedArms, "run", run)
    args = ["evaluate", str(folders[0]), "--out", str(out), "--arms", "baseline,posthoc-adjust", "--seeds", "2", *FAST]
    assert runner.invoke(app, args).exit_code == 130
    kept = json.loads((out / "evaluation-progress.json").read_text())["records"]
    assert [(r["arm"], r["seed"]) for r in kept] == ran == [("baseline", 0), ("posthoc-adjust", 0), ("baseline", 1)]
    assert not (out / "evaluation.json").exists()
    monkeypatch.setattr(SeedArms, "run", real_run)
    again = runner.invoke(app, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    report = json.loads((out / "evaluation.json").read_text())
    assert [(r["arm"], r["seed"]) for r in report["runs"]] == [*ran, ("posthoc-adjust", 1)]
    assert report["runs"][:3] == kept  # reused as they were
    other = runner.invoke(app, [*args, "--resume", "--clf-steps", "3"])
    assert other.exit_code == 2 and "settings differ" in other.output
    more = runner.invoke(app, [*args[: -2 - len(FAST)], "--seeds", "3", *FAST, "--resume"])
    assert more.exit_code == 0, more.output  # one more seed: the first two are reused
    assert len(json.loads((out / "evaluation.json").read_text())["runs"]) == 6


def test_the_report_records_the_run_used_and_every_caveat(tiny_run: Path, labeled: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    args = ["evaluate", str(labeled), "--out", str(out), "--arms", "gan-per-class", "--seeds", "2",
            "--run", str(tiny_run), *FAST]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "evaluation.json").read_text())
    assert report["run"]["path"] == str(tiny_run) and report["run"]["config"]["steps"] == 2
    assert any("gains are optimistic" in c for c in report["caveats"])
    html = tmp_path / "r.html"
    assert runner.invoke(app, ["report", str(out), "--out", str(html)]).exit_code == 0
    assert "Caveats" in html.read_text() and "gains are optimistic" in html.read_text()


def test_evaluate_says_how_long_it_will_take_before_it_starts(folders: tuple[Path, Path], tmp_path: Path) -> None:
    from conftest import tiny_config

    from gan_augment.evaluate import ArmSettings, ClassifierConfig, evaluate_folders
    from gan_augment.progress import Reporter

    lines: list[str] = []

    class Recording(Reporter):
        def message(self, text: str) -> None:
            lines.append(text)

    settings = ArmSettings(gan=tiny_config(steps=2), classifier=ClassifierConfig(steps=2, width=4, workers=0))
    evaluate_folders(*folders, tmp_path / "ev", ["baseline", "gan-per-class"], [0, 1], settings=settings,
                     reporter=Recording(console=Console(file=io.StringIO())))  # fmt: skip
    first_training = next(i for i, line in enumerate(lines) if "of 4 arm runs done" in line)
    expected = [i for i, line in enumerate(lines) if line.startswith("expected: about")]
    assert expected and expected[0] < first_training
    assert any("about" in line and "left" in line for line in lines[first_training:])
