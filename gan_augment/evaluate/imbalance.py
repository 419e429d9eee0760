"""Imbalanced labels: logit adjustment (Menon et al., 2021) and the measures that weigh every class alike."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError


def class_prior(counts: Sequence[int]) -> torch.Tensor:
    """The training labels' class frequencies (K,), from their counts (every class needs one image)."""
    c = torch.as_tensor(list(counts), dtype=torch.float64)
    if len(c) == 0 or bool((c <= 0).any()):
        raise UsageError(f"class counts {list(counts)}: every class needs at least one training image")
    return (c / c.sum()).float()


def logit_adjusted_loss(
    logits: torch.Tensor, targets: torch.Tensor, prior: torch.Tensor, tau: float = 1.0
) -> torch.Tensor:
    """The logit-adjusted cross-entropy: ``CE(logits + tau · log prior, y)``. Training on it makes the
    plain logits estimate the balanced (class-prior-free) posterior; ``targets`` are class indices or
    (B, K) probabilities."""
    return F.cross_entropy(logits + tau * prior.to(logits).log(), targets)


def adjust_logits(logits: torch.Tensor, prior: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Post-hoc logit adjustment of a model trained with plain cross-entropy: ``logits − tau · log prior``."""
    return logits - tau * prior.to(logits).log()


def per_class_recall(predictions: np.ndarray, labels: np.ndarray, k: int) -> list[float]:
    """Each class's recall (the share of its test images predicted as it); NaN for a class without any."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return [float((predictions[labels == c] == c).mean()) if (labels == c).any() else float("nan") for c in range(k)]


def balanced_accuracy(predictions: np.ndarray, labels: np.ndarray, k: int) -> float:
    """The mean of the per-class recalls over the classes the test set has (every class weighs alike)."""
    recalls = [r for r in per_class_recall(predictions, labels, k) if r == r]
    return float(np.mean(recalls)) if recalls else float("nan")
