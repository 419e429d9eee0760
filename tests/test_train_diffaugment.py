from __future__ import annotations

import pytest
import torch

from gan_augment.train.diffaugment import diff_augment


class TestDiffAugment:
    @pytest.mark.parametrize("channels", [1, 3])
    def test_shape_and_gradient(self, seed: int, channels: int) -> None:
        x = (torch.rand(5, channels, 16, 16) * 2 - 1).requires_grad_(True)
        y = diff_augment(x, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and torch.isfinite(y).all()
        y.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0

    def test_reproducible_with_generator(self) -> None:
        x = torch.rand(4, 3, 16, 16)
        a = diff_augment(x, torch.Generator().manual_seed(3))
        b = diff_augment(x, torch.Generator().manual_seed(3))
        c = diff_augment(x, torch.Generator().manual_seed(4))
        assert torch.equal(a, b) and not torch.equal(a, c)

    def test_cutout_zeroes_a_square(self) -> None:
        x = torch.ones(8, 1, 16, 16)
        y = diff_augment(x, torch.Generator().manual_seed(0), translation=0.0)
        # Colour jitter changes values but keeps each image constant; cutout makes exact zeros.
        zeros = (y == 0).flatten(1).sum(1)
        assert (zeros > 0).all() and (zeros <= 64).all()

    def test_translation_shifts_content(self) -> None:
        x = -torch.ones(16, 1, 16, 16)
        x[:, :, 6:10, 6:10] = 1.0
        y = diff_augment(x, torch.Generator().manual_seed(1), cutout=0.0)
        centres = [(img[0] > img[0].mean()).nonzero().float().mean(0) for img in y]
        assert len({tuple(c.round().tolist()) for c in centres}) > 1
