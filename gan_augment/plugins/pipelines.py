"""Transform pipelines that ``GANAugmentedDataset`` applies: torchvision-style or albumentations-style."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Literal

import numpy as np

from ..errors import UsageError

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


def check_pipeline(base_ds: Any, pipeline: str) -> None:
    """Check ``pipeline``; warn when the base dataset (or one it wraps) has its own transform."""
    if pipeline not in ("auto", "torchvision", "albumentations"):
        raise UsageError(f"pipeline={pipeline!r} is not one of auto, torchvision, albumentations")
    inner, path = base_ds, "base_ds"
    while inner is not None:  # through Subset (and other wrappers with .dataset)
        joint = getattr(inner, "transforms", None)  # torchvision's StandardTransform may hold only target_transform
        if getattr(inner, "transform", None) is not None or getattr(joint, "transform", joint) is not None:
            warnings.warn(
                f"{path} has its own transform, which synthetic samples do not get: build it without one "
                "and pass transform= to GANAugmentedDataset",
                stacklevel=3,
            )
            return
        inner, path = getattr(inner, "dataset", None), f"{path}.dataset"
