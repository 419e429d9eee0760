from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gan_augment.classify import Predictor, classify
from gan_augment.train.losses import feature_matching_loss, ssl_d_loss
from gan_augment.cli import app
from conftest import tiny_config, write_folder

runner = CliRunner()


class TestSSLLosses:
    def test_real_and_fake_terms(self) -> None:
        labels = torch.tensor([0, 1])
        confident_real = torch.tensor([[20.0, 0.0], [0.0, 20.0]])
        confident_fake = torch.full((2, 2), -20.0)
        sup, unsup = ssl_d_loss(confident_real, labels, confident_real, confident_fake)
        assert sup < 1e-6 and unsup < 1e-6  # right classes, real called real, fake called fake
        sup, unsup = ssl_d_loss(confident_real.flip(1), labels, confident_fake, confident_real)
        assert sup > 10 and unsup > 10

    def test_feature_matching(self) -> None:
        real = torch.randn(8, 5)
        assert feature_matching_loss(real, real.clone()) == 0
        fake = real.clone().requires_grad_(True)
        loss = feature_matching_loss(real, fake + 1)
        loss.backward()
        assert loss.item() == pytest.approx(1.0) and fake.grad is not None


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cls")
    labeled = write_folder(root / "labeled", ["dark", "light"], [6, 6])
    unlabeled = write_folder(root / "unlabeled", ["a", "b"], [4, 4])
    return labeled, unlabeled


