"""The synthetic side of ``GANAugmentedDataset``: a bank and a labeller behind one small interface.

:class:`SyntheticSource` draws labelled images in the base dataset's label space and item form:
``draw(counts, seed)`` for synthetic images, ``label(images)`` for real unlabeled ones. The
dataset composes it with the base dataset; it knows nothing of indices, transforms or workers.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import UsageError
from ..io.images import RawForm, match_images, raw_channels, raw_form_of, raw_size, to_raw
from ..seeds import DATASET_ROUND_STRIDE
from .bank import SyntheticBank, base_mapping, dataset_classes, map_classes
from .extra import Labelled, check_bank_size
from .teacher import LabelSource, RunTeacher, Teacher, check_labeling, label_synthetic, load_run_teacher, teacher_logits

# Rounds of candidates drawn to fill each class when a teacher filters synthetic images.
MAX_TEACHER_ROUNDS = 8
MAX_OVERSAMPLING = 16  # at most this many candidates per image still missing, in one round


@dataclass(frozen=True)
class Labelling:
    """How extra images get their targets (the labeller's parameters).

    Attributes:
        labels: ``generator`` (the class drawn), ``teacher`` (the teacher's top class) or ``soft``
            (its probabilities at ``temperature``).
        teacher: The classifier that labels (None: the generator's class only).
        min_confidence: Keep an image only if the teacher gives its label at least this probability.
        temperature: Softens the ``soft`` targets.
    """

    labels: LabelSource
    teacher: Teacher | None = None
    min_confidence: float = 0.0
    temperature: float = 1.0

    def checked(self) -> Labelling:
        """These settings, refused with a clear error if they do not go together."""
        check_labeling(self.labels, self.teacher, self.min_confidence, self.temperature)
        return self

    @classmethod
    def for_run(
        cls, run: Any, ckpt: Any, labels: Any, teacher: Any, min_confidence: float, temperature: float
    ) -> tuple[Labelling, RunTeacher | None]:
        """``(labelling, run_teacher)``: the labeller of a run's extra items (the run's own teacher unless
        another is given or ``labels="generator"``; ``soft`` targets with a teacher, else the generator's
        class, what measured best for each) and the run's teacher where it was asked for (else None)."""
        ask = teacher is None and labels != "generator"
        run_teacher = load_run_teacher(ckpt, planned=run.config.teacher) if ask else None
        teacher = teacher if teacher is not None else run_teacher
        labels = labels or ("soft" if teacher is not None else "generator")
        return cls(labels, teacher, min_confidence, temperature).checked(), run_teacher


# Base items looked at to check their form and value range: evenly spaced, the first and last included.
RANGE_PROBES = 8
# Float images in [0, 1] as ToTensor gives them, up to rounding.
_UNIT_SLACK = 1e-3
_FIX = (
    "build the base dataset without normalisation (uint8 images, PIL images, or float32 in [0, 1] as "
    "torchvision's ToTensor gives) and pass the normalisation as transform=, which real and synthetic items share"
)


def check_base_items(base_ds: Any) -> Any:
    """The base dataset's first image, once a few of its items are checked to be ``(image, label)`` pairs in a
    form the synthetic items can take: uint8 (PIL, arrays, tensors) or float tensors in [0, 1] of one dtype.
    A base already normalised (to [-1, 1], or floats in [0, 255]) would give real items another picture of the
    world than the synthetic ones: refused with the fix, naming the item and its range. None for an empty base."""
    n = len(base_ds)
    if not n:
        return None
    seen: list[Any] = []
    for i in sorted({round(j * (n - 1) / max(RANGE_PROBES - 1, 1)) for j in range(RANGE_PROBES)}):
        item = base_ds[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise UsageError(
                f"the base dataset's item {i} is a {type(item).__name__}, not an (image, label) pair: wrap it so that "
                "ds[i] returns (image, label), as torchvision's datasets do"
            )
        seen.append(item[0])
    first = seen[0]
    kinds = {_value_kind(x) for x in seen}
    if len(kinds) > 1:
        raise UsageError(f"the base dataset's images come in several forms ({', '.join(sorted(kinds))}): {_FIX}")
    for i, x in enumerate(seen):
        if isinstance(x, np.ndarray) and x.dtype != np.uint8:
            raise UsageError(f"the base dataset's images are {x.dtype} arrays; synthetic items come as uint8: {_FIX}")
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel():
            low, high = float(x.min()), float(x.max())
            if not (math.isfinite(low) and math.isfinite(high)) or low < -_UNIT_SLACK or high > 1 + _UNIT_SLACK:
                raise UsageError(
                    f"the base dataset's images are float with values in [{low:.3g}, {high:.3g}] (item looked at: "
                    f"{i + 1} of {len(seen)}), where synthetic items come in [0, 1]: {_FIX}"
                )
    return first


def _value_kind(x: Any) -> str:
    """The form and element type of a raw item, for comparing items: ``pil``, ``numpy uint8``, ``tensor float32``..."""
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return f"{type(x).__name__} {x.dtype}"
    return type(x).__name__


class ItemForm:
    """The raw form, size and channels of the base dataset's items, which extra items are given.

    Args:
        first: The base dataset's first image (None for an empty base: PIL at the run's size).
        output_format: ``auto`` (like ``first``), ``pil``, ``numpy``, ``tensor`` or ``float``.
        run_side: The run's image side (used when ``first`` does not tell a size).
    """

    def __init__(self, first: Any, output_format: str, run_side: int) -> None:
        auto = raw_form_of(first) if first is not None else "pil"
        self.raw_form: RawForm = auto if output_format == "auto" else output_format  # type: ignore[assignment]
        self.pil_mode = getattr(first, "mode", None) if self.raw_form == "pil" else None
        self.size = raw_size(first)
        self.channels, self.plain_2d = raw_channels(first) if self.raw_form != "pil" else (None, False)
        self.side = self.size or (run_side, run_side)
        # Float items in the base's own float type (a float64 base gets float64 synthetic items).
        self.float_dtype = first.dtype if isinstance(first, torch.Tensor) and first.is_floating_point() else None

    def check(self, counts: Mapping[int, int], run_channels: int) -> None:
        """Refuse channels no synthetic image can match, and a bank too large for memory."""
        if self.channels not in (None, 1, 3):
            raise UsageError(
                f"the base dataset's images have {self.channels} channels and the run's {run_channels}: "
                "synthetic images can match 1 or 3 channels; convert the base images (e.g. drop the alpha "
                "channel) before wrapping them"
            )
        check_bank_size(counts, max(self.channels or 0, run_channels), self.side)

    def match(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images at the base items' size (bilinear, antialiased) and channels."""
        return match_images(images, self.size, self.channels)

    def item(self, image: torch.Tensor) -> Any:
        """One uint8 (C, H, W) image as a base item: the same raw form (PIL mode, array layout)."""
        out = to_raw(image, self.raw_form, self.pil_mode)
        if self.raw_form == "float" and self.float_dtype is not None:
            out = out.to(self.float_dtype)
        if self.plain_2d:  # the base items are (H, W): so are the synthetic ones
            out = out[..., 0] if self.raw_form == "numpy" else out[0]
        return out


class SyntheticSource:
    """Labelled synthetic images from a run's generator (the bank) and a labeller, in the base
    dataset's labels (``ckpt_to_base``) and item form.

    Args:
        bank: The run's generator, drawing uint8 images per generator class.
        labelling: How the images get their targets.
        ckpt_to_base: ``{generator class: base label}`` of the classes that get images.
        class_names: The base dataset's class names, in label order.
        form: The base items' form.
    """

    def __init__(
        self,
        bank: SyntheticBank | None,
        labelling: Labelling,
        ckpt_to_base: dict[int, int],
        class_names: list[str],
        form: ItemForm,
    ) -> None:
        self.bank, self.labelling, self.form = bank, labelling, form
        self.ckpt_to_base, self.class_names = ckpt_to_base, class_names

    def detached(self) -> SyntheticSource:
        """This source without its generator or teacher (what a DataLoader worker gets): it can convert
        items, not draw or label new images."""
        labelling = dataclasses.replace(self.labelling, teacher=None)
        return SyntheticSource(None, labelling, self.ckpt_to_base, self.class_names, self.form)

    def _bank(self) -> SyntheticBank:
        if self.bank is None:
            raise RuntimeError("this copy was unpickled without its generator: resample in the main process")
        return self.bank

    @classmethod
    def for_base(
        cls, bank: SyntheticBank, labelling: Labelling, form: ItemForm, base_ds: Any, targets: Any, *mapping: Any
    ) -> SyntheticSource:
        """The source of a dataset that mixes ``bank``'s images into ``base_ds`` (with its ``targets``), its
        classes mapped by ``mapping`` (``class_mapping``, ``classes``, ``balance``: see ``base_mapping``)."""
        source = cls(bank, labelling, *base_mapping(bank, base_ds, targets, *mapping), form)
        source._aim_run_teacher(base_ds, mapping[0])
        return source

    def _aim_run_teacher(self, base_ds: Any, class_mapping: Mapping[str, int] | None) -> None:
        """The run's own teacher scores the run's classes: give its logits the base dataset's label order."""
        teacher, width = self.labelling.teacher, len(self.class_names)
        if isinstance(teacher, RunTeacher):
            mapping = class_mapping if self._bank().conditional else None
            run_to_base = map_classes(teacher.class_names, dataset_classes(base_ds), mapping, width)
            teacher.for_labels(run_to_base, width).to(self._bank().generator_device)

    @property
    def soft_width(self) -> int:
        return max(max(self.ckpt_to_base.values(), default=0) + 1, len(self.class_names))

    def _to_base(self, gen_labels: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.ckpt_to_base[int(c)] for c in gen_labels], dtype=torch.int64)

    def _teacher_labels(self, images: torch.Tensor, base_labels: torch.Tensor, min_confidence: float) -> Labelled:
        lab = self.labelling
        assert lab.teacher is not None
        logits = teacher_logits(lab.teacher, images, len(self.class_names), self._bank().generator_device)
        keep, hard, soft = label_synthetic(logits, base_labels, lab.labels, min_confidence, lab.temperature)
        return keep, hard, soft  # type: ignore[return-value]

    def label(self, images: torch.Tensor) -> Labelled:
        """Real (unlabeled) images at the base items' form, with the teacher's hard and soft labels."""
        images = self.form.match(images)
        _, hard, soft = self._teacher_labels(images, torch.zeros(len(images), dtype=torch.int64), 0.0)
        return images, hard, soft

    def draw(self, counts: Mapping[int, int], seed: int) -> Labelled:
        """``counts[c]`` images of generator class c with their targets: the generator's class, or
        (with a teacher) candidates in rounds, labelled and filtered by it, until each class has its count."""
        bank = self._bank()
        if self.labelling.teacher is None:
            images, gen_labels = bank.generate(counts, seed)
            return self.form.match(images), self._to_base(gen_labels), None
        lab = self.labelling
        need = {c: n for c, n in counts.items() if n > 0}
        if not bank.conditional:  # one pool: the teacher decides the classes
            need = {0: sum(need.values())} if need else {}
        factor = 1.0 if lab.min_confidence == 0 else 2.0
        parts: list[Labelled] = []
        for r in range(MAX_TEACHER_ROUNDS):
            if not need:
                break
            ask = {c: math.ceil(n * factor) for c, n in need.items()}
            images, gen_labels = bank.generate(ask, seed + DATASET_ROUND_STRIDE * r)
            images = self.form.match(images)
            keep, hard, soft = self._teacher_labels(images, self._to_base(gen_labels), lab.min_confidence)
            for c in list(need):
                idx = torch.nonzero((gen_labels == c) & keep).flatten()[: need[c]]
                parts.append((images[idx], hard[idx], None if soft is None else soft[idx]))
                need[c] -= len(idx)
                if need[c] == 0:
                    del need[c]
            factor = min(2 * factor, MAX_OVERSAMPLING)  # bounded: a class the teacher rejects stays short
        if need:
            names = {bank.info.class_names[c] if bank.conditional else "any class": n for c, n in need.items()}
            warnings.warn(
                f"the teacher accepted too few synthetic images at min_confidence={lab.min_confidence}: "
                f"{names} fewer than asked (per generator class); lower min_confidence for these classes",
                stacklevel=4,
            )
        images = torch.cat([p[0] for p in parts]) if parts else torch.empty(0, dtype=torch.uint8)
        hard = torch.cat([p[1] for p in parts]) if parts else torch.empty(0, dtype=torch.int64)
        if lab.labels != "soft":
            return images, hard, None
        soft = [p[2] for p in parts if p[2] is not None]
        return images, hard, torch.cat(soft) if soft else torch.empty(0, self.soft_width)
