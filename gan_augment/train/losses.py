"""GAN losses on discriminator logits (non-saturating BCE, Wasserstein with gradient penalty, hinge) and
the SSL GAN's losses."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import UsageError


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss from logits on real (B,) and fake (B,) images (penalty not included)."""
    if kind == "bce":  # -log sigmoid(real) - log(1 - sigmoid(fake))
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    raise UsageError(f"unknown loss {kind!r}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator loss from logits on fake images (B,); bce is the non-saturating -log D(G(z))."""
    if kind == "bce":
        return F.softplus(-fake).mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    raise UsageError(f"unknown loss {kind!r}")


def penalty_weights(n: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """The gradient penalty's interpolation weights, one per image: (n, 1, 1, 1) uniform in [0, 1)."""
    return torch.rand(n, 1, 1, 1, device=device, generator=generator)


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): E[(||∇D(x̂)|| - 1)²] at interpolates x̂.

    ``alpha`` (N, 1, 1, 1) fixes the interpolation weights; by default they are drawn by
    :func:`penalty_weights` from ``generator``.
    """
    if alpha is None:
        alpha = penalty_weights(real.shape[0], real.device, generator)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(mixed)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def ssl_d_loss(
    logits_labeled: torch.Tensor, labels: torch.Tensor, logits_unlabeled: torch.Tensor, logits_fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(supervised, unsupervised) discriminator loss of Salimans et al. 2016, as their code computes it.

    With class logits l and Z(x) = Σ_k exp(l_k(x)), D(x) = Z / (Z + 1) (the fake logit fixed at 0):
    supervised = cross-entropy of the labeled logits; unsupervised = ½ (−E log D(x_unlabeled) −
    E log(1 − D(G(z)))), where −log D = softplus(lse) − lse and −log(1 − D) = softplus(lse).
    """
    sup = F.cross_entropy(logits_labeled, labels)
    lse_u = torch.logsumexp(logits_unlabeled, dim=1)  # log Z of unlabeled real images
    lse_f = torch.logsumexp(logits_fake, dim=1)
    unsup = 0.5 * ((F.softplus(lse_u) - lse_u).mean() + F.softplus(lse_f).mean())
    return sup, unsup


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """Mean over features of (E f(x) − E f(G(z)))², over a batch (the generator's objective)."""
    return (real_features.detach().mean(0) - fake_features.mean(0)).pow(2).mean()


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of softmax(logits) over a batch (entropy minimisation's term)."""
    return -(F.softmax(logits, dim=1) * F.log_softmax(logits, dim=1)).sum(1).mean()


def consistency_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the class probabilities of two passes over the same images."""
    return (F.softmax(logits_a, dim=1) - F.softmax(logits_b, dim=1)).pow(2).sum(1).mean()
