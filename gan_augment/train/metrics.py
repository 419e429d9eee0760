"""The one accuracy helper: top-1 accuracy of a classifier on uint8 images, scaled as training scales them."""

from __future__ import annotations

import torch
from torch import nn

from ..io.images import to_unit


@torch.no_grad()
def accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device | str | None = None,
    batch: int = 1024,
) -> float | None:
    """Top-1 accuracy of ``model`` (in the mode the caller left it, eval for scoring) on uint8 images
    (N, C, H, W) with integer ``labels``; None without images (no accuracy, rather than a made-up 0).

    ``device``: where to run (default: the model's). The images go to [-1, 1] (``to_unit``), as
    every classifier of the package is trained.
    """
    if not len(images):
        return None
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    correct = 0
    for i in range(0, len(images), batch):
        x = to_unit(images[i : i + batch].to(dev))
        correct += int((model(x).argmax(1).cpu() == labels[i : i + batch].cpu()).sum())
    return correct / len(images)
