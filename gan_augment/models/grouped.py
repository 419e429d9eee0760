"""The grouped (batched per-class) parts: K independent models computed as one, and per-class routing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .dcgan import Discriminator, Generator


class GroupedLinear(nn.Module):
    """``groups`` independent linear layers in one call: (B, G, in) → (B, G, out).

    The weight is stored as (G·out, in), the concatenation of the G layers' weights, so that
    ``groups=1`` has exactly ``nn.Linear``'s parameter shapes.
    """

    def __init__(self, in_features: int, out_features: int, groups: int) -> None:
        super().__init__()
        self.groups, self.out_features = groups, out_features
        self.weight = nn.Parameter(torch.empty(groups * out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(groups * out_features))
        nn.init.normal_(self.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.view(self.groups, self.out_features, -1)  # (G, out, in)
        return torch.einsum("bgi,goi->bgo", x, w) + self.bias.view(self.groups, self.out_features)


def pack_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """State dicts of G identical single models → the state dict of their grouped model.

    Every tensor is concatenated along dim 0 (the layout of the grouped layers); 0-d tensors (such
    as BatchNorm's ``num_batches_tracked``) are taken from the first model.
    """
    return {k: v if v.ndim == 0 else torch.cat([s[k] for s in states]) for k, v in states[0].items()}


def unpack_states(state: dict[str, torch.Tensor], groups: int) -> list[dict[str, torch.Tensor]]:
    """The inverse of :func:`pack_states`: a grouped model's state dict → G single-model state dicts."""
    parts = {k: [v] * groups if v.ndim == 0 else list(v.chunk(groups)) for k, v in state.items()}
    return [{k: parts[k][i].clone() for k in state} for i in range(groups)]


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
            raise ValueError("PerClassGenerator needs at least one generator")
        self.generators = nn.ModuleList(generators)
        self.config = generators[0].config

    @property
    def num_classes(self) -> int:
        return len(self.generators)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Map noise (B, z_dim) and labels (B,) to images (B, C, H, W), each from its class's model."""
        if y is None:
            raise ValueError("a per-class generator needs labels y")
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
            raise ValueError("PerClassDiscriminator needs at least one discriminator")
        self.discriminators = nn.ModuleList(discriminators)
        self.config = discriminators[0].config

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Map images (B, C, H, W) and labels (B,) to logits (B,)."""
        if y is None:
            raise ValueError("a per-class discriminator needs labels y")
        return route_by_class(self.discriminators, x, y, x.new_empty(x.shape[0]))
