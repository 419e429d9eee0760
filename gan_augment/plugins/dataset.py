"""``GANAugmentedDataset``: an existing labeled dataset with synthetic samples of the right classes mixed in."""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from ..io.images import RawForm, raw_form_of, to_raw
from .bank import SyntheticBank, dataset_classes, dataset_targets, map_classes

PipelineKind = Literal["auto", "torchvision", "albumentations"]


def is_albumentations(transform: Any) -> bool:
    """Whether ``transform`` is an albumentations transform or Compose (called as ``t(image=...)``)."""
    return type(transform).__module__.split(".")[0] == "albumentations"


def apply_transform(transform: Callable[..., Any] | None, image: Any, kind: PipelineKind) -> Any:
    """Apply a torchvision-style (``t(img)``) or albumentations-style (``t(image=arr)["image"]``) transform."""
    if transform is None:
        return image
    if kind == "albumentations" or (kind == "auto" and is_albumentations(transform)):
        if not isinstance(image, np.ndarray):
            image = np.asarray(image)
        return transform(image=image)["image"]
    return transform(image)


def _image_size(x: Any) -> tuple[int, int] | None:
    """(H, W) of a PIL image, HWC array or CHW tensor; None if unknown."""
    if isinstance(x, Image.Image):
        return (x.height, x.width)
    if isinstance(x, np.ndarray) and x.ndim in (2, 3):
        return (int(x.shape[0]), int(x.shape[1]))
    if isinstance(x, torch.Tensor) and x.ndim == 3:
        return (int(x.shape[1]), int(x.shape[2]))
    return None


def _check_sizing(synthetic_ratio: float | None, per_class: int | None, balance: bool) -> None:
    if sum([synthetic_ratio is not None, per_class is not None, balance]) != 1:
        raise ValueError("pass exactly one of synthetic_ratio, per_class or balance=True")
    if synthetic_ratio is not None and not 0 <= synthetic_ratio < 1:
        raise ValueError(f"synthetic_ratio={synthetic_ratio} must be in [0, 1)")
    if per_class is not None and per_class < 0:
        raise ValueError(f"per_class={per_class} must be >= 0")


