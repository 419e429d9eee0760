"""The other entry points follow the run's teacher: ``classify --run``, ``predict RUN``, ``features
--source``, and ``evaluate``'s default arms and the verdict that recommends a route."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import gray_runs, tiny_config
from typer.testing import CliRunner

from gan_augment.cli import app
from gan_augment.evaluate.stats import route_verdict, summarize
from gan_augment.io import load_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def taught(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Grayscale folders and two runs on them: one with its ssl teacher, one without a teacher."""
    cfg = tiny_config(steps=2, channels=1, teacher="auto", teacher_steps=6)
    return gray_runs(tmp_path_factory.mktemp("routes"), {"run": cfg, "plain": cfg.replace(teacher="none")})


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))[1:]


def test_classify_takes_the_runs_teacher_and_predict_takes_either(taught: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cls"
    args = ["classify", str(taught["labeled"]), str(taught["unlabeled"]), "--out", str(out), "--image-size", "16"]
    result = runner.invoke(app, [*args, "--method", "ssl", "--run", str(taught["run"]), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "the run's teacher:" in result.output and "labeled images held out of it by fit" in result.output
    saved, teacher = load_checkpoint(out / "classifier.pt"), load_checkpoint(taught["run"] / "teacher.pt")
    held = teacher["metrics"]["heldout"]  # measured by fit, against the labels alone
    kept = held["teacher"] if held["kept"] == "teacher" else held["labels_only"]
    assert saved["metrics"]["val_accuracy"] == kept and saved["metrics"]["run"] == str(taught["run"])
    assert all(torch.equal(saved["d"][k], teacher["d"][k]) for k in teacher["d"])  # not trained again
    for source, csv_path in ((out, tmp_path / "a.csv"), (taught["run"], tmp_path / "b.csv")):
        result = runner.invoke(app, ["predict", str(source), str(taught["labeled"]), "--out", str(csv_path)])
        assert result.exit_code == 0, result.output
    assert _rows(tmp_path / "a.csv") == _rows(tmp_path / "b.csv") and len(_rows(tmp_path / "a.csv")) == 12
    result = runner.invoke(app, [*args, "--method", "features", "--run", str(taught["run"]), "--overwrite"])
    assert result.exit_code == 2 and "--method ssl" in result.output
    result = runner.invoke(app, ["predict", str(taught["plain"]), str(taught["labeled"]), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "kept its teacher" in result.output


def test_features_come_from_the_teacher_unless_asked_otherwise(taught: dict[str, Path], tmp_path: Path) -> None:
    def features(run: Path, *extra: str) -> np.ndarray:
        out = tmp_path / f"{run.name}{len(extra)}{'-'.join(extra)}.npz"
        result = runner.invoke(app, ["features", str(run), str(taught["labeled"]), "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        return np.load(out)["features"]

    auto, teacher = features(taught["run"]), features(taught["run"], "--source", "teacher")
    gan = features(taught["run"], "--source", "discriminator")
    assert np.array_equal(auto, teacher) and auto.shape[1] == 1000 + 500 + 250 * 3  # the mlp's hidden layers
    assert gan.shape[1] != auto.shape[1] and np.array_equal(gan, features(taught["plain"]))
    out = tmp_path / "x.npz"
    args = ["features", str(taught["plain"]), str(taught["labeled"]), "--out", str(out), "--source", "teacher"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "kept no teacher" in result.output


def test_the_route_verdict_names_the_best_arm_that_clears_zero() -> None:
    def records(gains: dict[str, float]) -> list[dict[str, object]]:
        base = {0: 0.80, 1: 0.82, 2: 0.81}
        out = [
            {"dataset": "d", "labels_per_class": 5, "seed": s, "arm": "baseline", "accuracy": a}
            for s, a in base.items()
        ]
        for arm, gain in gains.items():
            jitter = {0: 0.0, 1: 0.002, 2: -0.002}
            out += [
                {"dataset": "d", "labels_per_class": 5, "seed": s, "arm": arm, "accuracy": a + gain + jitter[s]}
                for s, a in base.items()
            ]
        return out

    text = route_verdict(summarize(records({"default": 0.05, "teacher": 0.08, "default-synthetic": 0.0})))
    assert text.startswith("recommended for this data: teacher") and "gan-augment predict RUN" in text
    text = route_verdict(summarize(records({"default": -0.01, "teacher": 0.0})))
    assert text.startswith("recommended: train on your labels alone") and "default, teacher" in text
    one_seed = [r for r in records({"default": 0.05}) if r["seed"] == 0]
    assert route_verdict(summarize(one_seed)) == ""  # one seed: no interval, no recommendation


def test_evaluate_runs_the_default_arms_on_a_run_with_its_teacher(taught: dict[str, Path], tmp_path: Path) -> None:
    import lab_arms  # noqa: F401  (default-synthetic, the experiments' arm)

    from gan_augment.evaluate import ArmSettings, ClassifierConfig, evaluate_folders
    from gan_augment.progress import Reporter

    settings = ArmSettings(
        gan=tiny_config(steps=2, channels=1), classifier=ClassifierConfig(steps=2, width=4, workers=0)
    )
    report = evaluate_folders(
        taught["labeled"], taught["unlabeled"], tmp_path / "eval", ["baseline", "default", "default-synthetic",
        "teacher", "teacher-unlabeled"], [0, 1], 0.3, settings, taught["run"], Reporter(quiet=True),
    )  # fmt: skip
    arms = {r["arm"] for r in report["runs"]}
    assert arms == {"baseline", "default", "default-synthetic", "teacher", "teacher-unlabeled"}
    pools = {r["arm"]: r.get("pool") for r in report["runs"] if r["seed"] == 0}
    assert pools["default"] == pools["default-synthetic"] + pools["teacher-unlabeled"]  # synthetic + unlabeled
    assert pools["teacher-unlabeled"] == 8 and pools["default-synthetic"] > 0
    route = route_verdict(summarize(report["runs"]))  # the verdict its own records give, whichever it is
    assert route.startswith(("recommended", "no recommendation yet")) and route in report["verdicts"]
    assert not (tmp_path / "eval" / "runs").exists() or not any((tmp_path / "eval" / "runs").iterdir())
