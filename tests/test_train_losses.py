"""The SSL GAN's losses against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from gan_augment.train.losses import consistency_loss, feature_matching_loss, prediction_entropy, ssl_d_loss


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


def test_ssl_loss_by_hand() -> None:
    """Salimans et al.'s losses on two tiny batches, computed term by term from their definitions."""
    lab = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    unl = torch.tensor([[0.5, -0.5], [1.0, 1.0]])
    fake = torch.tensor([[-1.0, -2.0]])
    sup, unsup = ssl_d_loss(lab, torch.tensor([0, 1]), unl, fake)
    ce = [-(1 - math.log(math.e + 1)), -(2 - math.log(1 + math.e**2))]
    assert sup.item() == pytest.approx(sum(ce) / 2)

    def d_real(row: list[float]) -> float:  # D(x) = Z / (Z + 1), Z = Σ exp(l)
        z = sum(math.exp(v) for v in row)
        return z / (z + 1)

    by_hand = 0.5 * (-(math.log(d_real([0.5, -0.5])) + math.log(d_real([1.0, 1.0]))) / 2
                     - math.log(1 - d_real([-1.0, -2.0])))  # fmt: skip
    assert unsup.item() == pytest.approx(by_hand)


def test_entropy_and_consistency_terms() -> None:
    uniform, certain = torch.zeros(1, 4), torch.tensor([[50.0, 0.0, 0.0, 0.0]])
    assert prediction_entropy(uniform).item() == pytest.approx(math.log(4))
    assert prediction_entropy(certain).item() == pytest.approx(0.0, abs=1e-6)
    assert consistency_loss(certain, certain).item() == 0.0
    assert consistency_loss(uniform, certain).item() == pytest.approx(0.75**2 + 3 * 0.25**2)
