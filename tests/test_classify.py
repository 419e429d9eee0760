from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from typer.testing import CliRunner

from gan_augment.classify import Predictor, classify
from gan_augment.cli import app
from gan_augment.config import SSLConfig
from gan_augment.io import load_checkpoint

runner = CliRunner()


class TestClassify:
    @pytest.mark.parametrize("method", ["features", "ssl"])
    def test_train_save_predict(self, folders: tuple[Path, Path], tmp_path: Path, method: str) -> None:
        labeled, unlabeled = folders
        ssl = SSLConfig(steps=3, batch_size=8)
        metrics = classify(
            labeled, unlabeled, tmp_path / "run", method, tiny_config(steps=3), ssl=ssl, device="cpu", quiet=True
        )
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
        pipe = make_pipeline(feats, StandardScaler(), LogisticRegression(max_iter=2000)).fit(
            data.images, data.labels.numpy()
        )
        ours = Predictor(tmp_path / "run", device="cpu").predict_proba(data.images)
        assert np.allclose(ours, pipe.predict_proba(data.images), atol=1e-4)

    def test_cli_classify_predict_features(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        labeled, unlabeled = folders
        run = tmp_path / "run"
        args = ["--image-size", "16", "--steps", "2", "--batch-size", "4", "--device", "cpu", "--quiet"]
        result = runner.invoke(
            app,
            ["classify", str(labeled), str(unlabeled), "--out", str(run), "--method", "ssl", "--ssl-steps", "3", *args],
        )
        assert result.exit_code == 0, result.output
        assert "held-out accuracy on 2 labeled images" in result.output
        saved = load_checkpoint(run / "classifier.pt")
        assert saved["architecture"] == "conv" and saved["ssl_config"]["steps"] == 3  # RGB images: the conv networks
        result = runner.invoke(
            app, ["features", str(run), str(labeled), "--out", str(tmp_path / "s.npz"), "--device", "cpu"]
        )
        assert result.exit_code == 0, result.output  # the ssl discriminator as a feature extractor
        assert np.load(tmp_path / "s.npz")["features"].shape[0] == 12
        again = runner.invoke(app, ["classify", str(labeled), "--out", str(run), *args])
        assert again.exit_code == 2 and "already holds a classifier" in again.output
        result = runner.invoke(
            app, ["predict", str(run), str(labeled), "--out", str(tmp_path / "p.csv"), "--device", "cpu"]
        )
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader(open(tmp_path / "p.csv")))
        assert len(rows) == 12 and {r["class"] for r in rows} <= {"dark", "light"}
        result = runner.invoke(app, ["classify", str(labeled), str(unlabeled), "--out", str(tmp_path / "f"), *args])
        assert result.exit_code == 0, result.output
        assert "cross-validated accuracy" in result.output
        result = runner.invoke(
            app,
            [
                "features",
                str(tmp_path / "f" / "gan"),
                str(labeled),
                "--out",
                str(tmp_path / "f.npz"),
                "--device",
                "cpu",
            ],
        )
        assert result.exit_code == 0, result.output
        npz = np.load(tmp_path / "f.npz")
        # default d_width 64 at 16×16: 64 ch at 8×8 and 128 ch at 4×4, each pooled to 4×4
        assert npz["features"].shape == (12, 64 * 16 + 128 * 16) and npz["labels"].tolist() == [0] * 6 + [1] * 6
        assert list(npz["classes"]) == ["dark", "light"]

    def test_classify_into_a_fit_run_keeps_it(self, folders: tuple[Path, Path], tiny_run: Path) -> None:
        """classify --out on an existing fit run is refused without --overwrite, and the run is untouched."""
        labeled, unlabeled = folders
        before = {p.relative_to(tiny_run): p.read_bytes() for p in tiny_run.rglob("*") if p.is_file()}
        args = ["--image-size", "16", "--steps", "2", "--batch-size", "4", "--device", "cpu", "--quiet"]
        result = runner.invoke(app, ["classify", str(labeled), str(unlabeled), "--out", str(tiny_run), *args])
        assert result.exit_code == 2 and "already holds a run: pass --overwrite" in result.output
        after = {p.relative_to(tiny_run): p.read_bytes() for p in tiny_run.rglob("*") if p.is_file()}
        assert after == before and (tiny_run / "checkpoint.pt").is_file()

    def test_predict_errors(self, tmp_path: Path, trained: dict[str, Path]) -> None:
        result = runner.invoke(app, ["predict", str(tmp_path), str(tmp_path)])
        assert result.exit_code == 2 and "no classifier" in result.output
        result = runner.invoke(app, ["predict", str(trained["per-class"] / "checkpoint.pt"), str(tmp_path)])
        assert result.exit_code == 2 and "not a classifier" in result.output