def synthetic_counts(
    targets: Sequence[int],
    ckpt_to_base: Mapping[int, int],
    synthetic_ratio: float | None,
    per_class: int | None,
    balance: bool,
) -> dict[int, int]:
    """Synthetic images per generator class: up to the largest class (``balance``), ``per_class`` each,
    or ``synthetic_ratio`` of the mixed dataset split as evenly as possible over the classes."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=max(ckpt_to_base.values(), default=0) + 1)
    gen_classes = sorted(ckpt_to_base)
    if balance:
        top = int(counts.max()) if len(counts) else 0
        return {k: top - int(counts[ckpt_to_base[k]]) for k in gen_classes}
    if per_class is not None:
        return {k: per_class for k in gen_classes}
    assert synthetic_ratio is not None
    total = int(round(synthetic_ratio * len(targets) / (1 - synthetic_ratio)))
    share, extra = divmod(total, max(1, len(gen_classes)))
    return {k: share + (1 if i < extra else 0) for i, k in enumerate(gen_classes)}


class GANAugmentedDataset(Dataset):
    """A labeled dataset with synthetic samples from a ``gan-augment fit`` run mixed in.

    Items ``0 .. n_real-1`` are the base dataset's; the rest are synthetic images generated at
    construction (in batches, on ``device``) into a bank of uint8 images, so DataLoader workers
    never run the generator. Synthetic images come in the same raw form as the base samples (PIL
    images for torchvision image datasets), and ``transform`` / ``target_transform`` are applied to
    real and synthetic items alike. Construct the base dataset *without* a transform. Synthetic
    images are resized (bilinear, antialiased) to the size of the base dataset's first sample.

    Args:
        base_ds: Map-style dataset returning ``(image, label)``: ``ImageFolder``, ``CIFAR10``,
            ``MNIST``, a ``Subset`` of one, or your own.
        generator_ckpt: Run directory or ``checkpoint.pt`` of a per-class or conditional run.
        synthetic_ratio: Fraction of synthetic items in the mixed dataset, in [0, 1); split as evenly
            as possible over ``classes``.
        per_class: Synthetic images per class (instead of ``synthetic_ratio``).
        balance: Bring every class up to the largest class's count (instead of the two above).
        classes: Only these classes (names) get synthetic images; default all that map.
        class_mapping: ``{generator class name: base label}``; default: match ``base_ds.classes``
            by name.
        transform: Applied to every image (torchvision v2 pipeline, any callable, or an
            albumentations ``Compose``).
        target_transform: Applied to every label.
        pipeline: ``auto`` (detect albumentations), ``torchvision`` or ``albumentations``.
        output_format: Raw form of synthetic images: ``auto`` (like ``base_ds[0]``), ``pil``,
            ``numpy`` (uint8 HWC), ``tensor`` (uint8 CHW) or ``float`` (CHW in [0, 1]).
        filter_top: Keep only the top fraction of candidates by discriminator score (None: off).
        device: Where the generator runs (default CUDA when available).
        seed: Seed of the synthetic samples; the same seed gives the same samples.
        batch_size: Images per generator forward pass.
    """

    def __init__(
        self,
        base_ds: Dataset,
        generator_ckpt: str | os.PathLike[str],
        synthetic_ratio: float | None = None,
        per_class: int | None = None,
        balance: bool = False,
        classes: Sequence[str] | None = None,
        class_mapping: Mapping[str, int] | None = None,
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
        pipeline: PipelineKind = "auto",
        output_format: Literal["auto", "pil", "numpy", "tensor", "float"] = "auto",
        filter_top: float | None = None,
        device: str | torch.device | None = None,
        seed: int = 0,
        batch_size: int = 1024,
    ) -> None:
        _check_sizing(synthetic_ratio, per_class, balance)
        if pipeline not in ("auto", "torchvision", "albumentations"):
            raise ValueError(f"pipeline={pipeline!r} is not one of auto, torchvision, albumentations")
        if getattr(base_ds, "transform", None) is not None:
            warnings.warn(
                "base_ds has its own transform, which synthetic samples do not get: build it without one "
                "and pass transform= to GANAugmentedDataset",
                stacklevel=2,
            )
        self.base_ds = base_ds
        self.generator_ckpt = str(generator_ckpt)
        self.transform = transform
        self.target_transform = target_transform
        self.pipeline = pipeline
        self.seed = seed

        self._bank = SyntheticBank(generator_ckpt, device=device, batch_size=batch_size, filter_top=filter_top)
        info = self._bank.info
        base_classes = dataset_classes(base_ds)
        self.ckpt_to_base = map_classes(info.class_names, base_classes, class_mapping)
        self.class_names = base_classes or [str(i) for i in sorted(self.ckpt_to_base.values())]
        if classes is not None:
            unknown = [c for c in classes if c not in info.class_names]
            if unknown:
                raise ValueError(f"classes {unknown} are not classes of the generator ({info.class_names})")
            self.ckpt_to_base = {k: v for k, v in self.ckpt_to_base.items() if info.class_names[k] in classes}

        targets = dataset_targets(base_ds)
        self.n_real = len(targets)
        self.counts = synthetic_counts(targets, self.ckpt_to_base, synthetic_ratio, per_class, balance)

        first = base_ds[0][0] if self.n_real else None
        if output_format == "auto":
            self.raw_form: RawForm = raw_form_of(first) if first is not None else "pil"
        else:
            self.raw_form = output_format
        self._pil_mode = getattr(first, "mode", None) if self.raw_form == "pil" else None
        # Synthetic images take the size of the base samples (when the first one tells it).
        self._raw_size = _image_size(first)
        self.resample(seed)

    def resample(self, seed: int | None = None) -> None:
        """Draw a fresh bank of synthetic images (same counts); call it each epoch for new samples."""
        self._ensure_bank()
        if seed is not None:
            self.seed = seed
        images, gen_labels = self._bank.generate(self.counts, self.seed)
        if self._raw_size is not None and len(images) and tuple(images.shape[-2:]) != self._raw_size:
            images = F.interpolate(images.float(), size=self._raw_size, mode="bilinear", antialias=True)
            images = images.round().clamp(0, 255).to(torch.uint8)
        self.synthetic_images = images  # (S, C, H, W) uint8
        self.synthetic_targets = torch.tensor([self.ckpt_to_base[int(c)] for c in gen_labels], dtype=torch.int64)

    def __len__(self) -> int:
        return self.n_real + len(self.synthetic_targets)

    def is_synthetic(self, index: int) -> bool:
        """Whether item ``index`` is synthetic."""
        if index < 0:
            index += len(self)
        return index >= self.n_real

    @property
    def synthetic_mask(self) -> torch.Tensor:
        """Boolean (len(self),): True where the item is synthetic."""
        mask = torch.zeros(len(self), dtype=torch.bool)
        mask[self.n_real :] = True
        return mask

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} items")
        if index < self.n_real:
            image, target = self.base_ds[index]
        else:
            j = index - self.n_real
            image = to_raw(self.synthetic_images[j], self.raw_form, self._pil_mode)
            target = int(self.synthetic_targets[j])
        image = apply_transform(self.transform, image, self.pipeline)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_bank"] = None  # workers get the generated images, never the generator
        return state

    def _ensure_bank(self) -> None:
        if self._bank is None:
            raise RuntimeError("this copy was unpickled without its generator: resample in the main process")

    def __repr__(self) -> str:
        per_class_real = np.bincount(
            np.asarray(dataset_targets(self.base_ds), dtype=np.int64), minlength=len(self.class_names)
        )
        per_class_syn = torch.bincount(self.synthetic_targets, minlength=len(self.class_names)).tolist()
        lines = [
            f"Dataset {type(self).__name__}",
            f"    Number of datapoints: {len(self)}",
            f"    Real: {self.n_real}, synthetic: {len(self.synthetic_targets)}",
            f"    Generator: {self.generator_ckpt}",
            "    Per class (real + synthetic): "
            + ", ".join(f"{n}: {r} + {s}" for n, r, s in zip(self.class_names, per_class_real.tolist(), per_class_syn)),
        ]
        if self.transform is not None:
            lines.append(f"    Transform: {self.transform!r}".replace("\n", "\n    "))
        if self.target_transform is not None:
            lines.append(f"    Target transform: {self.target_transform!r}")
        return "\n".join(lines)
