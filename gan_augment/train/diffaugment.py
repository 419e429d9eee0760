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
    b, c, h, w = x.shape
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=dev, generator=generator, dtype=x.dtype)

    # Colour: brightness, then saturation (RGB only), then contrast.
    x = x + (rand(b, 1, 1, 1) - 0.5)
    if c == 3:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (rand(b, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (rand(b, 1, 1, 1) + 0.5) + mean

    # Translation with zero padding: shift each image by up to ``translation`` of its side.
    sh, sw = int(h * translation + 0.5), int(w * translation + 0.5)
    if sh or sw:
        dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=dev, generator=generator)
        dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=dev, generator=generator)
        ys = (torch.arange(h, device=dev).view(1, h, 1) + dy + 1).clamp(0, h + 1)  # (B, H, 1)
        xs = (torch.arange(w, device=dev).view(1, 1, w) + dx + 1).clamp(0, w + 1)  # (B, 1, W)
        padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # (B, H+2, W+2, C)
        bi = torch.arange(b, device=dev).view(b, 1, 1)
        x = padded[bi, ys, xs].permute(0, 3, 1, 2)  # (B, C, H, W)

    # Cutout: zero one square per image, its centre anywhere in the image.
    ch, cw = int(h * cutout + 0.5), int(w * cutout + 0.5)
    if ch and cw:
        cy = torch.randint(0, h, (b, 1, 1), device=dev, generator=generator)
        cx = torch.randint(0, w, (b, 1, 1), device=dev, generator=generator)
        gy = torch.arange(h, device=dev).view(1, h, 1)
        gx = torch.arange(w, device=dev).view(1, 1, w)
        top, left = cy - ch // 2, cx - cw // 2
        inside = (gy >= top) & (gy < top + ch) & (gx >= left) & (gx < left + cw)  # (B, H, W)
        x = x * (~inside).unsqueeze(1).to(x.dtype)
    return x
