"""The secondary classifier: a small ResNet for small images, or any torchvision classification model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError


def classifier_names() -> list[str]:
    """The accepted ``architecture`` values: ``small-resnet`` and torchvision's classification models."""
    import torchvision

    return ["small-resnet", *sorted(torchvision.models.list_models(module=torchvision.models))]


def check_classifier_name(architecture: str) -> None:
    """Raise ValueError (naming close matches) unless ``architecture`` is in :func:`classifier_names`."""
    names = classifier_names()
    if architecture not in names:
        close = [n for n in names if architecture.lower()[:4] in n][:6]
        hint = f" (did you mean {', '.join(close)}?)" if close else ": see torchvision.models.list_models()"
        raise UsageError(f"unknown classifier {architecture!r}: use small-resnet or a torchvision model name{hint}")


def build_classifier(architecture: str, channels: int, num_classes: int, width: int = 64) -> nn.Module:
    """An untrained classifier for (N, channels, H, W) images in [-1, 1] (no weights are downloaded).

    Raises:
        ValueError: ``architecture`` is neither ``small-resnet`` nor a torchvision classification model.
    """
    check_classifier_name(architecture)
    if architecture == "small-resnet":
        return SmallResNet(channels, num_classes, width)
    import torchvision

    model = torchvision.models.get_model(architecture, weights=None, num_classes=num_classes)
    if isinstance(model, torchvision.models.ResNet):
        # The CIFAR-style stem: 3×3 stride 1, no max-pool (a 7×7/2 stem + pool loses 32×32 images' detail).
        model.conv1 = nn.Conv2d(channels, model.conv1.out_channels, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif channels != 3:
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        if first.in_channels != 3:
            raise UsageError(f"classifier {architecture!r}: cannot adapt its first layer to {channels}-channel images")
        model = nn.Sequential(nn.Conv2d(channels, 3, 1), model)  # learnable channel lift for grayscale input
    return model


class _Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class SmallResNet(nn.Module):
    """A ResNet for small images: stem, three stages (conv → BN → ReLU → max-pool → residual block), linear head."""

    def __init__(self, channels: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width]
        layers: list[nn.Module] = [
            nn.Conv2d(channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        c_in = width
        for c in widths:
            layers += [
                nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
                _Residual(c),
            ]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))  # (B, K)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's map (B, C_i, H_i, W_i), then the pooled features (B, 4·width): as the SSL
        discriminators give theirs (a self-trained teacher's features)."""
        maps, h = [], x
        for layer in self.features:
            h = layer(h)
            if isinstance(layer, _Residual):
                maps.append(h)
        return [*maps, F.adaptive_avg_pool2d(h, 1).flatten(1)]
