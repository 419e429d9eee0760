"""The SSL GAN's losses against hand computations."""

from __future__ import annotations

import pytest
import torch

from gan_augment.train.losses import feature_matching_loss, ssl_d_loss


class TestSSLLosses:
    def test_real_and_fake_terms(self) -> None:
        labels = torch.tensor([0, 1])
        confident_real = torch.tensor([[20.0, 0.0], [0.0, 20.0]])
        confident_fake = torch.full((2, 2), -20.0)
        sup, unsup = ssl_d_loss(confident_real, labels, confident_real, confident_fake)
        assert sup < 1e-6 and unsup < 1e-6  # right classes, real called real, fake called fake
        sup, unsup = ssl_d_loss(confident_real.flip(1), labels, confident_fake, confident_real)
        assert sup > 10 and unsup > 10

    def test_feature_matching(self) -> None:
        real = torch.randn(8, 5)
        assert feature_matching_loss(real, real.clone()) == 0
        fake = real.clone().requires_grad_(True)
        loss = feature_matching_loss(real, fake + 1)
        loss.backward()
        assert loss.item() == pytest.approx(1.0) and fake.grad is not None
