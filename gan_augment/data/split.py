"""The splits: held-out images per class (every class keeping a training image), per-class draws, and the
unlabeled images that fill the rare classes."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import torch

from ..errors import UsageError


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int, min_held_out: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) index arrays, sorted, with about ``fraction`` of each class held out.

    Each class holds out ``round(n · fraction)`` images, at least ``min_held_out`` and at most
    ``n - 1`` (every class keeps a training image). scikit-learn's stratified splitters are not
    used: they refuse classes of one image and do not promise a training image per class, which
    few-label folders need.

    Raises:
        ValueError: If a class has fewer than ``min_held_out + 1`` images.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    kept, held = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < min_held_out + 1:
            raise UsageError(
                f"class {c} has {len(idx)} image(s): this split needs at least {min_held_out + 1} per class"
            )
        n_held = min(len(idx) - 1, max(min_held_out, int(round(len(idx) * fraction))))
        held.append(idx[:n_held])
        kept.append(idx[n_held:])
    return np.sort(np.concatenate(kept)).astype(np.int64), np.sort(np.concatenate(held)).astype(np.int64)


def draw_per_class(
    labels: np.ndarray, k: int, n: int, rng: np.random.Generator, among: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(drawn, rest): ``n`` indices of each class 0..k-1 (all of a class with fewer) drawn with ``rng`` from
    ``among`` (default: every index), in class order; the rest of ``among``, sorted. The benchmarks'
    label budgets and held-out sets, reproducible from the seed of ``rng``."""
    labels = np.asarray(labels)
    among = np.arange(len(labels)) if among is None else np.asarray(among)
    drawn = np.concatenate([rng.permutation(among[labels[among] == c])[:n] for c in range(k)])
    return drawn, np.setdiff1d(among, drawn)


def long_tailed_counts(k: int, largest: int, ratio: float) -> list[int]:
    """Images per class of an exponential long-tailed profile: class c gets ``largest · ratio^(−c/(k−1))``
    (rounded, at least 1), so class 0 has ``largest`` and class k−1 ``largest / ratio`` (Cao et al. 2019;
    Menon et al. 2021: ratio 100 on CIFAR-10)."""
    if k < 1 or largest < 1 or ratio < 1:
        raise UsageError(f"a long tail needs k >= 1, largest >= 1 and ratio >= 1 (got {k}, {largest}, {ratio})")
    if k == 1:
        return [largest]
    return [max(1, int(round(largest * ratio ** (-c / (k - 1))))) for c in range(k)]


def draw_long_tailed(
    labels: np.ndarray, k: int, largest: int, ratio: float, rng: np.random.Generator, among: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(drawn, rest) as :func:`draw_per_class`, but class c gets its :func:`long_tailed_counts` share."""
    labels = np.asarray(labels)
    among = np.arange(len(labels)) if among is None else np.asarray(among)
    counts = long_tailed_counts(k, largest, ratio)
    drawn = np.concatenate([rng.permutation(among[labels[among] == c])[: counts[c]] for c in range(k)])
    return drawn, np.setdiff1d(among, drawn)


def fill_classes(probabilities: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """Which unlabeled images fill every class up to the largest: for each class, rarest first, the images
    a classifier rates likeliest of it (``probabilities``, (N, K)), as many as it lacks; each image once.
    Train on them with those probabilities as targets: with a logit-adjusted classifier as the labeller,
    the best route of the long-tailed benchmark (docs/results/long_tailed.md)."""
    free = torch.ones(len(probabilities), dtype=torch.bool)
    chosen = [torch.zeros(0, dtype=torch.int64)]
    for c in sorted(range(len(counts)), key=lambda c: counts[c]):
        score = torch.where(free, probabilities[:, c].float(), torch.tensor(-1.0))
        idx = score.topk(min(max(counts) - counts[c], int(free.sum()))).indices
        free[idx] = False
        chosen.append(idx)
    return torch.cat(chosen)


def copies_of(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Boolean (N,): which of ``images`` (uint8 N, C, H, W) have pixels equal to one of ``reference``'s."""
    if images.shape[1:] != reference.shape[1:] or not len(images):
        return torch.zeros(len(images), dtype=torch.bool)
    seen = {hashlib.blake2b(img.numpy().tobytes(), digest_size=16).digest() for img in reference}
    return torch.tensor([hashlib.blake2b(img.numpy().tobytes(), digest_size=16).digest() in seen for img in images])


def without_copies(pool: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``pool`` (uint8 N, C, H, W) without the images whose pixels equal one of ``reference``'s (a
    labeled or held-out image that is also in the pool, as the same file or a copy); returns the
    kept images and the number left out. Test images in an unlabeled pool make every gain optimistic."""
    copies = copies_of(pool, reference)
    return pool[~copies], int(copies.sum())