class TestClassify:
    @pytest.mark.parametrize("method", ["features", "ssl"])
    def test_train_save_predict(self, folders: tuple[Path, Path], tmp_path: Path, method: str) -> None:
        labeled, unlabeled = folders
        metrics = classify(labeled, unlabeled, tmp_path / "run", method, tiny_config(steps=3), device="cpu", quiet=True)
        if method == "features":  # 5-fold cross-validation on the 12 labeled images (smallest class: 6)
            assert metrics["cv_folds"] == 5 and metrics["num_labeled"] == 12 and metrics["cv_accuracy_mean"] is not None
        else:  # a stratified 20% of each class held out: 1 of 6 per class; accuracy counts whole images
            assert metrics["num_val"] == 2 and metrics["num_train_labeled"] == 10
            assert metrics["val_accuracy"] * 2 == pytest.approx(round(metrics["val_accuracy"] * 2))
        assert json.loads((tmp_path / "run" / "metrics.json").read_text())["method"] == method
        p = Predictor(tmp_path / "run", device="cpu")
        probs = p.predict_proba(torch.zeros(3, 3, 16, 16, dtype=torch.uint8))
        assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5)

    def test_features_predictor_matches_sklearn(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        """The saved linear model reproduces the scikit-learn pipeline it was taken from."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from gan_augment import DiscriminatorFeatures, load_image_data

        labeled, unlabeled = folders
        classify(labeled, unlabeled, tmp_path / "run", "features", tiny_config(steps=2), device="cpu", quiet=True)
        data = load_image_data(labeled, image_size=16)
        feats = DiscriminatorFeatures(tmp_path / "run" / "gan", device="cpu").fit()
        pipe = make_pipeline(feats, StandardScaler(), LogisticRegression(max_iter=2000)).fit(data.images, data.labels.numpy())
        ours = Predictor(tmp_path / "run", device="cpu").predict_proba(data.images)
        assert np.allclose(ours, pipe.predict_proba(data.images), atol=1e-4)

    def test_cli_classify_predict_features(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        labeled, unlabeled = folders
        run = tmp_path / "run"
        args = ["--image-size", "16", "--steps", "2", "--batch-size", "4", "--device", "cpu", "--quiet"]
        result = runner.invoke(app, ["classify", str(labeled), str(unlabeled), "--out", str(run), "--method", "ssl", *args])
        assert result.exit_code == 0, result.output
        assert "held-out accuracy on 2 labeled images" in result.output
        again = runner.invoke(app, ["classify", str(labeled), "--out", str(run), *args])
        assert again.exit_code == 2 and "already holds a classifier" in again.output
        result = runner.invoke(app, ["predict", str(run), str(labeled), "--out", str(tmp_path / "p.csv"), "--device", "cpu"])
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader(open(tmp_path / "p.csv")))
        assert len(rows) == 12 and {r["class"] for r in rows} <= {"dark", "light"}
        result = runner.invoke(app, ["classify", str(labeled), str(unlabeled), "--out", str(tmp_path / "f"), *args])
        assert result.exit_code == 0, result.output
        assert "cross-validated accuracy" in result.output
        result = runner.invoke(app, ["features", str(tmp_path / "f" / "gan"), str(labeled), "--out", str(tmp_path / "f.npz"), "--device", "cpu"])
        assert result.exit_code == 0, result.output
        npz = np.load(tmp_path / "f.npz")
        # default d_width 64 at 16×16: 64 ch at 8×8 and 128 ch at 4×4, each pooled to 4×4
        assert npz["features"].shape == (12, 64 * 16 + 128 * 16) and npz["labels"].tolist() == [0] * 6 + [1] * 6
        assert list(npz["classes"]) == ["dark", "light"]

    def test_predict_errors(self, tmp_path: Path, trained: dict[str, Path]) -> None:
        result = runner.invoke(app, ["predict", str(tmp_path), str(tmp_path)])
        assert result.exit_code == 2 and "no classifier" in result.output
        result = runner.invoke(app, ["predict", str(trained["per-class"] / "checkpoint.pt"), str(tmp_path)])
        assert result.exit_code == 2 and "not a classifier" in result.output


class TestEvaluate:
    def test_cli_evaluate_report(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        labeled, unlabeled = folders
        out = tmp_path / "ev"
        result = runner.invoke(app, [
            "evaluate", str(labeled), str(unlabeled), "--out", str(out), "--arms", "gan-per-class,d-features",
            "--seeds", "2", "--image-size", "16", "--gan-steps", "2", "--clf-steps", "2", "--device", "cpu", "--quiet",
        ])
        assert result.exit_code == 0, result.output
        report = json.loads((out / "evaluation.json").read_text())
        assert {r["arm"] for r in report["runs"]} == {"baseline", "gan-per-class", "d-features"}
        assert len(report["runs"]) == 6
        for row in report["summary"]:  # the summary is the runs' mean, and the gain their paired difference
            accs = {r["seed"]: r["accuracy"] for r in report["runs"] if r["arm"] == row["arm"]}
            base = {r["seed"]: r["accuracy"] for r in report["runs"] if r["arm"] == "baseline"}
            assert row["mean"] == pytest.approx(np.mean(list(accs.values())))
            if row["arm"] != "baseline":
                assert row["gain"] == pytest.approx(np.mean([accs[s] - base[s] for s in accs]))
        assert len(report["verdicts"]) == 2 and (out / "evaluation.png").is_file()
        gan = next(r for r in report["summary"] if r["arm"] == "gan-per-class")
        assert {"mean", "std", "gain", "gain_ci95", "cas", "diversity"} <= set(gan)

    def test_cli_evaluate_torchvision_classifier(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        out = tmp_path / "ev"
        result = runner.invoke(app, [
            "evaluate", str(folders[0]), "--out", str(out), "--arms", "baseline", "--classifier", "resnet18",
            "--seeds", "1", "--image-size", "16", "--clf-steps", "2", "--device", "cpu", "--quiet",
        ])
        assert result.exit_code == 0, result.output
        report = json.loads((out / "evaluation.json").read_text())
        assert report["settings"]["classifier"]["architecture"] == "resnet18"
        assert [r["arm"] for r in report["runs"]] == ["baseline"]

    def test_build_classifier_adapts_channels(self) -> None:
        from gan_augment.evaluate import build_classifier

        for name in ("small-resnet", "resnet18", "mobilenet_v3_small"):
            model = build_classifier(name, 1, 7).eval()
            assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 7), name

    def test_cli_evaluate_bad_classifier(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        result = runner.invoke(app, ["evaluate", str(folders[0]), "--classifier", "resnet1800", "--out", str(tmp_path / "x")])
        assert result.exit_code == 2 and "unknown classifier 'resnet1800'" in result.output and "resnet18" in result.output
        assert not (tmp_path / "x").exists()

    def test_cli_evaluate_bad_arm(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        result = runner.invoke(app, ["evaluate", str(folders[0]), "--arms", "magic", "--out", str(tmp_path)])
        assert result.exit_code == 2 and "unknown arm" in result.output


class TestStatistics:
    def test_paired_gain_and_verdict(self) -> None:
        from gan_augment.evaluate import summarize, verdict

        recs = [{"dataset": "d", "labels_per_class": 5, "arm": a, "seed": s, "accuracy": acc}
                for s, (b, g) in enumerate([(0.50, 0.55), (0.60, 0.66), (0.40, 0.44)])
                for a, acc in (("baseline", b), ("gan-per-class", g))]
        rows = summarize(recs)
        gan = next(r for r in rows if r["arm"] == "gan-per-class")
        assert gan["gain"] == pytest.approx(0.05) and gan["gain_ci95"] > 0
        assert "raised accuracy by 5.0" in verdict(gan)
        noisy = [dict(r) for r in recs]
        for r in noisy:  # gains of +1, -1 and 0 points: the interval covers zero
            if r["arm"] == "gan-per-class":
                r["accuracy"] = {0: 0.51, 1: 0.59, 2: 0.40}[r["seed"]]
        assert "no measurable gain" in verdict(next(r for r in summarize(noisy) if r["arm"] == "gan-per-class"))


def test_benchmark_quick_runs(tmp_path: Path) -> None:
    """benchmarks/limited_labels.py --quick on generated images writes a well-formed report; a run cut by
    --time-budget says so and --resume completes it, keeping the runs already made."""
    import subprocess
    import sys

    data = write_folder(tmp_path / "data", ["a", "b", "c"], [8, 8, 8], size=20)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "limited_labels.py"
    out = tmp_path / "out"
    cmd = [sys.executable, str(script), "--train-dir", str(data), "--quick", "--budgets", "3", "4",
           "--out", str(out), "--device", "cpu", "--report", str(tmp_path / "results.md"), "--sweep-filter-top", "0.5"]
    result = subprocess.run([*cmd, "--time-budget", "0.0001"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    partial = json.loads((out / "limited_labels.json").read_text())
    assert partial["state"] == "partial, cut by --time-budget: data n=4 seed=0 not run"
    assert {r["labels_per_class"] for r in partial["runs"]} == {3}
    assert "partial, cut by --time-budget" in (tmp_path / "results.md").read_text()

    result = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "limited_labels.json").read_text())
    assert report["state"] == "complete" and report["wall_seconds"] > partial["wall_seconds"]
    assert [r for r in report["runs"] if r["labels_per_class"] == 3] == partial["runs"]
    assert {"machine", "runs", "summary", "commit", "package_version"} <= set(report)
    for n in (3, 4):
        arms = {r["arm"] for r in report["runs"] if r["labels_per_class"] == n}
        assert arms == {"baseline", "gan-per-class", "gan-conditional", "d-features", "ssl"}
    for r in report["runs"]:
        assert {"dataset", "arm", "labels_per_class", "seed", "accuracy", "seconds"} <= set(r)
        assert r["accuracy"] * 6 == pytest.approx(round(r["accuracy"] * 6))  # a count of the 6 evaluation images
    assert (out / "limited_labels_data.png").is_file() and (out / "samples_data_gan-per-class.png").is_file()
    text = (tmp_path / "results.md").read_text()
    assert "complete" in text and "| data | 3 | baseline |" in text and "| data | 4 | baseline |" in text
    assert "| data | 3 | 0.25 | – | 1 |" in text
    assert {r["synthetic_ratio"] for r in report["ratio_sweep"]} == {0.0, 0.25, 0.5, 0.75}
    assert {r["synthetic_ratio"] for r in report["ratio_sweep"] if r.get("filter_top") == 0.5} == {0.25, 0.5, 0.75}
    assert "| data | 3 | 0.5 | 0.5 | 1 |" in text and "| data | 3 | 0.5 | – | 1 |" in text

    # Where matplotlib is missing (the GPU machine) the report goes without plots; --report-only redraws them.
    (out / "limited_labels_data.png").unlink()
    argv = [str(script), *cmd[2:], "--report-only"]
    no_mpl = f"import sys, runpy; sys.modules['matplotlib'] = None; sys.argv = {argv!r}; runpy.run_path(sys.argv[0], run_name='__main__')"
    result = subprocess.run([sys.executable, "-c", no_mpl], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "plot not drawn" in (tmp_path / "results.md").read_text() and not (out / "limited_labels_data.png").exists()
    result = subprocess.run([*cmd, "--report-only"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (out / "limited_labels_data.png").is_file() and json.loads((out / "limited_labels.json").read_text())["runs"] == report["runs"]
    assert (tmp_path / "results.md").read_text() == text  # the same report, redrawn from the JSON alone

    # d-features: one unconditional GAN per seed serves every budget (the same images at each).
    shared = tmp_path / "shared"
    result = subprocess.run([*cmd[:cmd.index("--out")], "--out", str(shared), "--device", "cpu", "--arms", "d-features"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (shared / "runs" / "n3" / "unconditional-seed0" / "checkpoint.pt").is_file()
    assert not (shared / "runs" / "n4").exists()
    assert {r["labels_per_class"] for r in json.loads((shared / "limited_labels.json").read_text())["runs"]} == {3, 4}
