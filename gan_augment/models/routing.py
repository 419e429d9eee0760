"""Per-class routing: K separate single-class models behind the conditional interface ``G(z, y)`` /
``D(x, y)`` (the grouped form, K models computed as one, is in ``grouped``)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UsageError
from .dcgan import Discriminator, Generator


def route_by_class(models: nn.ModuleList, x: torch.Tensor, y: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Fill ``out[i]`` with ``models[y[i]](x[i])``, one batched call per class present."""
    for c in torch.unique(y).tolist():
        idx = (y == c).nonzero(as_tuple=True)[0]
        out[idx] = models[c](x[idx]).to(out.dtype)
    return out


class PerClassGenerator(nn.Module):
    """One unconditional generator per class behind the conditional interface ``G(z, y)``.

    Args:
        generators: One generator per class, in class-index order.
    """

    def __init__(self, generators: list[Generator]) -> None:
        super().__init__()
        if not generators:
            raise UsageError("PerClassGenerator needs at least one generator")
        self.generators = nn.ModuleList(generators)
        self.config = generators[0].config

    @property
    def num_classes(self) -> int:
        return len(self.generators)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Map noise (B, z_dim) and labels (B,) to images (B, C, H, W), each from its class's model."""
        if y is None:
            raise UsageError("a per-class generator needs labels y")
        out = z.new_empty(z.shape[0], self.config.channels, self.config.image_size, self.config.image_size)
        return route_by_class(self.generators, z, y, out)


class PerClassDiscriminator(nn.Module):
    """One discriminator per class behind ``D(x, y)``: each image is scored by its class's model.

    Args:
        discriminators: One discriminator per class, in class-index order.
    """

    def __init__(self, discriminators: list[Discriminator]) -> None:
        super().__init__()
        if not discriminators:
            raise UsageError("PerClassDiscriminator needs at least one discriminator")
        self.discriminators = nn.ModuleList(discriminators)
        self.config = discriminators[0].config

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Map images (B, C, H, W) and labels (B,) to logits (B,)."""
        if y is None:
            raise UsageError("a per-class discriminator needs labels y")
        return route_by_class(self.discriminators, x, y, x.new_empty(x.shape[0]))
