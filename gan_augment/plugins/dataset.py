"""``GANAugmentedDataset``: an existing labeled dataset with synthetic samples of the right classes mixed in."""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..io.images import RawForm
from ..io.record import load_run
from .bank import SyntheticBank, dataset_targets, synthetic_counts
from .extra import (
    DEFAULT_SYNTHETIC_RATIO,
    DEFAULT_TEACHER_RATIO,
    FRESH_PASSES,
    ExtraPool,
    Labelled,
    check_extra,
    check_sizing,
    check_unlabeled_images,
    fresh_counts,
    label_pool,
    run_names_unlabeled,
    run_unlabeled_images,
    warn_balance_by_generator,
)
from .pipelines import PipelineKind, apply_transform, check_pipeline
from .source import ItemForm, Labelling, SyntheticSource, check_base_items
from .teacher import LabelSource, Teacher

__all__ = ["DEFAULT_SYNTHETIC_RATIO", "DEFAULT_TEACHER_RATIO", "GANAugmentedDataset"]


class GANAugmentedDataset(Dataset):
    """A labeled dataset with synthetic samples from a ``gan-augment fit`` run mixed in.

    Items ``0 .. n_real-1`` are the base dataset's; the rest (``n_extra`` of them) are extra
    items: synthetic images, and with a pool of unlabeled images (below) those too; ``n_synthetic``
    says how many of them are synthetic. With a run that carries its teacher (``fit`` trains one by
    default), ``GANAugmentedDataset(base_ds, run)``:

    - labels the synthetic images with the teacher's probabilities (``labels="soft"``): every target
      is then a float vector of the base dataset's width (real items one-hot), which
      ``F.cross_entropy(model(x), y)`` takes as it is; for a training accuracy compare
      ``logits.argmax(1)`` with ``y.argmax(1)``;
    - draws each extra item fresh on every access (``fresh=True``): a random image from a pool of
      teacher-labelled images, from torch's random number generator as a random transform would, so
      every pass of a plain ``DataLoader`` sees other images (worker processes too), and
      ``torch.manual_seed`` repeats them. The pool holds ``fresh_passes`` passes' worth of synthetic
      images (at most ``FRESH_MAX_IMAGES``);
    - puts the run's unlabeled images in that pool too (``unlabeled``), labelled by the same teacher;
    - sizes the extra part at ``DEFAULT_TEACHER_RATIO`` of the items.

    Without a teacher (a run trained with ``--teacher none``, or ``labels="generator"``), synthetic
    items are labelled with their generator's class, drawn once at construction (``resample()``
    draws them again) and sized at ``DEFAULT_SYNTHETIC_RATIO``: that costs accuracy in every
    measurement so far (docs/results_notes.md).

    Synthetic images are generated in batches on ``device`` into a bank of uint8 images, so DataLoader
    workers never run the generator. They come in the same raw form as the base samples (PIL images
    for torchvision image datasets), and ``transform`` / ``target_transform`` are applied to real and
    extra items alike. A base dataset with its own transform is refused (build it without one and
    pass ``transform=`` here), so real and synthetic items always share one type, range and pipeline; so is
    one whose images are floats outside [0, 1] (normalised already) or items that are not ``(image, label)``.
    Synthetic images are resized (bilinear, antialiased) to the size of the base dataset's first sample.

    The dataset is the base dataset composed with a :class:`~gan_augment.plugins.source.SyntheticSource`
    (``ds.source``): the run's generator (a bank) and a labeller (:class:`~gan_augment.plugins.source.Labelling`),
    in the base items' form. The parameters come in the signature's order, by the part they configure:
    how many (``synthetic_ratio`` to ``class_mapping``), the labeller (``labels`` to ``temperature``),
    the drawing (``pretrained`` to ``batch_size``), the items (``transform`` to ``output_format``); all
    but the first three are keywords.

    Args:
        base_ds: Map-style dataset returning ``(image, label)``: ``ImageFolder``, ``CIFAR10``,
            ``MNIST``, a ``Subset`` of one, or your own.
        generator_ckpt: Run directory or ``checkpoint.pt`` of a per-class or conditional run (or of
            an unconditional run, whose images a teacher labels).
        synthetic_ratio: Fraction of extra items in the mixed dataset, in [0, 1); split as evenly
            as possible over ``classes``. With none of the three sizings given: ``DEFAULT_TEACHER_RATIO``
            with the run's teacher, else ``DEFAULT_SYNTHETIC_RATIO``.
        per_class: Synthetic images per class (instead of ``synthetic_ratio``).
        balance: Bring every class up to the largest class's count (instead of the two above). Give it a
            teacher (or a run with one): labelled by the generator, the rare classes' targets come mostly
            from models of a handful of images, the worst method on long-tailed MNIST and CIFAR-10
            (docs/results/long_tailed.md); a warning says so.
        classes: Only these classes (names) get synthetic images; default all that map.
        class_mapping: ``{generator class name: base label}``; default: match ``base_ds.classes``
            by name.
        labels: The target of a synthetic image: ``"generator"`` (the class it was generated for),
            ``"teacher"`` (the teacher's top class) or ``"soft"`` (the teacher's probabilities at
            ``temperature``, a float vector; real items then get one-hot vectors, so every target
            is a float tensor of the teacher's width, as ``F.cross_entropy`` takes them). Default:
            ``"soft"`` when there is a teacher (given, or the run's), else ``"generator"``.
        teacher: A classifier trained on the real labels: called on float batches (B, C, H, W) in
            [0, 1] at the base samples' size, it returns logits (B, K) over the base labels. An
            ``nn.Module`` runs where its parameters are, in the mode it is in (put it in eval mode).
            Default: the run's own teacher (``teacher.pt``), when the labels need one and it has one.
        min_confidence: Keep a synthetic image only if the teacher gives its label (the generator's
            class for ``labels="generator"``: classifier-agreement filtering) at least this
            probability; candidates are drawn until every class has its count (warned if not).
        temperature: Softens the ``"soft"`` targets (confidences are read at temperature 1).
        pretrained: Draw from the run's shared generator as it was at the end of pre-training on
            every image, labeled and unlabeled (per-class runs keep it): unconditional, so it needs
            a teacher's labels; its images follow the whole pool, not the few labeled images the
            per-class generators were fine-tuned on. The sizing counts the same total.
        fresh: Draw every extra item anew on each access (see above). Default: on when a teacher
            labels the images, off for the generator's labels.
        fresh_passes: Synthetic images in the fresh pool per extra item; 0 leaves them out, so the
            extra items are ``unlabeled`` images alone (a control: the teacher's labels on real images).
        unlabeled: Add unlabeled images to the fresh pool, labelled by the same teacher: ``True``
            for the folder the run was trained with (decoded again), uint8 images (N, C, H, W), or
            ``False``. Default: the run's folder when the run's teacher labels and the run names one.
        filter_top: Keep only the top fraction of candidates by discriminator score (None: off).
        device: Where the generator and the run's teacher run (default CUDA when available).
        seed: Seed of the synthetic samples; the same seed gives the same bank.
        batch_size: Images per generator forward pass.
        transform: Applied to every image (torchvision v2 pipeline, any callable, or an
            albumentations ``Compose``).
        target_transform: Applied to every label.
        pipeline: ``auto`` (detect albumentations), ``torchvision`` or ``albumentations``.
        output_format: Raw form of synthetic images: ``auto`` (like ``base_ds[0]``), ``pil``,
            ``numpy`` (uint8 HWC), ``tensor`` (uint8 CHW) or ``float`` (CHW in [0, 1]).
    """

    pool: ExtraPool | None = None  # fresh items are drawn from it (set by resample())

    def __init__(
        self,
        base_ds: Dataset,
        generator_ckpt: str | os.PathLike[str],
        synthetic_ratio: float | None = None,
        *,
        per_class: int | None = None,
        balance: bool = False,
        classes: Sequence[str] | None = None,
        class_mapping: Mapping[str, int] | None = None,
        labels: LabelSource | None = None,
        teacher: Teacher | None = None,
        min_confidence: float = 0.0,
        temperature: float = 1.0,
        pretrained: bool = False,
        fresh: bool | None = None,
        fresh_passes: int = FRESH_PASSES,
        unlabeled: bool | torch.Tensor | None = None,
        filter_top: float | None = None,
        device: str | torch.device | None = None,
        seed: int = 0,
        batch_size: int = 1024,
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
        pipeline: PipelineKind = "auto",
        output_format: Literal["auto", "pil", "numpy", "tensor", "float"] = "auto",
    ) -> None:
        run = load_run(generator_ckpt)  # the run's record, read once: its generator, folders, teacher's plan
        labelling, run_teacher = Labelling.for_run(run, generator_ckpt, labels, teacher, min_confidence, temperature)
        synthetic_ratio = check_sizing(synthetic_ratio, per_class, balance, batch_size, run_teacher is not None)
        warn_balance_by_generator(balance, labels, labelling.teacher)
        by_teacher = labelling.labels != "generator"
        self.fresh = by_teacher if fresh is None else bool(fresh)  # how extra items are drawn
        bank = SyntheticBank(generator_ckpt, device, batch_size, filter_top, pretrained, by_teacher, run)
        self.generator_ckpt, self._sources = str(generator_ckpt), run.data  # the folders the run names
        if unlabeled is None:  # the run's own unlabeled images, when its teacher labels and its folder is named
            unlabeled = self.fresh and run_teacher is not None and run_names_unlabeled(run.data)
        check_extra(self.fresh, fresh_passes, unlabeled, labelling.labels)
        check_pipeline(base_ds, pipeline)
        self.base_ds, self.seed = base_ds, seed  # the real items, and (below) what every item goes through
        self.transform, self.target_transform, self.pipeline = transform, target_transform, pipeline
        form = ItemForm(check_base_items(base_ds), output_format, bank.info.image_size)  # items' form and range
        self._base_targets = targets = dataset_targets(base_ds)  # once: without ``targets``, it decodes every item
        self.source = SyntheticSource.for_base(bank, labelling, form, base_ds, targets, class_mapping, classes, balance)
        self.counts = synthetic_counts(targets, self.source.ckpt_to_base, synthetic_ratio, per_class, balance)
        self._bank_counts = fresh_counts(self.counts, fresh_passes) if self.fresh else self.counts
        form.check(self._bank_counts, bank.info.channels)
        self._generation = torch.zeros(1, dtype=torch.int64).share_memory_()  # resample() bumps; stale workers refuse
        self._unlabeled = self._label_unlabeled(unlabeled, balance)
        self.resample(seed)

    # ---------------------------------------------------------------- the parts' settings, read from them
    @property
    def n_real(self) -> int:
        """How many items are the base dataset's (items ``0 .. n_real-1``)."""
        return len(self._base_targets)

    @property
    def labels(self) -> LabelSource:
        """How synthetic images are labelled: ``generator``, ``teacher`` or ``soft``."""
        return self.source.labelling.labels

    @property
    def teacher(self) -> Teacher | None:
        """The labeller's teacher (None: the generator's class; and in a DataLoader worker's copy)."""
        return self.source.labelling.teacher

    @property
    def min_confidence(self) -> float:
        return self.source.labelling.min_confidence

    @property
    def temperature(self) -> float:
        return self.source.labelling.temperature

    @property
    def ckpt_to_base(self) -> dict[int, int]:
        """``{generator class: base label}`` of the classes that get synthetic images."""
        return self.source.ckpt_to_base

    @property
    def class_names(self) -> list[str]:
        return self.source.class_names

    @property
    def raw_form(self) -> RawForm:
        """The raw form of every item (``pil``, ``numpy``, ``tensor`` or ``float``)."""
        return self.source.form.raw_form

    def _label_unlabeled(self, unlabeled: bool | torch.Tensor | None, balance: bool) -> Labelled | None:
        """The unlabeled images at the base items' size and channels, with the teacher's hard and soft labels;
        with ``balance``, only those that fill each class up to the largest (``fill_classes``)."""
        if unlabeled is None or unlabeled is False:
            return None
        if unlabeled is True:
            assert self.source.bank is not None
            info = self.source.bank.info
            images = run_unlabeled_images(self.generator_ckpt, self._sources, info.image_size, info.channels)
        else:
            images = check_unlabeled_images(unlabeled)
        return label_pool(self.source, images, self._base_targets if balance else None)

    def resample(self, seed: int | None = None) -> None:
        """Draw a fresh bank of synthetic images (same counts). Fresh items need no call: each access
        draws anew; without them, call it each epoch for new samples."""
        if seed is not None:
            self.seed = seed
        images, hard, soft = self.source.draw(self._bank_counts, self.seed)
        self._generation += 1
        self._drawn = int(self._generation)
        self.synthetic_images, self.synthetic_targets = images, hard  # (S, C, H, W) uint8, (S,)
        self.synthetic_soft: torch.Tensor | None = soft  # (S, K) float targets when labels="soft"
        self.n_extra = len(self.synthetic_targets)
        if self.fresh:
            synthetic = (self.synthetic_images, self.synthetic_targets, self.synthetic_soft)
            self.pool = ExtraPool.of([synthetic] + ([self._unlabeled] if self._unlabeled else []))
            self.n_extra = sum(self.counts.values()) if len(self.pool) else 0  # none kept: nothing to draw

    @property
    def n_synthetic(self) -> int:
        """Extra items that are synthetic images: all of them, or (fresh items drawn from a pool that holds
        unlabeled images too) as many as the pool's share of synthetic images gives on average per pass."""
        if self.pool is None or not len(self.pool):
            return self.n_extra
        return round(self.n_extra * len(self.synthetic_targets) / len(self.pool))

    def __len__(self) -> int:
        return self.n_real + self.n_extra

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
        synthetic item's most probable class; for fresh items, whose image is drawn on access, those
        of the first pool images: the pool's mix of classes)."""
        extra = self.pool.hard[: self.n_extra] if self.pool is not None else self.synthetic_targets
        return list(self._base_targets) + extra.tolist()

    def class_prior(self) -> torch.Tensor:
        """The class frequencies (K,) of the items' targets, real and extra: a soft target spread over its
        classes, fresh items as the pool's mix. What ``logit_adjusted_loss`` takes as ``prior`` to train on
        this dataset with logit adjustment (:mod:`gan_augment.evaluate.imbalance`)."""
        soft = self.pool.soft if self.pool is not None else self.synthetic_soft
        hard = self.pool.hard if self.pool is not None else self.synthetic_targets
        k = int(soft.shape[1]) if soft is not None else len(self.class_names)
        real = torch.bincount(torch.as_tensor(self._base_targets, dtype=torch.int64), minlength=k).double()
        if not len(hard):
            extra = torch.zeros(k, dtype=torch.float64)
        elif soft is not None:
            extra = soft.double().mean(0) * self.n_extra
        else:
            extra = torch.bincount(hard, minlength=k).double() / len(hard) * self.n_extra
        total = real + extra
        return (total / total.sum()).float()

    def is_extra(self, index: int) -> bool:
        """Whether item ``index`` is an extra item (not one of the base dataset's): a synthetic image, or
        (fresh items from a pool with unlabeled images) whichever image the pool gives on that access."""
        if index < 0:
            index += len(self)
        return index >= self.n_real

    @property
    def extra_mask(self) -> torch.Tensor:
        """Boolean (len(self),): True where the item is an extra item."""
        mask = torch.zeros(len(self), dtype=torch.bool)
        mask[self.n_real :] = True
        return mask

    def is_synthetic(self, index: int) -> bool:
        """Deprecated: :meth:`is_extra` (an extra item may be an unlabeled image)."""
        warnings.warn("is_synthetic() is is_extra(): an extra item may be an unlabeled image", DeprecationWarning, 2)
        return self.is_extra(index)

    @property
    def synthetic_mask(self) -> torch.Tensor:
        """Deprecated: :attr:`extra_mask` (an extra item may be an unlabeled image)."""
        warnings.warn("synthetic_mask is extra_mask: an extra item may be an unlabeled image", DeprecationWarning, 2)
        return self.extra_mask

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
            image, target = self._extra_item(index - self.n_real)
        image = apply_transform(self.transform, image, self.pipeline)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def _extra_item(self, j: int) -> tuple[Any, Any]:
        """Extra item ``j``: synthetic image j, or (fresh items) a random image of the pool; raw form."""
        if self.pool is not None:
            k = self.pool.draw()
            image = self.pool.images[k]
            target = int(self.pool.hard[k]) if self.pool.soft is None else self.pool.soft[k]
        else:
            image = self.synthetic_images[j]
            target = int(self.synthetic_targets[j]) if self.synthetic_soft is None else self.synthetic_soft[j]
        return self.source.form.item(image), target

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["source"] = self.source.detached()  # workers get the generated images, never the generator or teacher
        return state

    def __repr__(self) -> str:
        k = len(self.class_names)
        per_class_real = np.bincount(np.asarray(self._base_targets, dtype=np.int64), minlength=k).tolist()
        if self.pool is None:  # the extra items are the bank's images, one each
            per_class_extra = [str(n) for n in torch.bincount(self.synthetic_targets, minlength=k).tolist()]
        else:  # drawn at random from the pool on each access: the pool's mix of labels, scaled to the items
            share = torch.bincount(self.pool.hard, minlength=k).double() / max(len(self.pool), 1)
            per_class_extra = [f"~{round(float(x) * self.n_extra)}" for x in share]
        lines = [
            f"Dataset {type(self).__name__}",
            f"    Number of datapoints: {len(self)}",
            f"    Real: {self.n_real}, extra: {self.n_extra}"
            + (f" (each drawn fresh from a pool of {len(self.pool)} images)" if self.pool is not None else ""),
            f"    Generator: {self.generator_ckpt}",
            f"    Synthetic labels: {self.labels}"
            + (f", min_confidence {self.min_confidence}" if self.min_confidence else "")
            + (f", temperature {self.temperature}" if self.labels == "soft" else ""),
            "    Per class (real + extra items): "
            + ", ".join(f"{n}: {r} + {e}" for n, r, e in zip(self.class_names, per_class_real, per_class_extra)),
        ]
        if self.transform is not None:
            lines.append(f"    Transform: {self.transform!r}".replace("\n", "\n    "))
        if self.target_transform is not None:
            lines.append(f"    Target transform: {self.target_transform!r}")
        return "\n".join(lines)
