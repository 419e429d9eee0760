"""The splits in data/split: the per-class draw the benchmarks use for label budgets and held-out sets."""

from __future__ import annotations

import numpy as np

from gan_augment.data import draw_per_class, stratified_split


def test_draw_per_class_takes_n_of_each_class_and_leaves_the_rest() -> None:
    labels = np.repeat(np.arange(3), [5, 2, 8])
    among = np.arange(1, 15)  # index 0 (class 0) is not drawable
    drawn, rest = draw_per_class(labels, 3, 3, np.random.default_rng(4), among=among)
    assert np.bincount(labels[drawn], minlength=3).tolist() == [3, 2, 3]  # class 1 has only 2
    assert list(labels[drawn]) == sorted(labels[drawn])  # in class order
    assert 0 not in drawn and not set(drawn) & set(rest) and sorted([*drawn, *rest]) == list(among)
    again, _ = draw_per_class(labels, 3, 3, np.random.default_rng(4), among=among)
    other, _ = draw_per_class(labels, 3, 3, np.random.default_rng(5), among=among)
    assert np.array_equal(drawn, again) and not np.array_equal(drawn, other)


def test_stratified_split_keeps_a_training_image_per_class() -> None:
    labels = np.repeat(np.arange(2), [2, 10])
    kept, held = stratified_split(labels, 0.5, seed=0, min_held_out=1)
    assert np.bincount(labels[held]).tolist() == [1, 5] and np.bincount(labels[kept]).tolist() == [1, 5]
