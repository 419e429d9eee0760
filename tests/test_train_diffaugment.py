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

    @staticmethod
    def _block(img: torch.Tensor) -> tuple[int, int]:
        """Top-left corner of the 3×5 block of one value in ``img`` (1, H, W): the only value 15 pixels hold
        (the background holds the most, the zero padding 0, 16, 31 or 32)."""
        values, counts = img.flatten().unique(return_counts=True)
        (value,) = values[counts == 15].tolist()
        rows, cols = (img[0] == value).nonzero().unbind(1)
        assert (rows.max() - rows.min(), cols.max() - cols.min()) == (2, 4)  # whole: 3 rows, 5 columns
        return int(rows.min()), int(cols.min())

    def test_translation_moves_the_whole_image_by_at_most_its_share(self) -> None:
        x = -torch.ones(16, 1, 16, 16)
        x[:, :, 6:9, 5:10] = 1.0  # a 3×5 block at (6, 5)
        shifts = set()
        for img in diff_augment(x, torch.Generator().manual_seed(1), cutout=0.0):
            top, left = self._block(img)
            assert abs(top - 6) <= 2 and abs(left - 5) <= 2  # 0.125 of 16 px: at most 2 px each way
            shifts.add((top - 6, left - 5))
        assert len(shifts) > 3  # 16 images, 25 possible shifts
        still = diff_augment(x, torch.Generator().manual_seed(1), translation=0.0, cutout=0.0)
        assert {self._block(img) for img in still} == {(6, 5)}
