"""A bank of synthetic images for a dataset or transform: class mapping, generation, filtering, raw forms."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..data.folders import normalisation_note
from ..errors import GanAugmentError, UsageError
from ..io.images import to_unit
from ..io.rebuild import load_discriminator, load_generator
from ..io.record import RunRecord, load_run
from ..sampling import sample
from ..seeds import BANK_CLASS_STRIDE


def dataset_classes(ds: Any) -> list[str] | None:
    """The class names of a torchvision-style dataset (looking through ``Subset``), or None."""
    while ds is not None:
        classes = getattr(ds, "classes", None)
        if classes is not None:
            return [str(c) for c in classes]
        ds = getattr(ds, "dataset", None)
    return None


def dataset_targets(ds: Any) -> list[int]:
    """Every label of a map-style dataset: from ``targets`` where it exists (also through ``Subset``)."""
    targets = getattr(ds, "targets", None)
    if targets is not None:
        return [int(t) for t in targets]
    inner, indices = getattr(ds, "dataset", None), getattr(ds, "indices", None)
    if inner is not None and indices is not None:
        all_targets = dataset_targets(inner)
        return [all_targets[int(i)] for i in indices]
    return [int(ds[i][1]) for i in range(len(ds))]


def map_classes(
    ckpt_classes: Sequence[str],
    base_classes: Sequence[str] | None,
    mapping: Mapping[str, int] | None = None,
    num_labels: int | None = None,
) -> dict[int, int]:
    """Map checkpoint class indices to base-dataset label indices, by class name.

    Args:
        ckpt_classes: The generator's class names.
        base_classes: The base dataset's class names (``dataset.classes``), or None.
        mapping: Explicit ``{checkpoint class name: base label}``; overrides name matching.
        num_labels: How many labels the base dataset has; mapped labels must be below it.

    Returns:
        ``{checkpoint index: base label}`` for every class that maps.

    Raises:
        GanAugmentError: If no mapping can be made, naming the classes that are missing.
    """
    if mapping is not None:
        _check_mapping(mapping, ckpt_classes, num_labels)
        return {list(ckpt_classes).index(name): int(label) for name, label in mapping.items()}
    if base_classes is None:
        raise GanAugmentError(
            "the base dataset has no `classes` attribute: pass class_mapping={generator class name: label}"
        )
    missing = [c for c in base_classes if c not in ckpt_classes]
    extra = [c for c in ckpt_classes if c not in base_classes]
    if extra:
        raise GanAugmentError(
            f"the generator's classes {extra} are not in the base dataset's classes {list(base_classes)}"
            f"{normalisation_note(extra, missing)}: pass class_mapping to pair them by hand"
        )
    if missing and len(missing) == len(base_classes):
        raise GanAugmentError(f"no class of the base dataset is in the generator: missing {missing}")
    return {
        list(ckpt_classes).index(name): list(base_classes).index(name) for name in base_classes if name in ckpt_classes
    }


def _check_mapping(mapping: Mapping[str, int], ckpt_classes: Sequence[str], num_labels: int | None) -> None:
    """A GanAugmentError naming a class the generator lacks, or a label the base dataset lacks."""
    unknown = sorted(set(mapping) - set(ckpt_classes))
    if unknown:
        raise GanAugmentError(
            f"class_mapping names classes the generator does not have: {unknown}; it has {list(ckpt_classes)}"
        )
    for name, label in mapping.items():
        known = isinstance(label, (int, np.integer)) and not isinstance(label, bool)
        if not known or (num_labels is not None and not 0 <= int(label) < num_labels):
            labels = f"0 to {num_labels - 1}" if num_labels else "none"
            raise GanAugmentError(
                f"class_mapping[{name!r}] = {label!r} is not a label of the base dataset (its labels: {labels}): "
                "map each generator class to one of them"
            )


def base_mapping(
    bank: SyntheticBank,
    base_ds: Any,
    targets: Sequence[int],
    class_mapping: Mapping[str, int] | None,
    classes: Sequence[str] | None,
    balance: bool,
) -> tuple[dict[int, int], list[str]]:
    """``ckpt_to_base`` (generator class → base label) and the class names of a dataset that mixes
    ``bank``'s images into ``base_ds``. An unconditional generator (labelled by a teacher) gets one
    virtual class per base label, for the sizing only."""
    info = bank.info
    base_classes = dataset_classes(base_ds)
    if not bank.conditional:
        given = [name for name, v in (("class_mapping", class_mapping), ("classes", classes)) if v is not None]
        if given or balance:
            what = ", ".join(given + (["balance"] if balance else []))
            raise UsageError(f"{what} needs a generator of classes; this one's images get the teacher's labels")
        names = base_classes or [str(i) for i in range(max(targets, default=0) + 1)]
        return {i: i for i in range(len(names))}, names
    num_labels = len(base_classes) if base_classes else max(targets, default=-1) + 1
    ckpt_to_base = map_classes(info.class_names, base_classes, class_mapping, num_labels)
    names = base_classes or [str(i) for i in range(max(num_labels, *ckpt_to_base.values(), -1) + 1)]
    if classes is not None:
        unknown = [c for c in classes if c not in info.class_names]
        if unknown:
            raise UsageError(f"classes {unknown} are not classes of the generator ({info.class_names})")
        ckpt_to_base = {k: v for k, v in ckpt_to_base.items() if info.class_names[k] in classes}
    return ckpt_to_base, names


class SyntheticBank:
    """Synthetic uint8 images generated in batches on a device and kept on the CPU.

    Args:
        generator_ckpt: Run directory or checkpoint from ``gan-augment fit``.
        device: Where to run the generator (default: CUDA when available).
        batch_size: Images per forward pass.
        filter_top: Keep only this top fraction of candidates by discriminator score
            (discriminator rejection sampling, Azadi et al. 2019); None keeps every sample.
        pretrained: Use a per-class run's shared generator from the end of its pre-training
            (unconditional: its images get their labels from a teacher).
        unconditional: Accept an unconditional generator (its images are labelled by a teacher);
            ``generate`` then ignores the classes of ``counts`` and draws their total.
        run: The run's record when the caller has read it (its checkpoint is then not read again).
    """

    def __init__(
        self,
        generator_ckpt: str | os.PathLike[str],
        device: str | torch.device | None = None,
        batch_size: int = 1024,
        filter_top: float | None = None,
        pretrained: bool = False,
        unconditional: bool = False,
        run: RunRecord | None = None,
    ) -> None:
        run = run if run is not None else load_run(generator_ckpt)  # read once: generator, folders, discriminator
        if filter_top is not None and not 0 < filter_top <= 1:
            raise UsageError(f"filter_top={filter_top} must be in (0, 1]")
        self.generator_ckpt = str(generator_ckpt)
        self.device = device
        self.batch_size = batch_size
        self.filter_top = filter_top
        self._generator, self.info = load_generator(generator_ckpt, device=device, pretrained=pretrained, run=run)
        self._run = run if filter_top is not None else None  # its discriminator scores the candidates
        self._discriminator: nn.Module | None = None
        self.conditional = bool(self.info.class_names)
        if not self.conditional and not unconditional:
            what = "the pre-trained generator of" if pretrained else "an unconditional generator in"
            raise GanAugmentError(
                f"{what} {self.generator_ckpt!r} draws no class: its images need a teacher to label them "
                "(labels='teacher' or 'soft', teacher=...), or use a per-class or conditional run"
            )
        if not self.conditional and filter_top is not None:
            raise GanAugmentError(
                "filter_top needs a per-class or conditional generator: drop it, or use min_confidence"
            )

    @property
    def generator_device(self) -> torch.device:
        """Where the generator runs."""
        return next(self._generator.parameters()).device

    def generate(self, counts: Mapping[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Generate ``counts[c]`` images of checkpoint class c; returns uint8 (N, C, H, W) and classes (N,)."""
        if not self.conditional:  # one draw of the total; every image "class 0" until a teacher labels it
            n = sum(counts.values())
            return sample(self._generator, n, seed=seed, batch_size=self.batch_size), torch.zeros(n, dtype=torch.int64)
        labels = torch.cat(
            [torch.full((n,), c, dtype=torch.int64) for c, n in counts.items() if n > 0]
            or [torch.empty(0, dtype=torch.int64)]
        )
        if self.filter_top is None or len(labels) == 0:
            return sample(self._generator, len(labels), labels=labels, seed=seed, batch_size=self.batch_size), labels
        return self._filtered(labels, seed)

    def _score(self, images: torch.Tensor, c: int) -> torch.Tensor:
        """Discriminator logits (B,) of uint8 images (B, C, H, W) of class c, on the CPU."""
        assert self._discriminator is not None
        labels = torch.full((len(images),), c, device=images.device)
        return self._discriminator(to_unit(images), labels).float().cpu()

    @torch.no_grad()
    def _filtered(self, labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._discriminator is None:
            self._discriminator = load_discriminator(self.generator_ckpt, device=self.device, run=self._run)
        assert self.filter_top is not None
        factor = 1.0 / self.filter_top
        keep_images, keep_labels = [], []
        dev = next(self._discriminator.parameters()).device
        for c in labels.unique().tolist():
            n = int((labels == c).sum())
            m = int(np.ceil(n * factor))
            cand = sample(
                self._generator, m, labels=c, seed=seed + BANK_CLASS_STRIDE * (c + 1), batch_size=self.batch_size
            )
            scores = torch.cat(
                [self._score(cand[i : i + self.batch_size].to(dev), c) for i in range(0, m, self.batch_size)]
            )
            top = scores.topk(n).indices.sort().values
            keep_images.append(cand[top])
            keep_labels.append(torch.full((n,), c, dtype=torch.int64))
        return torch.cat(keep_images), torch.cat(keep_labels)


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
