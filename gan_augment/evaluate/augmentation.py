"""The classic augmentation every arm's classifier gets: reflect-pad, random crop, flip; per image with
albumentations (in loader workers) or per batch on the training device, pixel for pixel the same."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, get_worker_info

from ..io.images import to_chw_uint8, to_hwc_numpy


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
