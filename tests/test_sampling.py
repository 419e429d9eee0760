"""Sampling from a loaded generator: tensors and PIL images, seeds, labels routed to their class model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gan_augment import (
    PerClassGenerator,
    load_generator,
    sample,
)


class TestSampling:
    def test_load_generator(self, tiny_run: Path) -> None:
        g, info = load_generator(tiny_run, device="cpu")
        assert isinstance(g, PerClassGenerator) and not g.training
        assert info.class_names == ["class_0", "class_1"] and info.image_size == 16 and info.channels == 3

    def test_sample_tensor_and_pil(self, tiny_run: Path) -> None:
        g, _ = load_generator(tiny_run, device="cpu")
        x = sample(g, 5, labels=1, seed=0)
        assert x.shape == (5, 3, 16, 16) and x.dtype == torch.uint8
        pil = sample(g, 3, labels=[0, 1, 0], seed=0, output="pil")
        assert len(pil) == 3 and pil[0].size == (16, 16) and pil[0].mode == "RGB"

    def test_same_seed_same_images(self, tiny_run: Path) -> None:
        g, _ = load_generator(tiny_run, device="cpu")
        assert torch.equal(sample(g, 4, seed=1), sample(g, 4, seed=1))
        assert not torch.equal(sample(g, 4, seed=1), sample(g, 4, seed=2))

    def test_labels_pick_the_class_model(self, tiny_run: Path) -> None:
        g, _ = load_generator(tiny_run, device="cpu")
        mixed = sample(g, 4, labels=[0, 1, 0, 1], seed=0)
        # Same noise, same class → same image as sampling that class's model alone.
        z = torch.randn(4, g.config.z_dim, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            direct = g.generators[1](z[[1, 3]])
        assert torch.equal(mixed[[1, 3]], ((direct.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))

    def test_bad_labels(self, tiny_run: Path) -> None:
        g, _ = load_generator(tiny_run, device="cpu")
        with pytest.raises(ValueError, match=r"labels must be in \[0, 1\]"):
            sample(g, 2, labels=5)
        with pytest.raises(ValueError, match="one label per image"):
            sample(g, 3, labels=[0, 1])
