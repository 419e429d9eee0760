"""The article's DCGAN: generator and discriminator (``groups`` > 1: that many independent models as one)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig, base_size
from ..errors import UsageError
from .grouped import GroupedLinear


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: weights from N(0, 0.02), BatchNorm scales from N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _widths(base: int, n: int) -> list[int]:
    """Channel widths of n blocks, doubling from ``base`` and capped at 8× ``base``."""
    return [base * min(2**i, 8) for i in range(n)]


class NearestUp2(nn.Module):
    """Nearest-neighbour upsampling ×2, as ``nn.Upsample(scale_factor=2, mode="nearest")`` gives it (the
    same values), by broadcasting: torch's CPU kernel took about 150 ms for a (32, 320, 16, 16) batch on
    2 cores, eight times this, and most of a per-class generator's forward pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


class UpBlock(nn.Module):
    """BatchNorm → upsample ×2 → 3×3 conv → ReLU (or BatchNorm → 4×4 transposed conv → ReLU).

    With ``groups`` > 1 it holds that many independent blocks side by side (grouped convolutions;
    BatchNorm is per channel, so per model).
    """

    def __init__(self, c_in: int, c_out: int, upsample: str, groups: int = 1) -> None:
        super().__init__()
        g = groups
        self.norm = nn.BatchNorm2d(g * c_in)
        if upsample == "transposed":
            self.up: nn.Module = nn.Identity()
            self.conv: nn.Module = nn.ConvTranspose2d(g * c_in, g * c_out, 4, stride=2, padding=1, groups=g)
        else:
            self.up = NearestUp2()
            self.conv = nn.Conv2d(g * c_in, g * c_out, 3, stride=1, padding=1, groups=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(self.up(self.norm(x))))  # (B, c_out, 2H, 2W)


