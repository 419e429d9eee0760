"""The one accuracy helper: top-1 accuracy of a classifier on uint8 images, scaled as training scales them."""

from __future__ import annotations

import torch
from torch import nn

from ..io.images import to_unit


@torch.no_grad()
def predict_logits(
    model: nn.Module, images: torch.Tensor, device: torch.device | str | None = None, batch: int = 1024
) -> torch.Tensor:
    """The logits (N, K) of ``model`` (in the mode the caller left it) on uint8 images (N, C, H, W), on the
    CPU. ``device``: where to run (default: the model's). The images go to [-1, 1] (``to_unit``), as
    every classifier of the package is trained."""
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    return torch.cat(
        [model(to_unit(images[i : i + batch].to(dev))).float().cpu() for i in range(0, len(images), batch)]
    )


def accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device | str | None = None,
    batch: int = 1024,
) -> float | None:
    """Top-1 accuracy of ``model`` (in the mode the caller left it, eval for scoring) on uint8 images
    (N, C, H, W) with integer ``labels``; None without images (no accuracy, rather than a made-up 0).
    Run as :func:`predict_logits` runs it."""
    if not len(images):
        return None
    predictions = predict_logits(model, images, device, batch).argmax(1)
    return int((predictions == labels.cpu()).sum()) / len(images)
