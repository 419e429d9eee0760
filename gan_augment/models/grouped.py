"""The grouped (batched per-class) parts: K independent models computed as one (per-class routing of
separate models is in ``routing``)."""

from __future__ import annotations

import torch
from torch import nn


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
