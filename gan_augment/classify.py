"""Few labels, many unlabeled images: a classifier from a GAN (discriminator features, or the SSL GAN)."""

from __future__ import annotations

import csv
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .checkpoint import atomic_write_json, load_checkpoint, save_checkpoint
from .config import ModelConfig, TrainConfig
from .data import ImageData, _walk_images, decode_image, load_image_data, summary, to_channels
from .errors import CheckpointError, DataError, GanAugmentError
from .features import DiscriminatorFeatures, extract_features
from .models import Discriminator
from .progress import Reporter
from .sampling import build_discriminator
from .ssl import SSLGan, feature_matching_loss, ssl_d_loss
from .training import check_run_dir, fit, prepare_run_dir, resolve_device

CLASSIFIER_NAME = "classifier.pt"
Method = Literal["features", "ssl"]


def _split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/validation index split; every class keeps at least one training image."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(len(idx) - 1, int(round(len(idx) * fraction)))
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(val), dtype=np.int64)


def train_features_classifier(
    labeled: Path, unlabeled: Path | None, out: Path, config: TrainConfig, device: torch.device, reporter: Reporter
) -> dict[str, Any]:
    gan_dir = out / "gan"
    fit(labeled, unlabeled, gan_dir, config.replace(mode="unconditional"), device=device, overwrite=True, reporter=reporter)
    gan_ckpt = load_checkpoint(gan_dir)
    data = load_image_data(labeled, None, image_size=config.image_size, channels=int(gan_ckpt["channels"]))
    extractor = DiscriminatorFeatures(gan_dir, device=str(device)).fit()
    X = extractor.transform(data.images)
    y = data.labels.numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = int(min(5, np.bincount(y).min()))
    scores = (
        cross_val_score(clf, X, y, cv=StratifiedKFold(folds, shuffle=True, random_state=config.seed))
        if folds >= 2
        else np.array([])
    )
    clf.fit(X, y)
    scaler, logreg = clf[0], clf[1]
    state = {
        "kind": "features",
        "class_names": data.class_names,
        "image_size": config.image_size,
        "channels": int(data.images.shape[1]),
        "gan": {k: gan_ckpt[k] for k in ("model_config", "phase", "models")},
        "layers": "all",
        "grid": 4,
        "scaler_mean": torch.from_numpy(scaler.mean_.astype(np.float32)),
        "scaler_scale": torch.from_numpy(scaler.scale_.astype(np.float32)),
        "coef": torch.from_numpy(logreg.coef_.astype(np.float32)),
        "intercept": torch.from_numpy(logreg.intercept_.astype(np.float32)),
        "classes_": torch.from_numpy(logreg.classes_.astype(np.int64)),
    }
    metrics = {
        "method": "features",
        "cv_folds": folds,
        "cv_accuracy_mean": float(scores.mean()) if len(scores) else None,
        "cv_accuracy_std": float(scores.std()) if len(scores) else None,
        "num_features": int(X.shape[1]),
        "num_labeled": int(len(y)),
    }
    return {"state": state, "metrics": metrics}


