"""The experiments behind the published tables, as arms beside the package's own: importing this module
registers them (``limited_labels.py`` and ``long_tailed.py`` do), after the package's arms.

They were measured and did not win (docs/results.md, docs/results/archive.md): other labellings of synthetic
images and their real-image controls, the default run without its unlabeled images, the teacher's features,
a conditional GAN, and for an imbalanced labeled set re-sampling, re-weighting and ``balance=True`` synthetic
images. Each runs on a seed's :class:`~gan_augment.evaluate.SeedArms` as the package's arms do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Subset

from gan_augment.errors import UsageError
from gan_augment.evaluate import Arm, ArrayDataset, GanSamples, PseudoBalance, RunDataset, SeedArms, arm_names, register
from gan_augment.evaluate.classifier import Split, materialize, train_classifier
from gan_augment.evaluate.imbalance import balanced_indices, inverse_frequency_weights, rarest
from gan_augment.evaluate.quality import generator_quality
from gan_augment.io.rebuild import load_generator
from gan_augment.plugins import DiscriminatorFeatures, GANAugmentedDataset
from gan_augment.plugins.teacher import label_synthetic, teacher_logits
from gan_augment.sampling import sample
from gan_augment.seeds import QUALITY_SAMPLES

Result = tuple[float, dict[str, Any]]


def training_prior(dataset: Dataset, k: int) -> torch.Tensor:
    """The class frequencies of the targets a classifier trains on: hard labels counted, soft targets
    summed (a teacher's probabilities spread an image over classes), synthetic items included (a
    ``GANAugmentedDataset`` says: :meth:`~gan_augment.plugins.GANAugmentedDataset.class_prior`)."""
    if isinstance(dataset, GANAugmentedDataset):
        return dataset.class_prior().clamp_min(1e-8)
    _, targets = materialize(dataset)
    totals = targets.sum(0) if targets.ndim == 2 else torch.bincount(targets, minlength=k).double()
    return (totals / totals.sum()).float().clamp_min(1e-8)


def _train_adjusted(ctx: SeedArms, ds: Dataset, extra: dict[str, Any]) -> nn.Module:
    """The classifier on ``ds`` with the logit-adjusted loss and its targets' prior (Menon's), kept in ``extra``."""
    prior = training_prior(ds, ctx.k)
    extra["prior"] = [round(float(p), 4) for p in prior]
    return ctx.train(ds, prior=prior)


def nearest_distances(images: torch.Tensor, reference: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Each image's L2 distance (pixels in [0, 1]) to its nearest image of ``reference`` (both uint8 N, C, H, W)."""
    ref = reference.flatten(1).float() / 255
    return torch.cat(
        [
            torch.cdist(images[i : i + batch].flatten(1).float() / 255, ref).min(1).values
            for i in range(0, len(images), batch)
        ]
    )


def memorisation(run: Path, split: Split, device: torch.device, seed: int, n: int = 100) -> dict[str, list[float]]:
    """Does a run copy its few training images? Per class: the median distance of ``n`` synthetic images to
    their nearest training image of the class, over the median distance of the class's held-out real
    images to the same training images (``nn_ratio``: about 1, new images; near 0, copies), and the share
    of synthetic images nearer to a training image than every held-out real image is (``copies``)."""
    gen, _ = load_generator(run, device=device)
    k = len(split.class_names)
    labels = torch.arange(k).repeat_interleave(n)
    synth = sample(gen, len(labels), labels=labels, seed=QUALITY_SAMPLES + seed).cpu()
    ratio, copies = [], []
    for c in range(k):
        train = split.train_images[split.train_labels == c]
        held = split.test_images[split.test_labels == c][:500]
        if not len(train) or not len(held):
            ratio.append(float("nan"))
            copies.append(float("nan"))
            continue
        d_syn, d_real = nearest_distances(synth[labels == c], train), nearest_distances(held, train)
        ratio.append(round(float(d_syn.median() / d_real.median()), 4))
        copies.append(round(float((d_syn < d_real.min()).float().mean()), 4))
    return {"nn_ratio_per_class": ratio, "copies_per_class": copies}


@dataclass(frozen=True)
class TeacherFeatures(Arm):
    """Logistic regression on the default run's teacher's hidden layers."""

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        features = DiscriminatorFeatures(ctx.default_run(), device=str(ctx.settings.device), source="teacher")
        return ctx.linear_probe(features), {}


