"""``SyntheticSwap``: a label-aware torchvision v2 transform that swaps in a synthetic image of the same class."""

from __future__ import annotations

import os
import warnings
from typing import Any, Mapping

import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..errors import UsageError
from ..io.images import match_images, raw_channels, raw_size, to_raw
from .bank import SyntheticBank, dataset_classes, map_classes


class SyntheticSwap(v2.Transform):
    """Replace an ``(image, label)`` sample's image, with probability ``p``, by a synthetic one of that class.

    A bank of ``bank_per_class`` synthetic images per class is generated at construction (batched,
    on ``device``) and kept on the CPU, so the transform pickles and runs in DataLoader workers
    without a generator. The synthetic image takes the input's form (PIL image, uint8 or float
    tensor, ``tv_tensors.Image``) and size is left to later transforms: put ``SyntheticSwap``
    first in the pipeline. Labels without a synthetic class pass unchanged.

    Args:
        generator_ckpt: Run directory or ``checkpoint.pt`` of a per-class or conditional run.
        p: Probability of a swap, in [0, 1].
        classes: The dataset (anything with ``classes``, also through ``Subset``), or its class
            names in label order: the generator's classes are matched to them by name. Without
            it the generator's own order is assumed, with a warning (a stray or missing class
            folder would shift every label).
        class_mapping: ``{generator class name: label}``, instead of ``classes``.
        bank_per_class: Synthetic images kept per class.
        device: Where the generator runs at construction (default CUDA when available).
        seed: Seed of the bank.
    """

    def __init__(
        self,
        generator_ckpt: str | os.PathLike[str],
        p: float = 0.5,
        classes: Any = None,
        class_mapping: Mapping[str, int] | None = None,
        bank_per_class: int = 256,
        device: str | torch.device | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise UsageError(f"p={p} must be in [0, 1]")
        if bank_per_class < 1:
            raise UsageError(f"bank_per_class={bank_per_class} must be >= 1")
        self.generator_ckpt = str(generator_ckpt)
        self.p = p
        self.bank_per_class = bank_per_class
        self.seed = seed
        bank = SyntheticBank(generator_ckpt, device=device)
        names = bank.info.class_names
        if classes is not None and not isinstance(classes, (list, tuple)):
            classes = dataset_classes(classes)
            if classes is None:
                raise UsageError("classes has no `classes` attribute: pass the dataset's class names, in label order")
        if classes is None and class_mapping is None:
            warnings.warn(
                f"SyntheticSwap assumes the dataset's labels follow the generator's classes {names}: pass "
                "classes=dataset (or its class names) to match them by name",
                stacklevel=2,
            )
        mapping = map_classes(names, classes if classes is not None else names, class_mapping)
        images, gen_labels = bank.generate({k: bank_per_class for k in sorted(mapping)}, seed)
        self.images = images  # (K * bank_per_class, C, H, W) uint8
        labels = torch.tensor([mapping[int(c)] for c in gen_labels], dtype=torch.int64)
        self._rows = {int(lab): (labels == lab).nonzero(as_tuple=True)[0] for lab in labels.unique()}

    def forward(self, *inputs: Any) -> Any:
        # Like torchvision's MixUp/CutMix, this transform needs the label, so it takes the sample
        # whole instead of leaf by leaf: (image, label), or a dict with an image and a label.
        sample = inputs if len(inputs) > 1 else inputs[0]
        if isinstance(sample, Mapping):
            image_key = next((k for k in ("image", "img") if k in sample), None)
            label_key = next((k for k in ("label", "labels", "target", "targets") if k in sample), None)
            if image_key is None or label_key is None:
                raise UsageError(
                    f"SyntheticSwap needs an image and a label in a dict sample; got keys {sorted(map(str, sample))}"
                )
            image, label = self._swap(sample[image_key], sample[label_key])
            return {**sample, image_key: image, label_key: label}
        if not (isinstance(sample, (tuple, list)) and len(sample) == 2):
            raise UsageError("SyntheticSwap takes (image, label): use it on a dataset's sample, not on images alone")
        return self._swap(*sample)

    def _swap(self, image: Any, label: Any) -> tuple[Any, Any]:
        if (isinstance(label, torch.Tensor) and label.numel() != 1) or getattr(image, "ndim", 3) > 3:
            raise UsageError(
                "SyntheticSwap works on one sample, not a batch: put it in the dataset's transform (before "
                "the DataLoader), not after it"
            )
        lab = int(label)
        rows = self._rows.get(lab)
        # All random choices of a call, drawn in one place.
        swap = self.p > 0 and rows is not None and (self.p >= 1 or torch.rand(()).item() < self.p)
        if not swap:
            return image, label
        assert rows is not None
        pick = int(rows[torch.randint(len(rows), ())])
        return self._like(self.images[pick], image), label

    @staticmethod
    def _like(img: torch.Tensor, ref: Any) -> Any:
        """``img`` in the form, size and channels of ``ref``, the image it replaces (as
        ``GANAugmentedDataset`` gives its synthetic items), so the rest of the pipeline sees no difference."""
        channels, plain = raw_channels(ref)
        if isinstance(ref, Image.Image):
            channels = 1 if ref.mode in ("L", "1", "I", "F", "I;16") else 3
        if channels not in (None, 1, 3):
            raise UsageError(f"SyntheticSwap can give images of 1 or 3 channels, not {channels}: convert the images")
        img = match_images(img[None], raw_size(ref), channels)[0]
        if plain:  # a plain (H, W) item
            return _plain(img, ref)
        if isinstance(ref, Image.Image):
            return to_raw(img, "pil", ref.mode)
        if isinstance(ref, tv_tensors.Image):
            return tv_tensors.Image(img.clone() if ref.dtype == torch.uint8 else img.float().div(255))
        if isinstance(ref, torch.Tensor):
            return img.clone() if ref.dtype == torch.uint8 else img.float().div(255)
        return to_raw(img, "numpy")

    def extra_repr(self) -> str:
        settings = (f"p={self.p}", f"bank_per_class={self.bank_per_class}", f"seed={self.seed}")
        return f"generator_ckpt={self.generator_ckpt!r}, " + ", ".join(settings)


def _plain(img: torch.Tensor, ref: Any) -> Any:
    """A one-channel (1, H, W) uint8 image in the plain (H, W) form of ``ref`` (tensor or array)."""
    if isinstance(ref, torch.Tensor):
        return img[0].clone() if ref.dtype == torch.uint8 else img[0].float().div(255)
    return img[0].numpy().copy()
