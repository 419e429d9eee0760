"""The classic augmentation every arm's classifier gets: reflect-pad, random crop, flip; per image with
albumentations (in loader workers) or per batch on the training device, pixel for pixel the same."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, get_worker_info

from ..errors import UsageError
from ..io.images import to_chw_uint8, to_hwc_numpy, to_unit


def classic_augmentation(image_size: int, flip: bool) -> Any:
    """The baseline's augmentation (albumentations): reflect-pad by 1/8, random crop, horizontal flip.

    :func:`device_augmentation` is the same augmentation done on a whole batch on the training device.
    """
    import albumentations as A
    import cv2
    from albumentations.pytorch import ToTensorV2

    pad = image_size + 2 * max(1, image_size // 8)
    return A.Compose(
        [
            A.PadIfNeeded(pad, pad, border_mode=cv2.BORDER_REFLECT_101),
            A.RandomCrop(image_size, image_size),
            A.HorizontalFlip(p=0.5 if flip else 0.0),
            A.Normalize(mean=0.5, std=0.5, max_pixel_value=255.0),
            ToTensorV2(),
        ]
    )


def crop_pad(image_size: int) -> int:
    """Padding on each side before the random crop: 1/8 of the image size (at least 1 pixel)."""
    return max(1, image_size // 8)


def crop_flip(
    padded: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flipped: torch.Tensor, size: int
) -> torch.Tensor:
    """Crop ``size``×``size`` windows at (``top``, ``left``) from each padded image (B, C, H', W'), mirrored
    where ``flipped``; one gather for the whole batch. Returns (B, C, size, size)."""
    b = padded.shape[0]
    dev = padded.device
    ar = torch.arange(size, device=dev)
    rows = top.to(dev)[:, None] + ar  # (B, size)
    cols = left.to(dev)[:, None] + torch.where(flipped.to(dev)[:, None], size - 1 - ar, ar)
    out = padded[
        torch.arange(b, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]
    ]  # (B, size, size, C)
    return out.permute(0, 3, 1, 2)


def device_augmentation(images: torch.Tensor, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """:func:`classic_augmentation` for a uint8 batch (B, C, H, W) on any device, in one pass.

    Reflect-pads by :func:`crop_pad` (OpenCV's BORDER_REFLECT_101, as the albumentations pipeline),
    crops a random window of the original size, flips half the images horizontally when ``flip``,
    and scales to [-1, 1]. Random draws come from ``generator`` (a CPU generator).
    """
    b, _, h, w = images.shape
    if h != w:
        raise UsageError(f"device augmentation needs square images, got {h}×{w}")
    pad = crop_pad(h)
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="reflect")
    top = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    flipped = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    return to_unit(crop_flip(padded, top, left, flipped, h))


class Augmented(Dataset):
    """A raw dataset with the albumentations pipeline applied to each item (the loader path)."""

    def __init__(self, dataset: Dataset, transform: Any) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        x, y = self.dataset[i]
        arr = to_hwc_numpy(to_chw_uint8(x))
        soft = isinstance(y, torch.Tensor) and y.ndim == 1  # a soft target (K,) stays a vector
        return self.transform(image=arr)["image"], y.float() if soft else int(y)


def seed_worker_augmentation(worker_id: int) -> None:
    """Give each loader worker's copy of the albumentations pipeline its own seed (from the loader's
    seeded generator), so workers neither repeat each other's draws nor differ between runs."""
    info = get_worker_info()
    if info is not None:
        info.dataset.transform.set_random_seed(info.seed % 2**32)