@dataclass(frozen=True)
class TeacherLabelled(GanSamples):
    """Synthetic images labelled by the seed's baseline classifier: ``labels`` (``teacher``: its hard label
    where its confidence reaches ``min_confidence``; ``soft``: its probabilities; ``generator``: the generator's
    class, kept where the teacher agrees), ``pretrained``: the per-class run's shared pre-trained generator."""

    labelling: str = "soft"
    pretrained: bool = False

    def labels(self, ctx: SeedArms) -> dict[str, Any]:
        s = ctx.settings
        kw: dict[str, Any] = {"labels": self.labelling, "teacher": ctx.teacher()}
        if self.labelling == "soft":
            return {**kw, "temperature": s.temperature, "pretrained": self.pretrained}
        return {**kw, "min_confidence": s.min_confidence}


@dataclass(frozen=True)
class SyntheticFirst(TeacherLabelled):
    """Half the classifier's steps on the teacher-labelled synthetic images alone, then half on the real ones
    (the same step count as every arm)."""

    def fit(self, ctx: SeedArms, ds: GANAugmentedDataset, extra: dict[str, Any]) -> nn.Module:
        s = ctx.settings
        half = dataclasses.replace(s.classifier, steps=max(1, s.classifier.steps // 2))
        synthetic = Subset(ds, range(ds.n_real, len(ds))) if len(ds) > ds.n_real else ctx.base  # none kept
        first = train_classifier(synthetic, ctx.channels, ctx.k, half, s.device, ctx.seed, s.flip)
        return train_classifier(ctx.base, ctx.channels, ctx.k, half, s.device, ctx.seed, s.flip, init=first)


@dataclass(frozen=True)
class AdjustedSamples(GanSamples):
    """A sample arm trained with the logit-adjusted loss (the prior of its targets)."""

    def fit(self, ctx: SeedArms, ds: GANAugmentedDataset, extra: dict[str, Any]) -> nn.Module:
        return _train_adjusted(ctx, ds, extra)


@dataclass(frozen=True)
class RealExtra(Arm):
    """The controls for the teacher arms: real images instead of synthetic ones, as many as the sample arms
    add, labelled by the same teacher. ``pool``: unlabeled images (else the labeled ones again, no new image);
    ``hard``: the teacher's label where its confidence reaches ``min_confidence`` (else its probabilities)."""

    from_pool: bool = True
    hard: bool = False

    def _pool(self, ctx: SeedArms, want: int) -> torch.Tensor:
        split, g = ctx.split, torch.Generator().manual_seed(ctx.seed)
        n_real = len(split.train_labels)
        if not self.from_pool:
            return split.train_images[torch.randperm(n_real, generator=g).repeat(want // max(1, n_real) + 1)]
        if split.unlabeled is None or not len(split.unlabeled):
            raise UsageError(f"the {self.name} arm needs unlabeled images")
        return split.unlabeled[torch.randperm(len(split.unlabeled), generator=g)[: max(want * 8, 1024)]]

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        s, split = ctx.settings, ctx.split
        ratio = s.synthetic_ratio if ratio is None else ratio
        want = int(round(ratio * len(split.train_labels) / (1 - ratio)))
        pool = self._pool(ctx, want)
        logits = teacher_logits(ctx.teacher(), pool, ctx.k, s.device)
        labelling, threshold = ("teacher", s.min_confidence) if self.hard else ("soft", 0.0)
        zeros = torch.zeros(len(pool), dtype=torch.int64)
        keep, hard, soft = label_synthetic(logits, zeros, labelling, threshold, s.temperature)
        idx = torch.nonzero(keep).flatten()[:want]
        images = torch.cat([split.train_images, pool[idx]])
        if soft is None:
            ds = ArrayDataset(images, torch.cat([split.train_labels, hard[idx]]), split.class_names)
        else:
            targets = torch.cat([F.one_hot(split.train_labels, soft.shape[1]).float(), soft[idx]])
            ds = ArrayDataset(images, targets.argmax(1), split.class_names, soft=targets)
        return ctx.accuracy(ctx.train(ds)), {"synthetic_ratio": ratio, "synthetic": len(idx)}


@dataclass(frozen=True)
class ClassBalanced(Arm):
    """Class-balanced re-sampling: every class repeated up to the largest."""

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        split = ctx.split
        idx = torch.from_numpy(balanced_indices(split.train_labels.numpy(), np.random.default_rng(ctx.seed)))
        ds = ArrayDataset(split.train_images[idx], split.train_labels[idx], split.class_names)
        return ctx.accuracy(ctx.train(ds)), {"resampled": len(idx)}


@dataclass(frozen=True)
class Reweight(Arm):
    """Cross-entropy weighted by inverse class frequency."""

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        return ctx.accuracy(ctx.train(ctx.base, class_weight=inverse_frequency_weights(ctx.class_counts()))), {}


@dataclass(frozen=True)
class GanBalance(Arm):
    """Every class brought up to the largest with a per-class run's images (``balance=True``): the generator's
    class, or (``soft``) the probabilities of the seed's baseline (``adjusted``: of the logit-adjusted
    classifier), drawn afresh on every access; ``adjust_loss``: the logit-adjusted loss with the prior of the
    targets. With ``quality``, the run's CAS per class and memorisation, and their means over the rarest three."""

    soft: bool = False
    adjusted: bool = False
    adjust_loss: bool = False

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        s = ctx.settings
        run = ctx.gan_run("per-class", f"gan-per-class-seed{ctx.seed}")
        kw: dict[str, Any] = {"labels": "generator"}  # asked for: the arm measures them
        if self.soft:
            kw = {"labels": "soft", "teacher": ctx.teacher(self.adjusted), "temperature": s.temperature}
        ds = GANAugmentedDataset(ctx.base, run, balance=True, device=s.device, seed=ctx.seed, **kw)
        extra: dict[str, Any] = {"synthetic": len(ds) - ds.n_real}
        model = _train_adjusted(ctx, ds, extra) if self.adjust_loss else ctx.train(ds)
        if self.quality and s.quality:
            extra.update(rare_quality(ctx, Path(ds.generator_ckpt)))
        return ctx.accuracy(model), extra


def rare_quality(ctx: SeedArms, run: Path) -> dict[str, Any]:
    """The per-class run's CAS per class and memorisation, and their means over the rarest three classes."""
    s = ctx.settings
    out = generator_quality(run, ctx.split, ctx.baseline_classifier(), s.classifier, s.device, s.flip, ctx.seed)
    out.update(memorisation(run, ctx.split, s.device, ctx.seed))
    rare = rarest(ctx.class_counts())
    for key, name in (("cas_per_class", "cas_rare"), ("nn_ratio_per_class", "nn_ratio_rare")):
        values = [out[key][c] for c in rare if out[key][c] == out[key][c]]
        out[name] = float(np.mean(values)) if values else float("nan")
    return out


@dataclass(frozen=True)
class DatasetBalance(Arm):
    """``pseudo-balance-la`` in one call: ``GANAugmentedDataset(base, run, balance=True, teacher=...,
    unlabeled=pool, fresh_passes=0)``: the pool images the teacher rates likeliest for each class it lacks
    (``fill_classes``), each extra item one of them at random, with its probabilities."""

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        s = ctx.settings
        pool = ctx.pool_sample(self.name)
        run = ctx.gan_run("per-class", f"gan-per-class-seed{ctx.seed}")
        ds = GANAugmentedDataset(
            ctx.base,
            run,
            balance=True,
            teacher=ctx.teacher(adjusted=True),
            unlabeled=pool,
            fresh_passes=0,
            device=s.device,
            seed=ctx.seed,
        )
        return ctx.accuracy(ctx.train(ds)), {"synthetic": len(ds) - ds.n_real, "pool": len(ds.pool or [])}


PER_CLASS = ("per-class",)
DEFAULT = ("default",)
SAMPLES = {"gans": PER_CLASS, "synthetic": True, "samples": True}
TAIL = {"imbalance": True}
BALANCE = {"gans": PER_CLASS, "samples": True, "imbalance": True}


def _teacher_labelled() -> tuple[Arm, ...]:
    return (
        TeacherLabelled(
            "gan-teacher",
            "synthetic images, the teacher's hard label where it is confident",
            labelling="teacher",
            **SAMPLES,
        ),
        TeacherLabelled(
            "gan-soft",
            "synthetic images, the teacher's probabilities",
            "your classifier's probabilities on a per-class run's images as their targets",
            **SAMPLES,
        ),
        TeacherLabelled(
            "gan-agree",
            "synthetic images where the teacher agrees with the generator's class",
            labelling="generator",
            **SAMPLES,
        ),
        SyntheticFirst(
            "gan-pretrain",
            "pre-training on teacher-labelled synthetic images, then the real ones",
            labelling="teacher",
            **SAMPLES,
        ),
        TeacherLabelled(
            "gan-pretrained-soft",
            "the shared pre-trained generator's images, the teacher's probabilities",
            pretrained=True,
            needs_pool=True,
            **SAMPLES,
        ),
        RealExtra(
            "pseudo-label",
            "unlabeled images, the teacher's hard label where it is confident",
            "your classifier's confident labels on the unlabeled images as extra targets",
            needs_pool=True,
            synthetic=True,
            hard=True,
        ),
        RealExtra(
            "pseudo-soft",
            "unlabeled images, the teacher's probabilities",
            "your classifier's probabilities on the unlabeled images as extra targets",
            needs_pool=True,
            synthetic=True,
        ),
        RealExtra(
            "distill-real", "the labeled images again, the teacher's probabilities", synthetic=True, from_pool=False
        ),
    )


def _imbalanced() -> tuple[Arm, ...]:
    return (
        ClassBalanced(
            "class-balanced",
            "class-balanced re-sampling: every class repeated up to the largest",
            "re-sample your labeled images so that every class comes as often",
            **TAIL,
        ),
        Reweight(
            "reweight",
            "cross-entropy weighted by inverse class frequency",
            "weight your loss by inverse_frequency_weights(counts)",
            **TAIL,
        ),
        GanBalance(
            "gan-balance",
            "balance=True: every class filled to the largest with a per-class run's images, the generator's class",
            "GANAugmentedDataset(base, run, balance=True, labels='generator')",
            quality=True,
            **BALANCE,
        ),
        GanBalance(
            "gan-balance-soft",
            "balance=True, the teacher's probabilities",
            "GANAugmentedDataset(base, run, balance=True, teacher=your_classifier)",
            soft=True,
            **BALANCE,
        ),
        GanBalance(
            "gan-balance-soft+logit-adjust",
            "gan-balance-soft with the logit-adjusted loss (the prior of its targets, synthetic ones included)",
            "GANAugmentedDataset(base, run, balance=True, teacher=your_classifier), trained with "
            "logit_adjusted_loss and the dataset's class_prior()",
            soft=True,
            adjust_loss=True,
            **BALANCE,
        ),
        GanBalance(
            "gan-balance-soft-la",
            "balance=True, the probabilities of the logit-adjusted classifier (a teacher that weighs classes alike)",
            "GANAugmentedDataset(base, run, balance=True, teacher=a classifier trained with logit_adjusted_loss)",
            soft=True,
            adjusted=True,
            **BALANCE,
        ),
        GanBalance(
            "gan-balance-soft-la+logit-adjust",
            "gan-balance-soft-la with the logit-adjusted loss (the prior of its targets)",
            soft=True,
            adjusted=True,
            adjust_loss=True,
            **BALANCE,
        ),
        AdjustedSamples(
            "gan-per-class+logit-adjust",
            "gan-per-class (evenly over the classes) with the logit-adjusted loss (the prior of its targets)",
            **SAMPLES,
            imbalance=True,
        ),
        PseudoBalance(
            "pseudo-balance",
            "the control of gan-balance-soft: the unlabeled images the teacher rates likeliest of each class",
            "your classifier's probabilities on the unlabeled images it rates likeliest for each class",
            needs_pool=True,
            adjusted=False,
            **TAIL,
        ),
        DatasetBalance(
            "dataset-balance-la",
            "pseudo-balance-la in one call: GANAugmentedDataset(base, run, balance=True, teacher=, "
            "unlabeled=, fresh_passes=0)",
            "GANAugmentedDataset(base, run, balance=True, teacher=a "
            "classifier trained with logit_adjusted_loss, unlabeled=your unlabeled images, fresh_passes=0)",
            gans=PER_CLASS,
            needs_pool=True,
            **TAIL,
        ),
    )


register(
    RunDataset(
        "default-synthetic",
        "the default without the unlabeled images (unlabeled=False)",
        "GANAugmentedDataset(base, run, unlabeled=False) with the run of `gan-augment fit`",
        gans=DEFAULT,
        synthetic=True,
        unlabeled=False,
    ),
    TeacherFeatures(
        "teacher-features",
        "logistic regression on the teacher's hidden layers",
        "a linear model on the run's teacher's features (`gan-augment features RUN`)",
        gans=DEFAULT,
        classifiers=0,
    ),
    GanSamples(
        "gan-conditional",
        "synthetic images of a conditional run, the generator's class",
        gans=("conditional",),
        synthetic=True,
        samples=True,
        quality=True,
        mode="conditional",
    ),
    *_teacher_labelled(),
    *_imbalanced(),
)

# The long-tailed comparison: cross-entropy, then every arm for an imbalanced set (the package's and these).
LONG_TAILED_ARMS = ("baseline", *arm_names(imbalance=True))
