"""The extra items of a ``GANAugmentedDataset``: how many, and the pool a fresh item is drawn from.

Fresh items (``fresh=True``): the dataset holds a pool of teacher-labelled images (a bank of several
passes' worth of synthetic images, and with ``unlabeled`` the run's unlabeled images) and every access
to an extra item draws one of them at random from torch's random number generator, as a random
transform does. So each pass of a ``DataLoader`` sees other images, in worker processes too (PyTorch
seeds each worker from the main process's generator for every pass), and ``torch.manual_seed``
makes the passes repeat.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.split import fill_classes
from ..errors import GanAugmentError, UsageError

# The sizing of ``GANAugmentedDataset(base_ds, generator_ckpt)`` without a teacher, when none is given.
# With the generator's labels, the limited-labels benchmark measured ratios 0.25 and 0.5 costing least
# (MNIST -0.7 / -0.6, CIFAR-10 -0.2 / -0.4 points) and larger shares costing more (up to -6 at 0.9): the
# smaller of the two. It still costs (docs/results_notes.md, "when synthetic samples help").
DEFAULT_SYNTHETIC_RATIO = 0.25
# With the run's teacher labelling the images (the two-argument default since teachers live in runs): on
# MNIST with 10 labels per class, 98.67% at 0.5; shares from 0.25 to 0.9 were within a tenth of a point
# of it, inside the seed spread (docs/results_notes.md, "The run's teacher").
DEFAULT_TEACHER_RATIO = 0.5
# Fresh items: synthetic images in the pool per extra item (passes' worth), at most FRESH_MAX_IMAGES
# in all (but never fewer than one pass).
FRESH_PASSES = 64
FRESH_MAX_IMAGES = 20_000
# The most memory the synthetic bank may take (uint8 images); a larger sizing is refused before any is drawn.
MAX_BANK_BYTES = 16 * 2**30
# What each synthetic image costs beyond its pixels (its labels, soft targets, drawing and labelling
# buffers): about 2 KB and 0.14 ms measured on 2 CPU cores, so the byte bound counts it too, and at most
# MAX_BANK_IMAGES are drawn (about 2.5 minutes there): a sizing past them is refused, not run for hours.
ITEM_OVERHEAD_BYTES = 2048
MAX_BANK_IMAGES = 1_000_000


def warn_balance_by_generator(balance: bool, labels: str | None, teacher: Any) -> None:
    """``balance=True`` labelled by the generator, for want of a teacher: the worst arm the long-tailed
    benchmark measured (the rare classes' images come from models of a handful of images, and most of
    the rare classes' targets are theirs); say so, and what to pass instead."""
    if balance and labels is None and teacher is None:
        warnings.warn(
            "balance=True without a teacher labels the synthetic images with the generator's class, which lowered "
            "balanced accuracy the most of every method the long-tailed benchmark measured (docs/results/"
            "long_tailed.md): pass teacher= (a classifier trained on your labels), a run that has one "
            "(gan-augment fit LABELED UNLABELED), or labels='generator' to keep this",
            UserWarning,
            stacklevel=3,
        )


def check_sizing(synthetic_ratio: Any, per_class: Any, balance: Any, batch_size: Any, teacher: bool) -> float | None:
    """The synthetic ratio to use (when no sizing is given, the default for a run with or without its
    ``teacher``); ValueError for a bad sizing
    (NaN, infinite, negative, not a number, a bool for a count), before anything is allocated."""
    if not isinstance(balance, bool):
        raise UsageError(f"balance={balance!r} must be True or False")
    if sum([synthetic_ratio is not None, per_class is not None, balance]) > 1:
        raise UsageError("pass at most one of synthetic_ratio, per_class or balance=True")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size={batch_size!r} must be a positive integer")
    if synthetic_ratio is None and per_class is None and not balance:
        return DEFAULT_TEACHER_RATIO if teacher else DEFAULT_SYNTHETIC_RATIO
    if synthetic_ratio is not None:
        if isinstance(synthetic_ratio, bool) or not isinstance(synthetic_ratio, (int, float)):
            raise UsageError(f"synthetic_ratio={synthetic_ratio!r} must be a number in [0, 1)")
        if not 0 <= synthetic_ratio < 1:  # NaN fails this too
            raise UsageError(f"synthetic_ratio={synthetic_ratio} must be in [0, 1)")
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer))):
        raise UsageError(f"per_class={per_class!r} must be an integer >= 0")
    if per_class is not None and per_class < 0:
        raise UsageError(f"per_class={per_class} must be >= 0")
    return synthetic_ratio


def check_bank_size(counts: Mapping[int, int], channels: int, size: tuple[int, int]) -> None:
    """Refuse, before drawing any image, a bank larger than :data:`MAX_BANK_BYTES`."""
    total = sum(counts.values())
    need = total * (channels * size[0] * size[1] + ITEM_OVERHEAD_BYTES)
    if need > MAX_BANK_BYTES:
        raise UsageError(
            f"{total:,} synthetic images of {channels}×{size[0]}×{size[1]} would take {need / 2**30:.1f} GiB, more "
            f"than {MAX_BANK_BYTES / 2**30:.0f} GiB: pass a smaller per_class or synthetic_ratio"
        )
    if total > MAX_BANK_IMAGES:
        raise UsageError(
            f"{total:,} synthetic images to draw, more than {MAX_BANK_IMAGES:,} (about 0.14 ms each on a CPU): pass a "
            "smaller per_class or synthetic_ratio, or leave fresh on (a teacher's labels), whose pool stays small"
        )


