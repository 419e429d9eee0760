"""GANAugmentedDataset as a composition: the base dataset + a synthetic source (a bank and a labeller)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import ImageFolder
from torchvision.transforms.v2 import functional as TF

from gan_augment import GANAugmentedDataset
from gan_augment.data.decode import to_channels
from gan_augment.io.images import match_images, rgb_to_gray
from gan_augment.plugins.source import ItemForm, Labelling, SyntheticSource


def test_the_dataset_draws_through_its_source(trained: dict[str, Path]) -> None:
    base = ImageFolder(trained["labeled"])
    ds = GANAugmentedDataset(base, trained["per-class"], per_class=3, seed=5, labels="generator")
    assert isinstance(ds.source, SyntheticSource) and isinstance(ds.source.form, ItemForm)
    assert ds.source.labelling == Labelling("generator", None, 0.0, 1.0) and ds.labels == "generator"
    images, hard, soft = ds.source.draw(ds.counts, 5)  # what resample(5) drew: the same seed, the same images
    assert torch.equal(images, ds.synthetic_images) and torch.equal(hard, ds.synthetic_targets) and soft is None
    assert ds.class_names == base.classes and ds.raw_form == "pil"


def test_a_workers_copy_serves_items_but_holds_no_generator_or_teacher(trained: dict[str, Path]) -> None:
    base = ImageFolder(trained["labeled"])
    ds = GANAugmentedDataset(base, trained["per-class"], per_class=2, labels="generator")
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.source.bank is None and copy.teacher is None and ds.source.bank is not None
    last = len(ds) - 1
    assert np.array_equal(np.asarray(copy[last][0]), np.asarray(ds[last][0])) and copy[last][1] == ds[last][1]
    with pytest.raises(RuntimeError, match="without its generator"):
        copy.resample()


def test_one_gray_conversion_everywhere() -> None:
    """Decoding, resizing to a dataset's channels and the features all use torchvision's weights, rounded."""
    rgb = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    expected = TF.rgb_to_grayscale(rgb.float()).round().to(torch.uint8)
    assert torch.equal(rgb_to_gray(rgb), expected)
    assert torch.equal(match_images(rgb, None, 1), expected)
    assert np.array_equal(to_channels(rgb.permute(0, 2, 3, 1).numpy(), 1), expected.numpy())
    unit = rgb.float() / 255
    assert torch.allclose(rgb_to_gray(unit), TF.rgb_to_grayscale(unit)) and rgb_to_gray(unit).dtype == torch.float32
