"""How good a run's samples are: classification accuracy score, a real-data classifier on them, diversity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..io.rebuild import load_generator
from ..sampling import sample
from ..seeds import QUALITY_SAMPLES
from ..train.metrics import accuracy, predict_logits
from .classifier import ArrayDataset, ClassifierConfig, Split, train_classifier
from .imbalance import per_class_recall


def diversity_ratio(synthetic: torch.Tensor, real: torch.Tensor, max_n: int = 200) -> float:
    """Mean pairwise L2 distance among synthetic images over that among real ones (≈1 good; ≪1 collapse)."""

    def mean_dist(x: torch.Tensor) -> float:
        x = x[:max_n].flatten(1).float() / 255
        if len(x) < 2:
            return float("nan")
        d = torch.cdist(x, x)
        return float(d.sum() / (len(x) * (len(x) - 1)))

    return mean_dist(synthetic) / mean_dist(real)


def generator_quality(
    run: Path,
    split: Split,
    real_model: nn.Module | None,
    classifier: ClassifierConfig,
    device: torch.device,
    flip: bool,
    seed: int,
) -> dict[str, Any]:
    """Classification accuracy score (train on synthetic only, test on real; and its recall per class),
    the real-data classifier's accuracy on synthetic images, and the mean per-class diversity ratio (min
    over classes too); the CAS classifier is trained as ``classifier`` says, on ``device``, with
    horizontal flips if ``flip``."""
    k = len(split.class_names)
    gen, _ = load_generator(run, device=device)
    n_per_class = max(1, int(np.bincount(split.train_labels.numpy(), minlength=k).max()))
    n_per_class = max(n_per_class, 100)
    labels = torch.arange(k).repeat_interleave(n_per_class)
    synth = sample(gen, len(labels), labels=labels, seed=QUALITY_SAMPLES + seed)
    out: dict[str, Any] = {}
    syn_ds = ArrayDataset(synth.cpu(), labels, split.class_names)
    cas_model = train_classifier(syn_ds, synth.shape[1], k, classifier, device, seed, flip)
    predictions = predict_logits(cas_model, split.test_images, device).argmax(1).numpy()
    out["cas"] = float((predictions == split.test_labels.numpy()).mean()) if len(predictions) else float("nan")
    out["cas_per_class"] = [round(r, 4) for r in per_class_recall(predictions, split.test_labels.numpy(), k)]
    if real_model is not None:
        out["real_clf_on_synthetic"] = accuracy(real_model, synth, labels, device)
    ratios = [diversity_ratio(synth[labels == c], split.test_images[split.test_labels == c]) for c in range(k)]
    valid = [r for r in ratios if not np.isnan(r)]  # a class with < 2 evaluation images has no ratio
    out["diversity"] = float(np.mean(valid)) if valid else float("nan")
    out["diversity_min"] = float(np.min(valid)) if valid else float("nan")
    return out