def fresh_counts(counts: Mapping[int, int], passes: int) -> dict[int, int]:
    """The bank behind fresh items: ``passes`` times ``counts``, scaled down to at most
    :data:`FRESH_MAX_IMAGES` in all (never below ``counts`` itself); none for ``passes=0``."""
    total = sum(counts.values())
    if not passes:  # no synthetic image: the pool is the unlabeled images alone
        return {c: 0 for c in counts}
    if not total:
        return dict(counts)
    scale = max(1.0, min(float(passes), FRESH_MAX_IMAGES / total))
    return {c: int(round(n * scale)) for c, n in counts.items()}


def check_extra(fresh: bool, passes: Any, unlabeled: Any, labels: str) -> None:
    """Refuse extra-item settings that cannot work, naming the value."""
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 0:
        raise UsageError(f"fresh_passes={passes!r} must be an integer >= 0 (0: the unlabeled images alone)")
    if passes == 0 and (unlabeled is None or unlabeled is False):
        raise UsageError("fresh_passes=0 leaves no synthetic image: give unlabeled= images for the pool")
    if unlabeled is not None and unlabeled is not False:
        if labels == "generator":
            raise UsageError("unlabeled= needs a teacher to label the images: a run with one, or teacher=")
        if not fresh:
            raise UsageError("unlabeled= adds images to the pool of fresh items: drop fresh=False")


def check_unlabeled_images(images: Any) -> torch.Tensor:
    """``images`` as given for ``unlabeled=``: a uint8 tensor (N, C, H, W) of 1 or 3 channels."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        what = (
            f"a {images.dtype} tensor of {images.ndim} dimensions"
            if isinstance(images, torch.Tensor)
            else type(images).__name__
        )
        raise UsageError(f"unlabeled= takes True (the run's unlabeled folder) or uint8 images (N, C, H, W), not {what}")
    if images.shape[1] not in (1, 3) or not len(images):
        raise UsageError(f"unlabeled images {tuple(images.shape)}: need at least one image of 1 or 3 channels")
    return images


def run_names_unlabeled(sources: dict[str, Any]) -> bool:
    """Whether a run's ``sources`` (its record's ``data``) name an unlabeled folder (``fit`` with UNLABELED)."""
    return isinstance(sources.get("unlabeled"), str) and isinstance(sources.get("labeled"), str)


def run_unlabeled_images(
    run: str | os.PathLike[str], sources: dict[str, Any], image_size: int, channels: int
) -> torch.Tensor:
    """The unlabeled images a run of ``fit`` was trained on, decoded again from the folder its
    record names (through the decode cache), at the run's size and channels.

    Raises:
        GanAugmentError: If the run names no unlabeled folder (``fit`` without one, or ``fit_data``).
    """
    from ..data import load_image_data

    labeled, unlabeled = sources.get("labeled"), sources.get("unlabeled")
    if not isinstance(unlabeled, str) or not isinstance(labeled, str):
        raise GanAugmentError(
            f"the run {str(run)!r} names no unlabeled folder (trained without one, or from images in memory): "
            "pass unlabeled=<uint8 images (N, C, H, W)>, or leave it out"
        )
    decoded = load_image_data(labeled, unlabeled, image_size=image_size, channels=channels)
    return decoded.images[decoded.labels < 0]


Labelled = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]  # images, hard labels, soft labels or None


class ExtraPool:
    """Teacher-labelled images that fresh items are drawn from, one at random per access.

    Args:
        images: uint8 (N, C, H, W), already at the base items' size and channels.
        hard: The teacher's top label of each (N,).
        soft: Its probabilities (N, K), or None for hard labels.
    """

    def __init__(self, images: torch.Tensor, hard: torch.Tensor, soft: torch.Tensor | None) -> None:
        self.images, self.hard = images.share_memory_(), hard.share_memory_()  # workers share, not copy
        self.soft = soft.share_memory_() if soft is not None else None

    @classmethod
    def of(cls, parts: list[Labelled]) -> ExtraPool:
        """One pool of several labelled sets (synthetic, unlabeled); soft labels only if every set has them."""
        soft = [p[2] for p in parts if p[2] is not None]
        return cls(
            torch.cat([p[0] for p in parts]),
            torch.cat([p[1] for p in parts]),
            torch.cat(soft) if len(soft) == len(parts) else None,
        )

    def __len__(self) -> int:
        return len(self.hard)

    def draw(self) -> int:
        """One index, from torch's global generator (seeded per worker and pass by the DataLoader)."""
        return int(torch.randint(len(self.hard), ()))


def label_pool(source: Any, images: torch.Tensor, base_targets: Sequence[int] | None) -> Labelled:
    """Unlabeled ``images`` with ``source``'s labeller's hard and soft labels (a
    :class:`~gan_augment.plugins.source.SyntheticSource`); with the base dataset's targets, only those that
    fill each class up to the largest (``fill_classes``: ``balance=True``)."""
    images, hard, soft = source.label(images)
    if base_targets is None:
        return images, hard, soft
    k = int(soft.shape[1]) if soft is not None else len(source.class_names)
    counts = torch.bincount(torch.as_tensor(list(base_targets), dtype=torch.int64), minlength=k).tolist()
    idx = fill_classes(soft if soft is not None else F.one_hot(hard, k).float(), counts)
    return images[idx], hard[idx], None if soft is None else soft[idx]
