"""The long-tailed split, the logit-adjusted loss, re-weighting and re-sampling, balanced accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gan_augment.data import draw_long_tailed, fill_classes, long_tailed_counts
from gan_augment.errors import UsageError
from gan_augment.evaluate.imbalance import (
    adjust_logits,
    balanced_accuracy,
    balanced_indices,
    class_prior,
    imbalance_ratio,
    imbalance_scores,
    inverse_frequency_weights,
    is_imbalanced,
    logit_adjusted_loss,
    mean_recall_per_class,
    per_class_recall,
    rarest,
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


def test_reweighting_and_resampling_give_every_class_the_same_weight() -> None:
    counts = [8, 2, 1]
    w = inverse_frequency_weights(counts)
    per_class_total = w * torch.tensor(counts, dtype=torch.float32)
    assert torch.allclose(per_class_total, per_class_total[0].expand(3))  # each class weighs alike
    assert float((w * torch.tensor(counts)).sum() / sum(counts)) == pytest.approx(1.0)  # mean image weight 1
    labels = np.array([0] * 8 + [1] * 2 + [2])
    idx = balanced_indices(labels, np.random.default_rng(0))
    assert np.bincount(labels[idx]).tolist() == [8, 8, 8]
    assert np.bincount(idx[labels[idx] == 1]).tolist()[8:] == [4, 4]  # each image of a class as often
    assert rarest([500, 300, 180, 5, 65], 2) == [3, 4] and rarest([3, 3, 3], 2) == [1, 2]


def test_imbalance_scores_and_the_ratio_by_hand() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 0, 1, 0, 0, 0])
    scores = imbalance_scores(predictions, labels, [50, 10, 2])
    assert scores["per_class_recall"] == [1.0, 0.5, 0.0]
    assert scores["balanced_accuracy"] == pytest.approx(0.5) and scores["rare_recall"] == pytest.approx(0.5)
    assert imbalance_ratio([500, 5]) == 100 and is_imbalanced([500, 5]) and not is_imbalanced([10, 9, 8])
    assert imbalance_ratio([3, 0]) == math.inf and not is_imbalanced([])
    recall = mean_recall_per_class(
        [{"arm": "a", "per_class_recall": [1.0, 0.0]}, {"arm": "a", "per_class_recall": [0.5, 1.0]}]
    )
    assert recall == {"a": [0.75, 0.5]}


def test_the_classifier_trains_on_the_logit_adjusted_loss_when_given_a_prior() -> None:
    """A uniform prior changes nothing but the label smoothing, which logit adjustment goes without (a
    constant added to every logit); a skewed prior or class weights train another model; post-hoc
    adjustment subtracts the log prior from the logits."""
    from gan_augment.evaluate import ArrayDataset, ClassifierConfig, train_classifier
    from gan_augment.evaluate.imbalance import AdjustedLogits

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (24, 1, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.tensor([0] * 18 + [1] * 4 + [2] * 2)
    ds = ArrayDataset(images, labels, ["a", "b", "c"])
    cfg = ClassifierConfig(steps=4, width=4, batch_size=8, workers=0)
    x = images.float() / 127.5 - 1

    def logits(**loss: torch.Tensor) -> torch.Tensor:
        model = train_classifier(ds, 1, 3, cfg, torch.device("cpu"), 0, False, **loss)
        with torch.no_grad():
            return model(x)

    plain = logits()
    cfg = ClassifierConfig(steps=4, width=4, batch_size=8, workers=0, label_smoothing=0.0)
    unsmoothed = logits()
    cfg = ClassifierConfig(steps=4, width=4, batch_size=8, workers=0)  # smoothing 0.1, which adjustment drops
    assert torch.allclose(logits(prior=torch.full((3,), 1 / 3)), unsmoothed, atol=1e-4)
    assert not torch.allclose(unsmoothed, plain, atol=1e-3)
    assert not torch.allclose(logits(prior=class_prior([18, 4, 2])), plain, atol=1e-3)
    assert not torch.allclose(logits(class_weight=inverse_frequency_weights([18, 4, 2])), plain, atol=1e-3)
    model = torch.nn.Linear(2, 3)
    adjusted = AdjustedLogits(model, class_prior([18, 4, 2]))
    inp = torch.randn(5, 2)
    expected = model(inp) - torch.tensor([18 / 24, 4 / 24, 2 / 24]).log()
    assert torch.allclose(adjusted(inp), expected, atol=1e-5)


def test_fill_classes_takes_the_likeliest_images_of_each_class_once() -> None:
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3], [0.0, 0.5, 0.5]])
    idx = fill_classes(probs, [4, 3, 2])  # class 2 lacks 2 (chooses first), class 1 lacks 1
    assert idx.tolist() == [2, 4, 1]  # class 2: images 2 and 4; class 1: the likeliest left, image 1
    assert fill_classes(probs, [1, 1, 1]).tolist() == []
    assert len(fill_classes(probs[:2], [9, 1, 1])) == 2  # fewer images than wanted: all, each once