def train_ssl(
    data: ImageData, config: TrainConfig, device: torch.device, val_fraction: float, reporter: Reporter
) -> dict[str, Any]:
    torch.manual_seed(config.seed)
    gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    labels = data.labels.numpy()
    labeled_idx = np.flatnonzero(labels >= 0)
    tr, va = _split(labels[labeled_idx], val_fraction, config.seed)
    train_idx = torch.as_tensor(labeled_idx[tr], device=device)
    val_idx = torch.as_tensor(labeled_idx[va], device=device)
    pool_idx = torch.arange(len(labels), device=device)  # every image is "real" for the unsupervised loss
    images = data.images.to(device)
    ys = data.labels.to(device)
    k = len(data.class_names)
    model_cfg = replace(config.model, image_size=config.image_size, channels=int(data.images.shape[1]), num_classes=0)
    gan = SSLGan(model_cfg, k).to(device)
    opt_d = torch.optim.Adam(gan.d.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))
    opt_g = torch.optim.Adam(gan.g.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
    b = config.batch_size

    def batch(pool: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = pool[torch.randint(0, len(pool), (b,), device=device, generator=gen)]
        return images[idx].float().div(127.5).sub(1), ys[idx]

    with reporter.progress(config.steps) as bar:
        for step in range(1, config.steps + 1):
            xl, yl = batch(train_idx)
            xu, _ = batch(pool_idx)
            z = torch.randn(b, model_cfg.z_dim, device=device, generator=gen)
            fake = gan.g(z)
            sup, unsup = ssl_d_loss(gan.d(xl), yl, gan.d(xu), gan.d(fake.detach()))
            opt_d.zero_grad(set_to_none=True)
            (sup + unsup).backward()
            opt_d.step()
            xu2, _ = batch(pool_idx)
            z = torch.randn(b, model_cfg.z_dim, device=device, generator=gen)
            loss_g = feature_matching_loss(gan.d.features(xu2), gan.d.features(gan.g(z)))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if step % config.log_every == 0 or step == config.steps:
                bar.update(step, {"loss_d": float((sup + unsup).detach()), "loss_g": float(loss_g.detach())})
    gan.eval()
    val_acc = None
    if len(val_idx):
        with torch.no_grad():
            pred = torch.cat([gan.d(images[val_idx[i : i + 512]].float().div(127.5).sub(1)).argmax(1) for i in range(0, len(val_idx), 512)])
        val_acc = float((pred == ys[val_idx]).float().mean())
    state = {
        "kind": "ssl",
        "class_names": data.class_names,
        "image_size": config.image_size,
        "channels": model_cfg.channels,
        "model_config": model_cfg.to_dict(),
        "d": gan.d.state_dict(),
        "g": gan.g.state_dict(),
    }
    metrics = {
        "method": "ssl",
        "val_accuracy": val_acc,
        "num_val": int(len(val_idx)),
        "num_train_labeled": int(len(train_idx)),
        "num_unlabeled": data.num_unlabeled,
        "steps": config.steps,
    }
    return {"state": state, "metrics": metrics}


def classify(
    labeled: str | os.PathLike[str],
    unlabeled: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    method: Method = "features",
    config: TrainConfig | None = None,
    *,
    val_fraction: float = 0.2,
    device: str | torch.device = "auto",
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train a classifier from few labels and many unlabeled images, and save it as ``classifier.pt``.

    Methods:
        ``features``: an unconditional DCGAN on all images; a standardised logistic regression on
        the discriminator features of the labeled ones (accuracy: stratified k-fold
        cross-validation on the labeled images, k = min(5, smallest class)).
        ``ssl``: the semi-supervised GAN (K class outputs + implicit fake; labeled: cross-entropy;
        all real images: "not fake"; generated: "fake"; generator by feature matching); accuracy
        on a stratified held-out ``val_fraction`` of the labeled images, which it does not train on.

    Returns:
        The metrics written to ``out/metrics.json``.
    """
    if method not in ("features", "ssl"):
        raise GanAugmentError(f"method={method!r} is not one of features, ssl")
    if not 0 <= val_fraction < 1:
        raise GanAugmentError(f"val_fraction={val_fraction} must be in [0, 1)")
    out_dir = Path(out).expanduser()
    reporter = Reporter(quiet=quiet)
    dev = resolve_device(device)
    if (out_dir / CLASSIFIER_NAME).exists() and not overwrite:
        raise GanAugmentError(f"{str(out_dir)!r} already holds a classifier: pass --overwrite or another --out")
    check_run_dir(out_dir, resume=False, overwrite=True)
    config = config or TrainConfig()
    t0 = time.perf_counter()
    if method == "features":
        result = train_features_classifier(Path(labeled), Path(unlabeled) if unlabeled else None, out_dir, config, dev, reporter)
    else:
        data = load_image_data(labeled, unlabeled, image_size=config.image_size, channels=config.channels)
        reporter.message(summary(data))
        prepare_run_dir(out_dir, resume=False, overwrite=True)
        result = train_ssl(data, config, dev, val_fraction, reporter)
    metrics = {**result["metrics"], "seconds": round(time.perf_counter() - t0, 1), "device": str(dev), "seed": config.seed}
    save_checkpoint({**result["state"], "metrics": metrics}, out_dir / CLASSIFIER_NAME)
    atomic_write_json(out_dir / "metrics.json", metrics)
    return metrics


class Predictor:
    """A classifier saved by :func:`classify`, ready to predict class probabilities.

    Args:
        path_or_run_dir: ``classifier.pt`` or the folder holding it.
        device: Where to run (default CUDA when available).
    """

    def __init__(self, path_or_run_dir: str | os.PathLike[str], device: str | torch.device = "auto") -> None:
        path = Path(path_or_run_dir)
        if path.is_dir():
            path = path / CLASSIFIER_NAME
        if not path.is_file():
            raise CheckpointError(f"no classifier at {str(path)!r}: pass a folder written by `gan-augment classify`")
        self.state = load_checkpoint(path)
        if self.state.get("kind") not in ("features", "ssl"):
            raise CheckpointError(f"{str(path)!r} is a GAN checkpoint, not a classifier: use `gan-augment classify`")
        self.device = resolve_device(device)
        self.class_names: list[str] = list(self.state["class_names"])
        self.image_size = int(self.state["image_size"])
        self.channels = int(self.state["channels"])
        if self.state["kind"] == "features":
            d = build_discriminator(self.state["gan"])
            assert isinstance(d, Discriminator)
            self.model: torch.nn.Module = d.to(self.device).eval()
        else:
            from .ssl import SSLDiscriminator

            sd = SSLDiscriminator(ModelConfig.from_dict(self.state["model_config"]), len(self.class_names))
            sd.load_state_dict(self.state["d"])
            self.model = sd.to(self.device).eval()

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor) -> np.ndarray:
        """Class probabilities (N, K) of uint8 images (N, C, H, W) at the classifier's size."""
        x = images.float().div(127.5).sub(1)
        if self.state["kind"] == "ssl":
            logits = torch.cat([self.model(x[i : i + 512].to(self.device)).float().cpu() for i in range(0, len(x), 512)])
        else:
            assert isinstance(self.model, Discriminator)
            feats = extract_features(self.model, x, self.state["layers"], int(self.state["grid"]))
            feats = (feats - self.state["scaler_mean"]) / self.state["scaler_scale"]
            logits = feats @ self.state["coef"].T + self.state["intercept"]
            if logits.shape[1] == 1:  # scikit-learn's binary form: one logit for the second class
                logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
        return torch.softmax(logits, dim=1).numpy()


def decode_folder(folder: str | os.PathLike[str], image_size: int, channels: int) -> tuple[list[str], torch.Tensor, list[tuple[str, str]]]:
    """Decode every image under ``folder`` (recursive) to uint8 (N, C, H, W); returns files, images, skipped."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"images folder {str(root)!r} does not exist or is not a folder: check the path")
    files, _ = _walk_images(root)
    arrays, kept, skipped = [], [], []
    for p in files:
        try:
            arr, _ = decode_image(p, image_size)
        except Exception as exc:  # unreadable images are listed, not fatal
            skipped.append((str(p), f"{type(exc).__name__}: {exc}".splitlines()[0]))
            continue
        arrays.append(arr)
        kept.append(str(p))
    if not arrays:
        raise DataError(f"no readable image under {str(root)!r}")
    return kept, torch.from_numpy(to_channels(np.stack(arrays), channels)), skipped


def predict_folder(run: str | os.PathLike[str], images_dir: str | os.PathLike[str], out_csv: str | os.PathLike[str], device: str = "auto") -> int:
    """Write ``file,class,probability`` for every image under ``images_dir``; returns the row count."""
    predictor = Predictor(run, device=device)
    files, images, _ = decode_folder(images_dir, predictor.image_size, predictor.channels)
    probs = predictor.predict_proba(images)
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "class", "probability"])
        for path, p in zip(files, probs):
            c = int(p.argmax())
            w.writerow([path, predictor.class_names[c], f"{p[c]:.6f}"])
    os.replace(tmp, out)
    return len(files)
