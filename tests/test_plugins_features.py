from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torchvision.datasets import ImageFolder

from gan_augment import DiscriminatorFeatures, GanAugmentError, load_discriminator
from gan_augment.plugins import images_to_tensor


def images(n: int = 12, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    X = np.clip(rng.normal(60 + 120 * y[:, None, None, None], 25, size=(n, size, size, 3)), 0, 255).astype(np.uint8)
    return X, y


class TestDiscriminatorFeatures:
    def test_documented_length_and_names(self, trained: dict[str, Path]) -> None:
        f = DiscriminatorFeatures(trained["unconditional"]).fit()
        # 16×16 input, d_width 8: block 0 → 8 ch at 8×8, block 1 → 16 ch at 4×4; grid 4
        assert f.n_features_out_ == 8 * 4 * 4 + 16 * 4 * 4
        X, _ = images()
        out = f.transform(X)
        assert out.shape == (12, 384) and out.dtype == np.float32 and np.isfinite(out).all()
        names = f.get_feature_names_out()
        assert len(names) == 384 and names[0] == "block0_c0_y0_x0" and names[-1] == "block1_c15_y3_x3"
        f2 = DiscriminatorFeatures(trained["unconditional"], layers=[1], grid=2).fit()
        assert f2.transform(X).shape == (12, 16 * 2 * 2)

    def test_input_forms_agree(self, trained: dict[str, Path]) -> None:
        f = DiscriminatorFeatures(trained["unconditional"]).fit()
        X, _ = images(4)
        ref = f.transform(X)
        as_tensor = torch.from_numpy(X).permute(0, 3, 1, 2)  # uint8 (N, C, H, W)
        as_pil = [Image.fromarray(x) for x in X]
        assert np.allclose(f.transform(as_tensor), ref, atol=1e-5)
        assert np.allclose(f.transform(as_tensor.float() / 255), ref, atol=1e-5)
        assert np.allclose(f.transform(as_pil), ref, atol=1e-5)
        # Flattened rows (issue 14, item 3): either order is an image, so the order must be given.
        with pytest.raises(ValueError, match="pass layout='chw' or layout='hwc'"):
            f.transform(X.reshape(4, -1))
        chw = DiscriminatorFeatures(trained["unconditional"], layout="chw").fit()
        hwc = DiscriminatorFeatures(trained["unconditional"], layout="hwc").fit()
        assert np.allclose(chw.transform(as_tensor.reshape(4, -1).numpy()), ref, atol=1e-5)
        assert np.allclose(hwc.transform(X.reshape(4, -1)), ref, atol=1e-5)
        big = np.repeat(np.repeat(X, 2, axis=1), 2, axis=2)  # 32×32: resized to 16×16
        assert f.transform(big).shape == ref.shape

    def test_the_same_image_gives_the_same_features_whatever_its_type(self, trained: dict[str, Path]) -> None:
        """One resize and one grayscale conversion for every input type (PIL was resized bicubic, arrays
        bilinear): a 40×40 image as PIL, array and tensor, in colour and in gray, gives one set of features."""
        f = DiscriminatorFeatures(trained["unconditional"]).fit()
        rgb = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
        gray = rgb[..., 0]
        for arrays in (rgb, gray):
            ref = f.transform(arrays)
            tensor = torch.from_numpy(arrays).permute(0, 3, 1, 2) if arrays.ndim == 4 else torch.from_numpy(arrays)
            np.testing.assert_array_equal(f.transform([Image.fromarray(a) for a in arrays]), ref)
            np.testing.assert_array_equal(f.transform(tensor), ref)
        mixed = [Image.fromarray(rgb[0]), Image.fromarray(rgb[1][:32, :32])]  # two sizes: each resized alone
        np.testing.assert_allclose(f.transform(mixed)[0], f.transform(rgb[:1])[0], atol=1e-5)

    def test_float_input_outside_0_1_is_refused(self, trained: dict[str, Path]) -> None:
        """0-255 floats or normalized images would be read as other images, silently."""
        f = DiscriminatorFeatures(trained["unconditional"]).fit()
        X, _ = images(2)
        for bad in (X.astype(np.float32), (X / 255.0 - 0.5) / 0.25):
            with pytest.raises(ValueError, match=r"float images must be in \[0, 1\]"):
                f.transform(bad)
        assert f.transform(X.astype(np.float32) / 255).shape == (2, f.n_features_out_)

    def test_dataset_input(self, trained: dict[str, Path]) -> None:
        f = DiscriminatorFeatures(trained["unconditional"]).fit()
        assert f.transform(ImageFolder(trained["labeled"])).shape == (12, 384)

    def test_pipeline_clone_pickle(self, trained: dict[str, Path]) -> None:
        X, y = images(20)
        pipe = make_pipeline(DiscriminatorFeatures(trained["unconditional"]), StandardScaler(), LogisticRegression())
        pipe.fit(X, y)
        assert pipe.predict(X).shape == (20,)
        assert pipe.score(X, y) > 0.9  # bright vs dark images: linearly separable in D's features
        cloned = clone(pipe)
        assert cloned.get_params()["discriminatorfeatures__generator_ckpt"] == trained["unconditional"]
        assert not hasattr(cloned.steps[0][1], "discriminator_")
        copy = pickle.loads(pickle.dumps(pipe))
        assert np.array_equal(copy.predict_proba(X), pipe.predict_proba(X))

    def test_errors(self, trained: dict[str, Path]) -> None:
        with pytest.raises(NotFittedError, match="not fitted yet. Call .fit."):
            DiscriminatorFeatures(trained["unconditional"]).transform(images()[0])
        with pytest.raises(GanAugmentError, match="one discriminator per class"):
            DiscriminatorFeatures(trained["per-class"]).fit()
        with pytest.raises(ValueError, match="layers=\\[5\\]"):
            DiscriminatorFeatures(trained["unconditional"], layers=[5]).fit()
        f = DiscriminatorFeatures(trained["unconditional"]).fit()
        with pytest.raises(ValueError, match="need 3×16×16 = 768"):
            f.transform(np.zeros((2, 10)))

    def test_per_class_run_uses_its_pretrained_discriminator(self, trained: dict[str, Path], tmp_path: Path) -> None:
        """A default per-class run (with a pool) serves feature extraction with the discriminator it
        pre-trained on every image; one without pre-training says what to run."""
        from typer.testing import CliRunner

        from gan_augment.cli import app
        from gan_augment.plugins.features import extract_features

        f = DiscriminatorFeatures(trained["with-pool"]).fit()
        X = images(3)[0]
        d = load_discriminator(trained["with-pool"], device="cpu", pretrained=True)
        expected = extract_features(d, images_to_tensor(X, 16, 3), "all", 4).numpy()
        assert np.allclose(f.transform(X), expected, atol=1e-6)
        args = ["features", str(trained["with-pool"]), str(trained["labeled"]), "--out", str(tmp_path / "f.npz")]
        result = CliRunner().invoke(app, [*args, "--device", "cpu"])
        assert result.exit_code == 0, result.output
        assert np.load(tmp_path / "f.npz")["features"].shape == (12, f.n_features_out_)
        with pytest.raises(GanAugmentError, match="no shared pre-trained one.*gan-augment fit LABELED UNLABELED"):
            DiscriminatorFeatures(trained["per-class"]).fit()

    def test_conditional_run_works(self, trained: dict[str, Path]) -> None:
        f = DiscriminatorFeatures(trained["conditional"]).fit()
        assert f.transform(images(3)[0]).shape == (3, f.n_features_out_)


# sklearn's generic checks feed tabular 2-D arrays of arbitrary width (2, 3, 5, 10 columns).
# DiscriminatorFeatures reads images: a 2-D row must be one flattened C×H×W image of the
# checkpoint's size, so every check built on such data fails by design, with the error that
# names the width it needs. These are the only checks allowed to fail.
WIDTH = "feeds tabular data whose width is not a flattened image of the checkpoint's size"
EXPECTED_FAILURES = {
    name: WIDTH
    for name in [
        "check_dict_unchanged",
        "check_dont_overwrite_parameters",
        "check_dtype_object",
        "check_estimators_dtypes",
        "check_estimators_empty_data_messages",
        "check_estimators_fit_returns_self",
        "check_estimators_nan_inf",
        "check_estimators_overwrite_params",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_fit2d_1feature",
        "check_fit2d_1sample",
        "check_fit2d_predict1d",
        "check_fit_check_is_fitted",
        "check_fit_idempotent",
        "check_fit_score_takes_y",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_pipeline_consistency",
        "check_positive_only_tag_during_fit",
        "check_readonly_memmap_input",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_n_features_in",
    ]
}
EXPECTED_FAILURES["check_n_features_in_after_fitting"] = (
    "images come in several forms (arrays, tensors, PIL lists, datasets): there is no fixed n_features_in_"
)


def test_sklearn_estimator_checks(trained: dict[str, Path]) -> None:
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(DiscriminatorFeatures(trained["unconditional"]), on_fail=None)
    failed = {r["check_name"] for r in results if r["status"] == "failed"}
    passed = {r["check_name"] for r in results if r["status"] == "passed"}
    assert failed <= set(EXPECTED_FAILURES), failed - set(EXPECTED_FAILURES)
    # The conventions that apply to an image transformer hold.
    assert {
        "check_no_attributes_set_in_init",
        "check_parameters_default_constructible",
        "check_get_params_invariance",
        "check_set_params",
        "check_complex_data",
        "check_fit1d",
        "check_estimator_sparse_tag",
    } <= passed


def test_ssl_discriminator_features(tmp_path: Path) -> None:
    """The SSL classifier's discriminator as a feature extractor: its last block is the pooled
    features its head reads, and the MLP's hidden layers are taken whole."""
    from conftest import write_folder

    from gan_augment.classify import classify
    from gan_augment.config import SSLConfig
    from gan_augment.io.rebuild import load_discriminator

    for channels, arch in ((3, "conv"), (1, "mlp")):
        labeled = write_folder(tmp_path / f"l{channels}", ["a", "b"], [4, 4], channels=channels)
        run = tmp_path / f"cls{channels}"
        ssl = SSLConfig(steps=2, batch_size=4)
        classify(labeled, None, run, "ssl", tiny_config(steps=1), ssl=ssl, val_fraction=0.0, device="cpu", quiet=True)
        f = DiscriminatorFeatures(run).fit()
        X, _ = images(3)
        X = X if channels == 3 else X[..., :1]
        out = f.transform(X)
        assert out.shape == (3, f.n_features_out_) and len(f.get_feature_names_out()) == f.n_features_out_
        d = load_discriminator(run, device="cpu")
        with torch.no_grad():
            last = d.features(torch.from_numpy(images_to_tensor(X, 16, channels).numpy()))
        assert type(d).__name__.lower().startswith(f"ssl{arch}") and np.allclose(
            out[:, -last.shape[1] :], last.numpy(), atol=1e-5
        )
