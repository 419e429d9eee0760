"""``SyntheticSwap``: a label-aware torchvision v2 transform that swaps in a synthetic image of the same class."""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..io.images import to_raw
from .bank import SyntheticBank, map_classes


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
        classes: Class names of the dataset, in label order, to map the generator's classes by
            name; default: the generator's own order.
        class_mapping: ``{generator class name: label}``, instead of ``classes``.
        bank_per_class: Synthetic images kept per class.
        device: Where the generator runs at construction (default CUDA when available).
        seed: Seed of the bank.
    """

    def __init__(
        self,
        generator_ckpt: str | os.PathLike[str],
        p: float = 0.5,
        classes: list[str] | None = None,
        class_mapping: Mapping[str, int] | None = None,
        bank_per_class: int = 256,
        device: str | torch.device | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p={p} must be in [0, 1]")
        if bank_per_class < 1:
            raise ValueError(f"bank_per_class={bank_per_class} must be >= 1")
        self.generator_ckpt = str(generator_ckpt)
        self.p = p
        self.bank_per_class = bank_per_class
        self.seed = seed
        bank = SyntheticBank(generator_ckpt, device=device)
        names = bank.info.class_names
        mapping = map_classes(names, classes if classes is not None else names, class_mapping)
        images, gen_labels = bank.generate({k: bank_per_class for k in sorted(mapping)}, seed)
        self.images = images  # (K * bank_per_class, C, H, W) uint8
        labels = torch.tensor([mapping[int(c)] for c in gen_labels], dtype=torch.int64)
        self._rows = {int(lab): (labels == lab).nonzero(as_tuple=True)[0] for lab in labels.unique()}

    def forward(self, *inputs: Any) -> Any:
        # Like torchvision's MixUp/CutMix, this transform needs the label, so it takes the sample
        # whole instead of leaf by leaf.
        sample = inputs if len(inputs) > 1 else inputs[0]
        if not (isinstance(sample, (tuple, list)) and len(sample) == 2):
            raise ValueError("SyntheticSwap takes (image, label): use it on a dataset's sample, not on images alone")
        image, label = sample
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
