"""The semi-supervised GAN's networks (Salimans et al. 2016): the discriminator with K class outputs is the
classifier, the fake class implicit. Weight normalisation with data-dependent initialisation, no BatchNorm
in the discriminator (its labeled, unlabeled and fake batches must not share statistics)."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import UsageError
from .dcgan import Generator

_INIT = {"on": False}  # data-dependent initialisation in progress (see ``data_dependent_init``)

MLP_HIDDEN = (1000, 500, 250, 250, 250)  # the paper's MNIST discriminator
MLP_NOISE = (0.3, 0.5)  # Gaussian noise on its input (of pixels in [0, 1]) and after each hidden layer


class _WeightNorm(nn.Module):
    """Weight normalisation (Salimans & Kingma 2016): w = scale · v / ‖v‖ per output unit, plus a bias.

    In :func:`data_dependent_init` the layer sets ``scale`` and ``bias`` so that its outputs on the
    batch have zero mean and unit variance per unit, then returns those normalised outputs.
    """

    def __init__(self, v: torch.Tensor, train_scale: bool) -> None:
        super().__init__()
        self.v = nn.Parameter(v)
        self.scale = nn.Parameter(torch.ones(v.shape[0]), requires_grad=train_scale)
        self.bias = nn.Parameter(torch.zeros(v.shape[0]))

    def weight(self) -> torch.Tensor:
        norm = self.v.flatten(1).norm(dim=1).clamp_min(1e-12)
        return self.v * (self.scale / norm).view(-1, *[1] * (self.v.ndim - 1))

    def _finish(self, pre: torch.Tensor, channel_dims: tuple[int, ...]) -> torch.Tensor:
        if not _INIT["on"]:
            shape = [1, -1] + [1] * (pre.ndim - 2)
            return pre + self.bias.view(shape)
        with torch.no_grad():
            mean = pre.mean(channel_dims)
            std = (pre - mean.view([1, -1] + [1] * (pre.ndim - 2))).pow(2).mean(channel_dims).sqrt().clamp_min(1e-8)
            self.scale.div_(std)
            self.bias.copy_(-mean / std)
            shape = [1, -1] + [1] * (pre.ndim - 2)
            return (pre - mean.view(shape)) / std.view(shape)


class WNLinear(_WeightNorm):
    """A weight-normalised linear layer (v from N(0, 0.1), as the paper's)."""

    def __init__(self, in_features: int, out_features: int, train_scale: bool = False) -> None:
        super().__init__(torch.randn(out_features, in_features) * 0.1, train_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._finish(F.linear(x, self.weight()), (0,))  # (B, out)


class WNConv2d(_WeightNorm):
    """A weight-normalised convolution (v from N(0, 0.05), as the paper's)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0, train_scale: bool = False
    ) -> None:
        super().__init__(torch.randn(c_out, c_in, kernel, kernel) * 0.05, train_scale)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._finish(F.conv2d(x, self.weight(), stride=self.stride, padding=self.padding), (0, 2, 3))


class GaussianNoise(nn.Module):
    """Adds N(0, sigma²) noise in training mode (the paper's regulariser of the MNIST discriminator)."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x) if self.training and self.sigma > 0 else x


@contextlib.contextmanager
def _init_mode() -> Iterator[None]:
    _INIT["on"] = True
    try:
        yield
    finally:
        _INIT["on"] = False


@torch.no_grad()
def data_dependent_init(model: nn.Module, x: torch.Tensor) -> None:
    """Initialise every weight-normalised layer of ``model`` from one batch ``x``, first layer first:
    each layer's pre-activations on the batch get zero mean and unit variance per unit."""
    was_training = model.training
    model.train()
    with _init_mode():
        model(x)
    model.train(was_training)


class SSLMLPDiscriminator(nn.Module):
    """The paper's MNIST discriminator: noise 0.3 on the pixels (in [0, 1]), five weight-normalised ReLU
    layers (1000, 500, 250, 250, 250) each followed by noise 0.5, and K class logits.

    Args:
        image_size: Side of the (square) images.
        channels: Their channels.
        classes: Number of classes K.
    """

    def __init__(self, image_size: int, channels: int, classes: int) -> None:
        super().__init__()
        self.image_size, self.channels = image_size, channels
        dims = (channels * image_size * image_size, *MLP_HIDDEN)
        self.input_noise = GaussianNoise(MLP_NOISE[0])
        self.hidden = nn.ModuleList([WNLinear(a, b) for a, b in zip(dims[:-1], dims[1:])])
        self.noise = nn.ModuleList([GaussianNoise(MLP_NOISE[1]) for _ in MLP_HIDDEN])
        self.head = WNLinear(MLP_HIDDEN[-1], classes, train_scale=True)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every hidden layer's output (B, F_i), first layer first (noise added after each, in training)."""
        h = self.input_noise((x.flatten(1) + 1) / 2)  # the paper's pixels are in [0, 1]
        out = []
        for layer, noise in zip(self.hidden, self.noise):
            h = F.relu(layer(h))
            out.append(h)
            h = noise(h)
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (B, 250): what feature matching compares."""
        return self.forward_features(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, K) of images (B, C, H, W) in [-1, 1]."""
        return self.head(self.noise[-1](self.features(x)))


class SSLConvDiscriminator(nn.Module):
    """The paper's CIFAR-10 discriminator: dropout 0.2 on the input; 3×3 weight-normalised convolutions
    (96, 96, 96 stride 2), dropout 0.5, (192, 192, 192 stride 2), dropout 0.5, a valid 3×3 (192), two NIN
    (1×1) layers, global average pooling and K class logits; LeakyReLU(0.2) throughout.

    Args:
        image_size: Side of the images it was built for (any of 12 px or more works).
        channels: Their channels.
        classes: Number of classes K.
        width: Channels of the first three convolutions (the paper's 96); the others have twice as many.
    """

    def __init__(self, image_size: int, channels: int, classes: int, width: int = 96) -> None:
        super().__init__()
        self.image_size, self.channels = image_size, channels  # any size of 12 px or more works
        w, w2 = width, 2 * width
        spec = [(channels, w, 1), (w, w, 1), (w, w, 2), (w, w2, 1), (w2, w2, 1), (w2, w2, 2)]
        self.convs = nn.ModuleList([WNConv2d(a, b, 3, s, 1) for a, b, s in spec])
        self.top = nn.ModuleList([WNConv2d(w2, w2, 3), WNConv2d(w2, w2, 1), WNConv2d(w2, w2, 1)])
        self.drop_in, self.drop = nn.Dropout(0.2), nn.Dropout(0.5)
        self.head = WNLinear(w2, classes, train_scale=True)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each convolution's map (B, C_i, H_i, W_i), then the pooled features (B, 2·width)."""
        h, maps = self.drop_in(x), []
        for i, conv in enumerate(self.convs):
            h = F.leaky_relu(conv(h), 0.2)
            maps.append(h)
            if i in (2, 5):
                h = self.drop(h)
        for conv in self.top:
            h = F.leaky_relu(conv(h), 0.2)
            maps.append(h)
        return [*maps, h.mean((2, 3))]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled features (B, 2·width): what feature matching compares."""
        return self.forward_features(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, K) of images (B, C, H, W) in [-1, 1]."""
        return self.head(self.features(x))


class SSLMLPGenerator(nn.Module):
    """The paper's MNIST generator: uniform noise → 500 → 500 (each linear, BatchNorm with a bias only,
    softplus) → a weight-normalised linear layer and a sigmoid, returned in [-1, 1]."""

    def __init__(self, z_dim: int, image_size: int, channels: int) -> None:
        super().__init__()
        self.z_dim, self.shape = z_dim, (channels, image_size, image_size)
        self.body = nn.Sequential(
            nn.Linear(z_dim, 500, bias=False),
            nn.BatchNorm1d(500),
            nn.Softplus(),
            nn.Linear(500, 500, bias=False),
            nn.BatchNorm1d(500),
            nn.Softplus(),
        )
        for m in self.body:
            if isinstance(m, nn.BatchNorm1d):
                m.weight.requires_grad_(False)  # the paper's BatchNorm has no scale
        self.out = WNLinear(500, channels * image_size * image_size, train_scale=True)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] from noise (B, z_dim) in [0, 1)."""
        return (torch.sigmoid(self.out(self.body(z))) * 2 - 1).view(-1, *self.shape)


class SSLGan(nn.Module):
    """The generator and the K-class discriminator of ``architecture`` (``mlp`` or ``conv``) for images
    of ``image_size`` and ``channels``; the ``conv`` generator is the package's DCGAN generator."""

    def __init__(
        self, architecture: str, image_size: int, channels: int, classes: int, z_dim: int = 100, width: int = 96
    ) -> None:
        super().__init__()
        self.architecture = architecture
        if architecture == "mlp":
            self.g: nn.Module = SSLMLPGenerator(z_dim, image_size, channels)
            self.d: nn.Module = SSLMLPDiscriminator(image_size, channels, classes)
        elif architecture == "conv":  # a DCGAN generator as wide as the discriminator's first layers
            g_width = max(8, width * 2 // 3)
            self.g = Generator(ModelConfig(image_size=image_size, channels=channels, z_dim=z_dim, g_width=g_width))
            self.d = SSLConvDiscriminator(image_size, channels, classes, width)
        else:
            raise UsageError(f"architecture={architecture!r} is not one of mlp, conv")

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generator input for n images: uniform (the paper's MLP) or normal (the DCGAN generator)."""
        dev = next(self.g.parameters()).device
        z_dim = self.g.z_dim if self.architecture == "mlp" else self.g.config.z_dim
        draw = torch.rand if self.architecture == "mlp" else torch.randn
        return draw(n, z_dim, device=dev, generator=generator)


def build_ssl_discriminator(
    architecture: str, image_size: int, channels: int, classes: int, width: int = 96
) -> nn.Module:
    """An untrained SSL discriminator (to load a saved state into)."""
    if architecture == "mlp":
        return SSLMLPDiscriminator(image_size, channels, classes)
    if architecture == "conv":
        return SSLConvDiscriminator(image_size, channels, classes, width)
    raise UsageError(f"architecture={architecture!r} is not one of mlp, conv")
