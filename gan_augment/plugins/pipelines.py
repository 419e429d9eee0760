"""Transform pipelines that ``GANAugmentedDataset`` applies: torchvision-style or albumentations-style."""

from __future__ import annotations

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
    """Check ``pipeline``; refuse a base dataset (or one it wraps) with its own transform or
    target_transform: real items would go through it and synthetic ones not, so one dataset would mix
    two types, ranges and pipelines. The error names the fix."""
    if pipeline not in ("auto", "torchvision", "albumentations"):
        raise UsageError(f"pipeline={pipeline!r} is not one of auto, torchvision, albumentations")
    inner, path = base_ds, "base_ds"
    while inner is not None:  # through Subset (and other wrappers with .dataset)
        joint = getattr(inner, "transforms", None)  # torchvision's StandardTransform holds both
        for name in ("transform", "target_transform"):
            own = getattr(inner, name, None)
            own = own if own is not None else getattr(joint, name, None)
            if own is not None:
                raise UsageError(
                    f"{path} has its own {name} ({_short(own)}), which real items would get and synthetic ones "
                    f"not: build it without one (e.g. ImageFolder(root)) and pass {name}=<the same {name}> to "
                    f"GANAugmentedDataset, which applies it to real and synthetic items alike"
                )
        if joint is not None and not hasattr(joint, "transform") and callable(joint):  # a joint transforms=
            raise UsageError(
                f"{path} has its own transforms= ({_short(joint)}): build it without one and pass transform= and "
                "target_transform= to GANAugmentedDataset, which applies them to real and synthetic items alike"
            )
        inner, path = getattr(inner, "dataset", None), f"{path}.dataset"


def _short(obj: Any) -> str:
    text = " ".join(repr(obj).split())
    return text if len(text) <= 60 else text[:57] + "..."
