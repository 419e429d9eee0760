"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) applied on the device to real and fake images."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def diff_augment(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    translation: float = 0.125,
    cutout: float = 0.5,
) -> torch.Tensor:
    """Colour, translation and cutout, differentiable with respect to ``x``.

    The same policy is applied to real and fake images before the discriminator, so D cannot
    tell them apart by the augmentation and G's gradients flow through it.

    Args:
        x: Images (B, C, H, W) in [-1, 1].
        generator: Source of the random choices (for reproducible runs).
        translation: Largest shift, as a fraction of the image side.
        cutout: Side of the zeroed square, as a fraction of the image side.

    Returns:
        Augmented images of the same shape.
    """
    x = _colour(x, generator)
    x = _translate(x, generator, translation)
    return _cutout(x, generator, cutout)


def _colour(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Brightness, then saturation (RGB only), then contrast, each drawn per image."""
    b, c = x.shape[:2]

    def rand() -> torch.Tensor:
        return torch.rand(b, 1, 1, 1, device=x.device, generator=generator, dtype=x.dtype)

    x = x + (rand() - 0.5)
    if c == 3:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (rand() * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (rand() + 0.5) + mean


def _translate(x: torch.Tensor, generator: torch.Generator | None, translation: float) -> torch.Tensor:
    """Each image shifted by up to ``translation`` of its side, with zero padding."""
    b, _, h, w = x.shape
    dev = x.device
    sh, sw = int(h * translation + 0.5), int(w * translation + 0.5)
    if not (sh or sw):
        return x
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=dev, generator=generator)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=dev, generator=generator)
    ys = (torch.arange(h, device=dev).view(1, h, 1) + dy + 1).clamp(0, h + 1)  # (B, H, 1)
    xs = (torch.arange(w, device=dev).view(1, 1, w) + dx + 1).clamp(0, w + 1)  # (B, 1, W)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # (B, H+2, W+2, C)
    bi = torch.arange(b, device=dev).view(b, 1, 1)
    return padded[bi, ys, xs].permute(0, 3, 1, 2)  # (B, C, H, W)


def _cutout(x: torch.Tensor, generator: torch.Generator | None, cutout: float) -> torch.Tensor:
    """One square of ``cutout`` of the side zeroed per image, its centre anywhere in the image."""
    b, _, h, w = x.shape
    dev = x.device
    ch, cw = int(h * cutout + 0.5), int(w * cutout + 0.5)
    if not (ch and cw):
        return x
    cy = torch.randint(0, h, (b, 1, 1), device=dev, generator=generator)
    cx = torch.randint(0, w, (b, 1, 1), device=dev, generator=generator)
    gy = torch.arange(h, device=dev).view(1, h, 1)
    gx = torch.arange(w, device=dev).view(1, 1, w)
    top, left = cy - ch // 2, cx - cw // 2
    inside = (gy >= top) & (gy < top + ch) & (gx >= left) & (gx < left + cw)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)
