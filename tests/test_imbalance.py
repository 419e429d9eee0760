"""Issue 23 (first part): the long-tailed split, the logit-adjusted loss, balanced accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gan_augment.data import draw_long_tailed, long_tailed_counts
from gan_augment.errors import UsageError
from gan_augment.evaluate.imbalance import (
    adjust_logits,
    balanced_accuracy,
    class_prior,
    logit_adjusted_loss,
    per_class_recall,
)


def test_the_long_tailed_counts_follow_the_exponential_profile() -> None:
    counts = long_tailed_counts(10, 500, 100.0)
    assert counts[0] == 500 and counts[-1] == 5 and counts == sorted(counts, reverse=True)
    assert all(c == round(500 * 100 ** (-i / 9)) for i, c in enumerate(counts))
    assert long_tailed_counts(1, 7, 100.0) == [7] and long_tailed_counts(3, 4, 1.0) == [4, 4, 4]
    with pytest.raises(UsageError):
        long_tailed_counts(3, 10, 0.5)


def test_the_long_tailed_draw_takes_the_profile_and_leaves_the_test_split_alone() -> None:
    labels = np.repeat(np.arange(4), 60)
    test = np.arange(0, 240, 6)  # every sixth image held out before drawing
    pool = np.setdiff1d(np.arange(240), test)
    drawn, rest = draw_long_tailed(labels, 4, 40, 10.0, np.random.default_rng(0), among=pool)
    assert np.bincount(labels[drawn], minlength=4).tolist() == long_tailed_counts(4, 40, 10.0) == [40, 19, 9, 4]
    assert not set(drawn) & set(test) and not set(rest) & set(test)  # the test split untouched
    assert sorted([*drawn, *rest]) == list(pool)


def test_the_logit_adjusted_loss_matches_a_hand_computation() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0]])
    prior = class_prior([80, 15, 5])  # 0.80, 0.15, 0.05
    adjusted = [2.0 + math.log(0.80), 0.5 + math.log(0.15), -1.0 + math.log(0.05)]
    for y in range(3):
        by_hand = -(adjusted[y] - math.log(sum(math.exp(a) for a in adjusted)))
        assert float(logit_adjusted_loss(logits, torch.tensor([y]), prior)) == pytest.approx(by_hand, rel=1e-5)
    # tau = 0 is plain cross-entropy; post-hoc adjustment favours the rare class over the frequent one
    assert float(logit_adjusted_loss(logits, torch.tensor([1]), prior, tau=0.0)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, torch.tensor([1])))
    )
    shifted = adjust_logits(torch.tensor([[1.0, 1.0, 1.0]]), prior)
    assert shifted.argmax(1).item() == 2


def test_balanced_accuracy_weighs_every_class_alike() -> None:
    labels = np.array([0] * 8 + [1] * 2)
    predictions = np.zeros(10, dtype=int)  # always the frequent class: 80% accurate, 50% balanced
    assert per_class_recall(predictions, labels, 3)[:2] == [1.0, 0.0] and math.isnan(
        per_class_recall(predictions, labels, 3)[2]
    )
    assert balanced_accuracy(predictions, labels, 3) == pytest.approx(0.5)
    with pytest.raises(UsageError):
        class_prior([3, 0])
