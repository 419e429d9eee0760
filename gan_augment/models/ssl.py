"""The semi-supervised GAN's models (Salimans et al. 2016): a discriminator with K class outputs is the classifier."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .dcgan import Discriminator, Generator


class SSLDiscriminator(nn.Module):
    """A DCGAN discriminator whose head gives K class logits; "fake" is the implicit (K+1)-th class.

    With class logits l, D's probability that an image is real is Z / (Z + 1), Z = Σ exp(l_k)
    (the fake logit is fixed at 0), so the classifier is softmax(l).

    Args:
        config: Architecture (``num_classes`` is ignored; ``classes`` sets the outputs).
        classes: Number of classes K.
    """

    def __init__(self, config: ModelConfig, classes: int) -> None:
        super().__init__()
        self.body = Discriminator(config)
        self.head = nn.Linear(self.body.feature_dim, classes)
        nn.init.normal_(self.head.weight, 0.0, 0.02)
        nn.init.zeros_(self.head.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened last-block features (B, F): what feature matching compares."""
        return self.body.forward_features(x)[-1].flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, K) of images (B, C, H, W) in [-1, 1]."""
        return self.head(self.features(x))


class SSLGan(nn.Module):
    """Generator and K-class discriminator trained together."""

    def __init__(self, config: ModelConfig, classes: int) -> None:
        super().__init__()
        self.g = Generator(config)
        self.d = SSLDiscriminator(config, classes)
