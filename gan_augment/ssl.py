"""The semi-supervised GAN of Salimans et al. 2016: a discriminator with K class outputs is the classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .models import Discriminator, Generator


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


def ssl_d_loss(
    logits_labeled: torch.Tensor, labels: torch.Tensor, logits_unlabeled: torch.Tensor, logits_fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(supervised cross-entropy, unsupervised real-vs-fake loss) of Salimans et al. 2016, eq. (5)."""
    sup = F.cross_entropy(logits_labeled, labels)
    lse_u = torch.logsumexp(logits_unlabeled, dim=1)  # log Z of unlabeled real images
    lse_f = torch.logsumexp(logits_fake, dim=1)
    # -log D(x) = -(lse - softplus(lse)); -log(1 - D(G(z))) = softplus(lse)
    unsup = -(lse_u - F.softplus(lse_u)).mean() + F.softplus(lse_f).mean()
    return sup, unsup


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """‖E f(x) − E f(G(z))‖² over a batch (the generator's objective)."""
    return (real_features.detach().mean(0) - fake_features.mean(0)).pow(2).mean()


class SSLGan(nn.Module):
    """Generator and K-class discriminator trained together."""

    def __init__(self, config: ModelConfig, classes: int) -> None:
        super().__init__()
        self.g = Generator(config)
        self.d = SSLDiscriminator(config, classes)
