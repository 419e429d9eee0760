"""``classify``: few labels and many unlabeled images to a saved classifier (discriminator features, or the SSL GAN)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..config import SSLConfig, TrainConfig
from ..data import ImageData, load_image_data, summary
from ..device import resolve_device
from ..errors import GanAugmentError
from ..io.atomic import atomic_write_json
from ..io.checkpoint import CLASSIFIER_NAME, reading, save_checkpoint
from ..io.images import match_images
from ..io.lock import FolderLock
from ..io.outdir import check_apart
from ..io.record import load_run
from ..plugins import DiscriminatorFeatures
from ..progress import Reporter
from ..train import check_run_dir, fit, prepare_run_dir
from ..train.metrics import accuracy
from ..train.ssl import train_ssl
from ..train.teacher_status import finished_teacher

Method = Literal["features", "ssl"]
METHODS: tuple[str, ...] = ("features", "ssl")


def train_features_classifier(
    labeled: Path, unlabeled: Path | None, out: Path, config: TrainConfig, device: torch.device, reporter: Reporter
) -> dict[str, Any]:
    gan_dir = out / "gan"  # checked with the classifier's folder, and cleared of an earlier run by it
    fit(
        labeled,
        unlabeled,
        gan_dir,
        config.replace(mode="unconditional", teacher="none"),  # its discriminator is the product here
        device=device,
        overwrite=True,
        reporter=reporter,
    )
    gan = load_run(gan_dir)
    data = load_image_data(labeled, None, image_size=config.image_size, channels=gan.channels)
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
        "gan": {"model_config": gan.model.to_dict(), "phase": gan.state.phase, "models": gan.models},
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


def teacher_as_classifier(run: str | os.PathLike[str], data: ImageData, device: torch.device) -> dict[str, Any]:
    """A run's teacher as ``classify``'s ssl classifier (state and metrics), checked against ``data``."""
    found = finished_teacher(Path(run).expanduser(), "drop --run to train a classifier here")
    if found is None:
        raise GanAugmentError(
            f"{str(run)!r} has no teacher (trained with --teacher none): train a run with --teacher ssl"
        )
    path, record = found
    if record.class_names != list(data.class_names):
        raise GanAugmentError(
            f"the run's teacher knows the classes {record.class_names}, the labeled folder has "
            f"{data.class_names}: pass the run trained on this folder"
        )
    with reading(path):
        model = record.build().to(device)
    size, channels = record.image_size, record.channels
    shown = match_images(data.images, (size, size), channels)
    labeled = data.labels >= 0
    held = record.metrics.get("heldout")  # measured by fit on labeled images it never saw
    held = held if isinstance(held, dict) and isinstance(held.get("images"), int) else None
    metrics = {
        "method": "ssl",
        "run": str(run),
        "val_accuracy": None
        if held is None
        else float(held["teacher" if held.get("kept") == "teacher" else "labels_only"]),
        "labeled_accuracy": accuracy(model, shown[labeled], data.labels[labeled]),
        "num_val": 0 if held is None else held["images"],
        "num_train_labeled": int(labeled.sum()),
        "num_unlabeled": data.num_unlabeled,
        "steps": int(dict(record.state.get("ssl_config") or {}).get("steps", 0)),
        "architecture": record.architecture,
    }
    return {
        "state": {k: v for k, v in record.state.items() if k not in ("format_version", "package_version")},
        "metrics": metrics,
    }


def classify(
    labeled: str | os.PathLike[str],
    unlabeled: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    method: Method = "features",
    config: TrainConfig | None = None,
    *,
    ssl: SSLConfig | None = None,
    val_fraction: float = 0.2,
    device: str | torch.device = "auto",
    overwrite: bool = False,
    quiet: bool = False,
    run: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train a classifier from few labels and many unlabeled images, and save it as ``classifier.pt``.

    Methods:
        ``features``: an unconditional DCGAN on all images; a standardised logistic regression on
        the discriminator features of the labeled ones (accuracy: stratified k-fold
        cross-validation on the labeled images, k = min(5, smallest class)).
        ``ssl``: the semi-supervised GAN (K class outputs + implicit fake; labeled: cross-entropy;
        all real images: "not fake"; generated: "fake"; generator by feature matching); accuracy
        on a stratified held-out ``val_fraction`` of the labeled images, which it does not train on.
        Trained as ``ssl`` says (default: :class:`SSLConfig`'s, with ``config``'s seed); ``config``
        gives the image size and channels. With ``run`` (a run of ``fit`` that kept its teacher), its
        teacher is the classifier, not trained again: it saw every labeled image, so its accuracy on
        them is reported as such (optimistic), and nothing is held out.

    Returns:
        The metrics written to ``out/metrics.json``.
    """
    if method not in METHODS:
        raise GanAugmentError(f"method={method!r} is not one of {', '.join(METHODS)}")
    if not 0 <= val_fraction < 1:
        raise GanAugmentError(f"val_fraction={val_fraction} must be in [0, 1)")
    if run is not None and method != "ssl":
        raise GanAugmentError("run= gives the run's teacher, an ssl classifier: use method='ssl' (--method ssl)")
    out_dir = Path(out).expanduser()
    reporter = Reporter(quiet=quiet)
    dev = resolve_device(device)
    check_apart(out_dir, labeled, unlabeled)
    check_run_dir(out_dir, resume=False, overwrite=overwrite, resumable=False)  # nothing is removed without it
    with FolderLock(out_dir):
        job = (labeled, unlabeled, out_dir, method, config or TrainConfig(), ssl, val_fraction, dev, overwrite)
        return _classify(*job, reporter, run)


def _classify(
    labeled: str | os.PathLike[str],
    unlabeled: str | os.PathLike[str] | None,
    out_dir: Path,
    method: Method,
    config: TrainConfig,
    ssl: SSLConfig | None,
    val_fraction: float,
    dev: torch.device,
    overwrite: bool,
    reporter: Reporter,
    run: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    data = load_image_data(labeled, unlabeled, image_size=config.image_size, channels=config.channels)
    reporter.message(summary(data))  # the data is known good before anything is removed or written
    prepare_run_dir(out_dir, resume=False, overwrite=overwrite, resumable=False)  # its GAN run's files too
    if method == "features":
        result = train_features_classifier(
            Path(labeled), Path(unlabeled) if unlabeled else None, out_dir, config, dev, reporter
        )
    elif run is not None:
        result = teacher_as_classifier(run, data, dev)
    else:
        ssl = ssl or SSLConfig(seed=config.seed)
        result = train_ssl(data, ssl, dev, val_fraction, reporter)
    metrics = {
        **result["metrics"],
        "seconds": round(time.perf_counter() - t0, 1),
        "device": str(dev),
        "seed": config.seed,
    }
    save_checkpoint({**result["state"], "metrics": metrics}, out_dir / CLASSIFIER_NAME)
    atomic_write_json(out_dir / "metrics.json", metrics)
    return metrics