class Generator(nn.Module):
    """DCGAN generator: linear from noise, reshape, up-blocks, final 3×3 conv and tanh.

    With ``config.num_classes > 0`` a learned class embedding is concatenated to the noise. With
    ``groups`` = G > 1 the module is G independent unconditional generators computed together
    (grouped convolutions): noise (B, G, z_dim) → images (B, G, C, H, W); every parameter is the
    concatenation along dim 0 of the G single generators' parameters (see :func:`pack_states`).

    Args:
        config: The model configuration.
        groups: Number of independent generators computed as one.
    """

    def __init__(self, config: ModelConfig, groups: int = 1) -> None:
        super().__init__()
        if groups > 1 and config.num_classes > 0:
            raise UsageError("grouped generators are unconditional: set num_classes=0")
        self.config, self.groups = config, groups
        self.start, n_up = base_size(config.image_size)
        widths = _widths(config.g_width, n_up + 1)[::-1]  # widest first
        self.c0 = widths[0]
        in_dim = config.z_dim
        self.embed: nn.Embedding | None = None
        if config.num_classes > 0:
            self.embed = nn.Embedding(config.num_classes, config.embed_dim)
            in_dim += config.embed_dim
        fc_out = self.c0 * self.start * self.start
        self.fc: nn.Module = nn.Linear(in_dim, fc_out) if groups == 1 else GroupedLinear(in_dim, fc_out, groups)
        self.blocks = nn.Sequential(*[UpBlock(widths[i], widths[i + 1], config.upsample, groups) for i in range(n_up)])
        self.to_image = nn.Conv2d(groups * widths[-1], groups * config.channels, 3, padding=1, groups=groups)
        self.apply(init_weights)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def z_shape(self) -> tuple[int, ...]:
        """Shape of one sample's noise: (z_dim,), or (groups, z_dim) for grouped generators."""
        return (self.config.z_dim,) if self.groups == 1 else (self.groups, self.config.z_dim)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Map noise (B, z_dim) and, if conditional, labels (B,) to images (B, C, H, W) in [-1, 1].

        Grouped: noise (B, G, z_dim) to images (B, G, C, H, W), model g fed only by ``z[:, g]``.
        """
        if self.embed is not None:
            if y is None:
                raise UsageError("this generator is class-conditional: pass labels y")
            z = torch.cat([z, self.embed(y)], dim=1)  # (B, z_dim + embed_dim)
        g = self.groups
        h = self.fc(z).reshape(-1, g * self.c0, self.start, self.start)  # (B, G·C0, s, s)
        x = torch.tanh(self.to_image(self.blocks(h)))  # (B, G·C, H, W)
        return x if g == 1 else x.unflatten(1, (g, self.config.channels))  # (B, G, C, H, W)


class DownBlock(nn.Module):
    """Strided 3×3 conv → LeakyReLU(0.2) → dropout → BatchNorm (BatchNorm optional); ``groups`` side by side."""

    def __init__(self, c_in: int, c_out: int, dropout: float, norm: bool, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(groups * c_in, groups * c_out, 3, stride=2, padding=1, groups=groups)
        self.drop = nn.Dropout(dropout)
        self.norm: nn.Module = nn.BatchNorm2d(groups * c_out) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.drop(F.leaky_relu(self.conv(x), 0.2)))  # (B, c_out, ceil(H/2), ...)


class Discriminator(nn.Module):
    """DCGAN discriminator returning one logit per image (the loss applies the sigmoid).

    Blocks halve the resolution until it is at most 4×4. With ``config.num_classes > 0`` it is a
    projection discriminator (Miyato & Koyama 2018): the logit adds the inner product of a class
    embedding with the flattened features; a label of -1 (an unlabeled real image) adds nothing.
    With ``groups`` = G > 1 it is G independent unconditional discriminators computed together:
    images (B, G, C, H, W) → logits (B, G), model g seeing only ``x[:, g]``.

    Args:
        config: The model configuration.
        groups: Number of independent discriminators computed as one.
    """

    def __init__(self, config: ModelConfig, groups: int = 1) -> None:
        super().__init__()
        if groups > 1 and config.num_classes > 0:
            raise UsageError("grouped discriminators are unconditional: set num_classes=0")
        self.config, self.groups = config, groups
        n_blocks, size = 0, config.image_size
        while size > 4:
            size = (size + 1) // 2
            n_blocks += 1
        widths = _widths(config.d_width, n_blocks)
        ins = [config.channels] + widths[:-1]
        self.blocks = nn.ModuleList(
            [
                DownBlock(ins[i], widths[i], config.d_dropout, i > 0 and config.batch_norm_in_d, groups)
                for i in range(n_blocks)
            ]
        )
        self.feature_dim = widths[-1] * size * size
        self.head: nn.Module = (
            nn.Linear(self.feature_dim, 1) if groups == 1 else GroupedLinear(self.feature_dim, 1, groups)
        )
        self.embed: nn.Embedding | None = None
        if config.num_classes > 0:
            self.embed = nn.Embedding(config.num_classes, self.feature_dim)
        self.apply(init_weights)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return every block's feature map, first block first: [(B, C_i, H_i, W_i), ...]."""
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return maps

    def forward_head(self, h: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Map the last feature map (B, C, h, w) and optional labels (B,) to logits (B,)."""
        h = h.flatten(1)  # (B, F)
        logit = self.head(h).squeeze(1)  # (B,)
        if self.embed is not None and y is not None:
            known = y >= 0
            proj = (self.embed(y.clamp(min=0)) * h).sum(1)  # (B,)
            logit = logit + torch.where(known, proj, torch.zeros_like(proj))
        return logit

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Map images (B, C, H, W) in [-1, 1] and optional labels (B,) to logits (B,).

        Grouped: images (B, G, C, H, W) to logits (B, G).
        """
        if self.groups == 1:
            return self.forward_head(self.forward_features(x)[-1], y)
        h = self.forward_features(x.flatten(1, 2))[-1]  # (B, G·C', h, w)
        return self.head(h.reshape(h.shape[0], self.groups, -1)).squeeze(2)  # (B, G)
