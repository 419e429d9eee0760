"""The article's DCGAN: generator, discriminator, and a bank of per-class generators."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig, base_size


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


class UpBlock(nn.Module):
    """BatchNorm → upsample ×2 → 3×3 conv → ReLU (or BatchNorm → 4×4 transposed conv → ReLU)."""

    def __init__(self, c_in: int, c_out: int, upsample: str) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(c_in)
        if upsample == "transposed":
            self.up: nn.Module = nn.Identity()
            self.conv: nn.Module = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
        else:
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.conv = nn.Conv2d(c_in, c_out, 3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(self.up(self.norm(x))))  # (B, c_out, 2H, 2W)


class Generator(nn.Module):
    """DCGAN generator: linear from noise, reshape, up-blocks, final 3×3 conv and tanh.

    With ``config.num_classes > 0`` a learned class embedding is concatenated to the noise.

    Args:
        config: The model configuration.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.start, n_up = base_size(config.image_size)
        widths = _widths(config.g_width, n_up + 1)[::-1]  # widest first
        self.c0 = widths[0]
        in_dim = config.z_dim
        self.embed: nn.Embedding | None = None
        if config.num_classes > 0:
            self.embed = nn.Embedding(config.num_classes, config.embed_dim)
            in_dim += config.embed_dim
        self.fc = nn.Linear(in_dim, self.c0 * self.start * self.start)
        self.blocks = nn.Sequential(
            *[UpBlock(widths[i], widths[i + 1], config.upsample) for i in range(n_up)]
        )
        self.to_image = nn.Conv2d(widths[-1], config.channels, 3, padding=1)
        self.apply(init_weights)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Map noise (B, z_dim) and, if conditional, labels (B,) to images (B, C, H, W) in [-1, 1]."""
        if self.embed is not None:
            if y is None:
                raise ValueError("this generator is class-conditional: pass labels y")
            z = torch.cat([z, self.embed(y)], dim=1)  # (B, z_dim + embed_dim)
        h = self.fc(z).view(-1, self.c0, self.start, self.start)  # (B, C0, s, s)
        return torch.tanh(self.to_image(self.blocks(h)))  # (B, C, H, W)


class DownBlock(nn.Module):
    """Strided 3×3 conv → LeakyReLU(0.2) → dropout → BatchNorm (BatchNorm optional)."""

    def __init__(self, c_in: int, c_out: int, dropout: float, norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        self.drop = nn.Dropout(dropout)
        self.norm: nn.Module = nn.BatchNorm2d(c_out) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.drop(F.leaky_relu(self.conv(x), 0.2)))  # (B, c_out, ceil(H/2), ...)


class Discriminator(nn.Module):
    """DCGAN discriminator returning one logit per image (the loss applies the sigmoid).

    Blocks halve the resolution until it is at most 4×4. With ``config.num_classes > 0`` it is a
    projection discriminator (Miyato & Koyama 2018): the logit adds the inner product of a class
    embedding with the flattened features; a label of -1 (an unlabeled real image) adds nothing.

    Args:
        config: The model configuration.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        n_blocks, size = 0, config.image_size
        while size > 4:
            size = (size + 1) // 2
            n_blocks += 1
        widths = _widths(config.d_width, n_blocks)
        ins = [config.channels] + widths[:-1]
        self.blocks = nn.ModuleList(
            [
                DownBlock(ins[i], widths[i], config.d_dropout, i > 0 and config.d_norm == "batch")
                for i in range(n_blocks)
            ]
        )
        self.feature_dim = widths[-1] * size * size
        self.head = nn.Linear(self.feature_dim, 1)
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
        """Map images (B, C, H, W) in [-1, 1] and optional labels (B,) to logits (B,)."""
        return self.forward_head(self.forward_features(x)[-1], y)


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
