"""``GANAugmentedDataset``: an existing labeled dataset with synthetic samples of the right classes mixed in."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..io.images import RawForm, match_images, raw_channels, raw_form_of, raw_size, to_raw
from .bank import SyntheticBank, dataset_classes, dataset_targets, map_classes, synthetic_counts
from .pipelines import PipelineKind, apply_transform, check_pipeline
from .teacher import LabelSource, Teacher, check_labeling, label_synthetic, teacher_logits

# The sizing of ``GANAugmentedDataset(base_ds, generator_ckpt)`` when none is given. With the generator's
# labels, the limited-labels benchmark measured ratios 0.25 and 0.5 costing least (MNIST -0.7 / -0.6,
# CIFAR-10 -0.2 / -0.4 points) and larger shares costing more (up to -6 at 0.9): the smaller of the two.
# It still costs (docs/results_notes.md, "when synthetic samples help").
DEFAULT_SYNTHETIC_RATIO = 0.25
# Rounds of candidates drawn to fill each class when a teacher filters synthetic images.
MAX_TEACHER_ROUNDS = 8
MAX_OVERSAMPLING = 16  # at most this many candidates per image still missing, in one round


# The most memory the synthetic bank may take (uint8 images); a larger sizing is refused before any is drawn.
MAX_BANK_BYTES = 16 * 2**30


def _check_sizing(synthetic_ratio: Any, per_class: Any, balance: Any, batch_size: Any) -> float | None:
    """The synthetic ratio to use (the default when no sizing is given); ValueError for a bad sizing
    (NaN, infinite, negative, not a number, a bool for a count), before anything is allocated."""
    if not isinstance(balance, bool):
        raise ValueError(f"balance={balance!r} must be True or False")
    if sum([synthetic_ratio is not None, per_class is not None, balance]) > 1:
        raise ValueError("pass at most one of synthetic_ratio, per_class or balance=True")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    if synthetic_ratio is None and per_class is None and not balance:
        return DEFAULT_SYNTHETIC_RATIO
    if synthetic_ratio is not None:
        if isinstance(synthetic_ratio, bool) or not isinstance(synthetic_ratio, (int, float)):
            raise ValueError(f"synthetic_ratio={synthetic_ratio!r} must be a number in [0, 1)")
        if not 0 <= synthetic_ratio < 1:  # NaN fails this too
            raise ValueError(f"synthetic_ratio={synthetic_ratio} must be in [0, 1)")
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer))):
        raise ValueError(f"per_class={per_class!r} must be an integer >= 0")
    if per_class is not None and per_class < 0:
        raise ValueError(f"per_class={per_class} must be >= 0")
    return synthetic_ratio


def _check_bank_size(counts: Mapping[int, int], channels: int, size: tuple[int, int]) -> None:
    """Refuse, before drawing any image, a bank larger than :data:`MAX_BANK_BYTES`."""
    total = sum(counts.values())
    need = total * channels * size[0] * size[1]
    if need > MAX_BANK_BYTES:
        raise ValueError(
            f"{total:,} synthetic images of {channels}×{size[0]}×{size[1]} would take {need / 2**30:.1f} GiB, more "
            f"than {MAX_BANK_BYTES / 2**30:.0f} GiB: pass a smaller per_class or synthetic_ratio"
        )


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
            as possible over ``classes``. With none of the three sizings given:
            ``DEFAULT_SYNTHETIC_RATIO`` (0.25: with the generator's labels the limited-labels
            benchmark found 0.25 and 0.5 costing least and larger shares costing more; with a
            teacher's soft labels its best was 0.5).
        per_class: Synthetic images per class (instead of ``synthetic_ratio``).
        balance: Bring every class up to the largest class's count (instead of the two above).
        labels: The target of a synthetic image: ``"generator"`` (the class it was generated for),
            ``"teacher"`` (``teacher``'s top class) or ``"soft"`` (``teacher``'s probabilities at
            ``temperature``, a float vector; real items then get one-hot vectors, so every target
            is a float tensor of the teacher's width, as ``F.cross_entropy`` takes them). Default:
            ``"soft"`` when a teacher is given (the labelling that measured best), else
            ``"generator"``.
        teacher: A classifier trained on the real labels: called on float batches (B, C, H, W) in
            [0, 1] at the base samples' size, it returns logits (B, K) over the base labels. An
            ``nn.Module`` runs where its parameters are, in the mode it is in (put it in eval mode).
        min_confidence: Keep a synthetic image only if ``teacher`` gives its label (the generator's
            class for ``labels="generator"``: classifier-agreement filtering) at least this
            probability; candidates are drawn until every class has its count (warned if not).
        temperature: Softens the ``"soft"`` targets (confidences are read at temperature 1).
        pretrained: Draw from the run's shared generator as it was at the end of pre-training on
            every image, labeled and unlabeled (per-class runs keep it): unconditional, so it needs
            ``labels="teacher"`` or ``"soft"``; its images follow the whole pool, not the few
            labeled images the per-class generators were fine-tuned on. The sizing counts the same
            total; the teacher decides the classes.
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
        labels: LabelSource | None = None,
        teacher: Teacher | None = None,
        min_confidence: float = 0.0,
        temperature: float = 1.0,
        pretrained: bool = False,
    ) -> None:
        synthetic_ratio = _check_sizing(synthetic_ratio, per_class, balance, batch_size)
        labels = labels or ("soft" if teacher is not None else "generator")  # what measured best for each
        check_labeling(labels, teacher, min_confidence, temperature)
        check_pipeline(base_ds, pipeline)
        self.base_ds = base_ds
        self.generator_ckpt = str(generator_ckpt)
        self.transform = transform
        self.target_transform = target_transform
        self.pipeline = pipeline
        self.seed = seed
        self.labels, self.teacher = labels, teacher
        self.min_confidence, self.temperature = min_confidence, temperature
        self.synthetic_soft: torch.Tensor | None = None  # (S, K) float targets when labels="soft"
        # Bumped by resample(), in memory that DataLoader workers share: a persistent worker holding
        # images from before a resample() sees it and refuses to serve them.
        self._generation = torch.zeros(1, dtype=torch.int64).share_memory_()

        self._bank = SyntheticBank(
            generator_ckpt,
            device=device,
            batch_size=batch_size,
            filter_top=filter_top,
            pretrained=pretrained,
            unconditional=labels != "generator",
        )
        targets = dataset_targets(base_ds)
        self._map_classes(base_ds, targets, class_mapping, classes, balance)
        self.n_real = len(targets)
        self.counts = synthetic_counts(targets, self.ckpt_to_base, synthetic_ratio, per_class, balance)

        self._match_base_items(base_ds[0][0] if self.n_real else None, output_format)
        size = self._raw_size or (self._bank.info.image_size, self._bank.info.image_size)
        _check_bank_size(self.counts, max(self._channels or 0, self._bank.info.channels), size)
        self.resample(seed)

    def _match_base_items(self, first: Any, output_format: str) -> None:
        """Give synthetic items the raw form, size and channels of the base items (when the first
        one tells them); refuse channels that no synthetic image can match."""
        auto = raw_form_of(first) if first is not None else "pil"
        self.raw_form: RawForm = auto if output_format == "auto" else output_format  # type: ignore[assignment]
        self._pil_mode = getattr(first, "mode", None) if self.raw_form == "pil" else None
        self._raw_size = raw_size(first)
        self._channels, self._plain_2d = raw_channels(first) if self.raw_form != "pil" else (None, False)
        if self._channels not in (None, 1, 3):
            raise ValueError(
                f"the base dataset's images have {self._channels} channels and the run's {self._bank.info.channels}: "
                "synthetic images can match 1 or 3 channels; convert the base images (e.g. drop the alpha "
                "channel) before wrapping them"
            )

    def _map_classes(
        self,
        base_ds: Dataset,
        targets: Sequence[int],
        class_mapping: Mapping[str, int] | None,
        classes: Sequence[str] | None,
        balance: bool,
    ) -> None:
        """``ckpt_to_base`` (generator class → base label) and ``class_names``. An unconditional generator
        (labelled by a teacher) gets one virtual class per base label, for the sizing only."""
        info = self._bank.info
        base_classes = dataset_classes(base_ds)
        if not self._bank.conditional:
            given = [name for name, v in (("class_mapping", class_mapping), ("classes", classes)) if v is not None]
            if given or balance:
                what = ", ".join(given + (["balance"] if balance else []))
                raise ValueError(f"{what} needs a generator of classes; this one's images get the teacher's labels")
            self.class_names = base_classes or [str(i) for i in range(max(targets, default=0) + 1)]
            self.ckpt_to_base = {i: i for i in range(len(self.class_names))}
            return
        num_labels = len(base_classes) if base_classes else max(targets, default=-1) + 1
        self.ckpt_to_base = map_classes(info.class_names, base_classes, class_mapping, num_labels)
        self.class_names = base_classes or [str(i) for i in range(max(num_labels, *self.ckpt_to_base.values(), -1) + 1)]
        if classes is not None:
            unknown = [c for c in classes if c not in info.class_names]
            if unknown:
                raise ValueError(f"classes {unknown} are not classes of the generator ({info.class_names})")
            self.ckpt_to_base = {k: v for k, v in self.ckpt_to_base.items() if info.class_names[k] in classes}

    def resample(self, seed: int | None = None) -> None:
        """Draw a fresh bank of synthetic images (same counts); call it each epoch for new samples."""
        self._ensure_bank()
        if seed is not None:
            self.seed = seed
        self._generation += 1
        self._drawn = int(self._generation)
        if self.teacher is None:
            images, gen_labels = self._bank.generate(self.counts, self.seed)
            self.synthetic_images = self._resized(images)  # (S, C, H, W) uint8
            self.synthetic_targets = self._to_base(gen_labels)
        else:
            self._draw_with_teacher()

    def _resized(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images at the base samples' size (bilinear, antialiased) and channels (gray repeated,
        or RGB to ITU-R 601 luma)."""
        return match_images(images, self._raw_size, self._channels)

    def _to_base(self, gen_labels: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.ckpt_to_base[int(c)] for c in gen_labels], dtype=torch.int64)

    def _draw_with_teacher(self) -> None:
        """Candidates in rounds, labelled (and filtered) by the teacher, until each class has its count."""
        assert self.teacher is not None
        need = {c: n for c, n in self.counts.items() if n > 0}
        if not self._bank.conditional:  # one pool: the teacher decides the classes
            need = {0: sum(need.values())} if need else {}
        factor = 1.0 if self.min_confidence == 0 else 2.0
        width = max(self.ckpt_to_base.values(), default=0) + 1
        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        for r in range(MAX_TEACHER_ROUNDS):
            if not need:
                break
            ask = {c: math.ceil(n * factor) for c, n in need.items()}
            images, gen_labels = self._bank.generate(ask, self.seed + 104_729 * r)
            images = self._resized(images)
            logits = teacher_logits(self.teacher, images, len(self.class_names), self._bank.generator_device)
            keep, hard, soft = label_synthetic(
                logits, self._to_base(gen_labels), self.labels, self.min_confidence, self.temperature
            )
            for c in list(need):
                idx = torch.nonzero((gen_labels == c) & keep).flatten()[: need[c]]
                parts.append((images[idx], hard[idx], None if soft is None else soft[idx]))
                need[c] -= len(idx)
                if need[c] == 0:
                    del need[c]
            factor = min(2 * factor, MAX_OVERSAMPLING)  # bounded: a class the teacher rejects stays short
        if need:
            names = {
                self._bank.info.class_names[c] if self._bank.conditional else "any class": n for c, n in need.items()
            }
            warnings.warn(
                f"the teacher accepted too few synthetic images at min_confidence={self.min_confidence}: "
                f"{names} fewer than asked (per generator class); lower min_confidence for these classes",
                stacklevel=3,
            )
        self.synthetic_images = torch.cat([p[0] for p in parts]) if parts else torch.empty(0, dtype=torch.uint8)
        self.synthetic_targets = torch.cat([p[1] for p in parts]) if parts else torch.empty(0, dtype=torch.int64)
        if self.labels == "soft":
            soft = [p[2] for p in parts if p[2] is not None]
            self.synthetic_soft = torch.cat(soft) if soft else torch.empty(0, max(width, len(self.class_names)))

    def __len__(self) -> int:
        return self.n_real + len(self.synthetic_targets)

    @property
    def classes(self) -> list[str]:
        """Class names in label order, as ``ImageFolder.classes``."""
        return list(self.class_names)

    @property
    def class_to_idx(self) -> dict[str, int]:
        """``{class name: label}``, as ``ImageFolder.class_to_idx``."""
        return {name: i for i, name in enumerate(self.class_names)}

    @property
    def targets(self) -> list[int]:
        """Every item's label, real then synthetic, as ``ImageFolder.targets`` (with soft labels, a
        synthetic item's most probable class)."""
        return [int(t) for t in dataset_targets(self.base_ds)] + self.synthetic_targets.tolist()

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
        if self._drawn != int(self._generation):
            raise RuntimeError(
                "the synthetic images were drawn again (resample()) after this DataLoader's persistent "
                "workers copied the dataset, and they would go on serving the old ones: use "
                "persistent_workers=False (workers then start each epoch with the new images)"
            )
        if index < self.n_real:
            image, target = self.base_ds[index]
            if self.synthetic_soft is not None:
                target = F.one_hot(torch.tensor(int(target)), self.synthetic_soft.shape[1]).float()
        else:
            j = index - self.n_real
            image = to_raw(self.synthetic_images[j], self.raw_form, self._pil_mode)
            if self._plain_2d:  # the base items are (H, W): so are the synthetic ones
                image = image[..., 0] if self.raw_form == "numpy" else image[0]
            target = int(self.synthetic_targets[j]) if self.synthetic_soft is None else self.synthetic_soft[j]
        image = apply_transform(self.transform, image, self.pipeline)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_bank"] = None  # workers get the generated images, never the generator
        state["teacher"] = None  # nor the teacher
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
            f"    Synthetic labels: {self.labels}"
            + (f", min_confidence {self.min_confidence}" if self.min_confidence else "")
            + (f", temperature {self.temperature}" if self.labels == "soft" else ""),
            "    Per class (real + synthetic): "
            + ", ".join(f"{n}: {r} + {s}" for n, r, s in zip(self.class_names, per_class_real.tolist(), per_class_syn)),
        ]
        if self.transform is not None:
            lines.append(f"    Transform: {self.transform!r}".replace("\n", "\n    "))
        if self.target_transform is not None:
            lines.append(f"    Target transform: {self.target_transform!r}")
        return "\n".join(lines)
