"""Imbalanced labels: logit adjustment (Menon et al., 2021) and the measures that weigh every class alike."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError

# A labeled set whose largest class has this many times the images of its smallest is imbalanced: evaluate
# then scores by balanced accuracy and adds the imbalanced set's arms.
IMBALANCED_RATIO = 3.0


def imbalance_ratio(counts: Sequence[int]) -> float:
    """The largest class's images over the smallest's (inf when a class has none)."""
    counts = [int(c) for c in counts]
    return float("inf") if not counts or min(counts) == 0 else max(counts) / min(counts)


def is_imbalanced(counts: Sequence[int]) -> bool:
    """Whether the largest class has ``IMBALANCED_RATIO`` times the smallest's images (False with no counts,
    as in records written before they carried them)."""
    return len(counts) > 0 and imbalance_ratio(counts) >= IMBALANCED_RATIO


def class_prior(counts: Sequence[int]) -> torch.Tensor:
    """The training labels' class frequencies (K,), from their counts (every class needs one image)."""
    c = torch.as_tensor(list(counts), dtype=torch.float64)
    if len(c) == 0 or bool((c <= 0).any()):
        raise UsageError(f"class counts {list(counts)}: every class needs at least one training image")
    return (c / c.sum()).float()


def logit_adjusted_loss(
    logits: torch.Tensor, targets: torch.Tensor, prior: torch.Tensor, tau: float = 1.0, **cross_entropy: Any
) -> torch.Tensor:
    """The logit-adjusted cross-entropy: ``CE(logits + tau · log prior, y)``. Training on it makes the
    plain logits estimate the balanced (class-prior-free) posterior; ``targets`` are class indices or
    (B, K) probabilities; ``cross_entropy`` goes to ``F.cross_entropy`` (``label_smoothing``, ``weight``)."""
    return F.cross_entropy(logits + tau * prior.to(logits).log(), targets, **cross_entropy)


def adjust_logits(logits: torch.Tensor, prior: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Post-hoc logit adjustment of a model trained with plain cross-entropy: ``logits − tau · log prior``."""
    return logits - tau * prior.to(logits).log()


class AdjustedLogits(nn.Module):
    """Post-hoc logit adjustment of a trained classifier: its logits minus ``log prior``."""

    def __init__(self, model: nn.Module, prior: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("prior", prior.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adjust_logits(self.model(x), self.prior)


def inverse_frequency_weights(counts: Sequence[int]) -> torch.Tensor:
    """Re-weighting's class weights: ``1 / count``, scaled so the training images' mean weight is 1."""
    prior = class_prior(counts)
    weights = 1 / prior
    return (weights / (prior * weights).sum()).float()


def balanced_indices(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Class-balanced re-sampling as indices: every class repeated up to the largest class's count, its
    images in turn (each as often as the others, give or take one)."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    top = int(counts.max()) if len(counts) else 0
    out = []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        out.append(np.concatenate([np.tile(idx, top // len(idx)), idx[: top % len(idx)]]))
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def rarest(counts: Sequence[int], n: int = 3) -> list[int]:
    """The ``n`` classes with the fewest training images (ties: the later class first, as in a long tail)."""
    order = sorted(range(len(counts)), key=lambda c: (counts[c], -c))
    return sorted(order[:n])


def per_class_recall(predictions: np.ndarray, labels: np.ndarray, k: int) -> list[float]:
    """Each class's recall (the share of its test images predicted as it); NaN for a class without any."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return [float((predictions[labels == c] == c).mean()) if (labels == c).any() else float("nan") for c in range(k)]


def balanced_accuracy(predictions: np.ndarray, labels: np.ndarray, k: int) -> float:
    """The mean of the per-class recalls over the classes the test set has (every class weighs alike)."""
    recalls = [r for r in per_class_recall(predictions, labels, k) if r == r]
    return float(np.mean(recalls)) if recalls else float("nan")


def imbalance_scores(predictions: np.ndarray, labels: np.ndarray, counts: Sequence[int]) -> dict[str, Any]:
    """What a long-tailed comparison reports of one classifier's test predictions: balanced accuracy,
    per-class recall, and the mean recall over the three classes with the fewest training images
    (``counts``: training images per class)."""
    recall = per_class_recall(predictions, labels, len(counts))
    rare = [recall[c] for c in rarest(counts) if recall[c] == recall[c]]
    return {
        "balanced_accuracy": balanced_accuracy(predictions, labels, len(counts)),
        "per_class_recall": [round(r, 4) for r in recall],
        "rare_recall": float(np.mean(rare)) if rare else float("nan"),
    }


def mean_recall_per_class(records: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Each arm's recall per class, the mean over its seeds (records carrying ``per_class_recall``)."""
    arms: dict[str, list[list[float]]] = {}
    for r in records:
        if r.get("per_class_recall"):
            arms.setdefault(r["arm"], []).append(r["per_class_recall"])
    return {
        arm: [round(float(v), 4) for v in np.nanmean(np.array(rows, dtype=float), axis=0)] for arm, rows in arms.items()
    }
