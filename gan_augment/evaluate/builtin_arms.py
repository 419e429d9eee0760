"""The arms a user chooses between, one class per family, registered in the order of every table.

The experiments behind the published tables (other labellings of synthetic images, re-sampling, ...) are
arms of the same kind in ``benchmarks/lab_arms.py``; the benchmarks register them beside these.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..data import fill_classes
from ..io.classifier_record import build_network
from ..plugins import DiscriminatorFeatures, GANAugmentedDataset
from ..plugins.teacher import teacher_logits
from ..progress import Reporter
from ..train.ssl import train_ssl
from .classifier import ArrayDataset, train_classifier
from .imbalance import AdjustedLogits, class_prior
from .quality import generator_quality
from .registry import Arm, register

if TYPE_CHECKING:
    from .arms import SeedArms

Result = tuple[float, dict[str, Any]]


@dataclass(frozen=True)
class Baseline(Arm):
    """The seed's baseline classifier: the labeled images alone."""

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        return ctx.accuracy(ctx.baseline_classifier()), {}


@dataclass(frozen=True)
class RunDataset(Arm):
    """The user's network on the two-argument ``GANAugmentedDataset(base, run)`` of the default run (at its
    default synthetic share unless a ratio is given); ``unlabeled``/``fresh_passes`` as the dataset takes them."""

    unlabeled: bool = True
    fresh_passes: int | None = None

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        # The run was trained from images in memory, so it names no unlabeled folder for the dataset to read
        # again (what GANAugmentedDataset does for a run of folders): it is given the same images instead.
        kw: dict[str, Any] = {"unlabeled": ctx.split.unlabeled if self.unlabeled else False}
        if self.fresh_passes is not None:
            kw["fresh_passes"] = self.fresh_passes
        if ratio is not None:
            kw["synthetic_ratio"] = ratio
        ds = GANAugmentedDataset(ctx.base, ctx.default_run(), device=ctx.settings.device, seed=ctx.seed, **kw)
        extra = {
            "synthetic_ratio": ds.n_extra / max(1, len(ds)),  # (the records' names: the extra items' share)
            "synthetic": ds.n_extra,
            "pool": len(ds.pool or []),
        }
        return ctx.accuracy(ctx.train(ds)), extra


@dataclass(frozen=True)
class TeacherArm(Arm):
    """The default run's teacher itself, scored as the classifier."""

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        teacher = ctx.run_teacher()
        logits = teacher_logits(teacher, ctx.split.test_images, ctx.k, ctx.settings.device)
        return ctx.score(logits.argmax(1).numpy()), dict(teacher.metrics)


@dataclass(frozen=True)
class GanSamples(Arm):
    """Baseline + ``GANAugmentedDataset`` of a ``mode`` run at the synthetic ratio, labelled as :meth:`labels`
    says (the generator's class here); generator quality beside it where the arm says ``quality``."""

    mode: str = "per-class"

    def labels(self, ctx: SeedArms) -> dict[str, Any]:
        """How the dataset labels its synthetic images (``GANAugmentedDataset``'s keywords)."""
        return {}

    def fit(self, ctx: SeedArms, ds: GANAugmentedDataset, extra: dict[str, Any]) -> nn.Module:
        """The classifier trained on ``ds`` (what else it records goes into ``extra``)."""
        return ctx.train(ds)

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        s = ctx.settings
        ratio = s.synthetic_ratio if ratio is None else ratio
        run = ctx.gan_run(self.mode, f"gan-{self.mode}-seed{ctx.seed}")
        ds = GANAugmentedDataset(
            ctx.base,
            run,
            synthetic_ratio=ratio,
            device=s.device,
            seed=ctx.seed,
            filter_top=s.filter_top,
            **self.labels(ctx),
        )
        extra: dict[str, Any] = {"synthetic_ratio": ratio, "synthetic": len(ds) - ds.n_real}
        model = self.fit(ctx, ds, extra)
        if s.quality and self.quality:
            q = generator_quality(
                Path(ds.generator_ckpt), ctx.split, ctx.baseline_classifier(), s.classifier, s.device, s.flip, ctx.seed
            )
            extra.update(q)
        if s.filter_top is not None:
            extra["filter_top"] = s.filter_top
        return ctx.accuracy(model), extra


@dataclass(frozen=True)
class DFeatures(Arm):
    """Logistic regression on the discriminator features of an unconditional GAN."""

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        run = ctx.gan_run("unconditional", f"unconditional-seed{ctx.seed}")
        return ctx.linear_probe(DiscriminatorFeatures(run, device=str(ctx.settings.device))), {}


@dataclass(frozen=True)
class SemiSupervised(Arm):
    """The semi-supervised GAN's (averaged) discriminator as the classifier; with ``settings.ssl_eval_every``,
    its test accuracy along the way (the learning curve)."""

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        s = ctx.settings
        cfg = s.ssl.replace(seed=ctx.seed)
        result = train_ssl(ctx.gan_data(), cfg, s.device, 0.0, Reporter(quiet=True), ctx.accuracy, s.ssl_eval_every)
        model = build_network(result["state"]).to(s.device)
        extra = {"ssl_steps": result["metrics"]["steps"], "ssl_architecture": result["metrics"]["architecture"]}
        if result["curve"]:
            extra["curve"] = result["curve"]
        return ctx.accuracy(model), extra


@dataclass(frozen=True)
class LogitAdjust(Arm):
    """The logit-adjusted loss with the labels' prior (Menon et al. 2021, tau 1): the same classifier and steps."""

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        return ctx.accuracy(ctx.adjusted_classifier()), {}


@dataclass(frozen=True)
class PosthocAdjust(Arm):
    """The baseline's recipe without label smoothing (which caps the margins that the adjustment shifts; see
    ``train_classifier``), its logits minus log of the labels' prior. The record keeps the balanced accuracy
    before the adjustment (``unadjusted_balanced_accuracy``)."""

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        s = ctx.settings
        plain = dataclasses.replace(s.classifier, label_smoothing=0.0)
        model = train_classifier(ctx.base, ctx.channels, ctx.k, plain, s.device, ctx.seed, s.flip)
        ctx.accuracy(model)
        before = ctx.last_scores["balanced_accuracy"]
        adjusted = AdjustedLogits(model, class_prior(ctx.class_counts())).to(s.device)
        return ctx.accuracy(adjusted), {"unadjusted_balanced_accuracy": before}


@dataclass(frozen=True)
class PseudoBalance(Arm):
    """Real unlabeled images filling every class up to the largest: for each class it lacks, the pool images the
    teacher (``adjusted``: the logit-adjusted classifier) rates most likely of it, with its probabilities as
    targets. Rarest classes choose first; an image is used once."""

    adjusted: bool = True

    def run(self, ctx: SeedArms, ratio: float | None) -> Result:
        s, split = ctx.settings, ctx.split
        pool = ctx.pool_sample(self.name)
        probs = torch.softmax(teacher_logits(ctx.teacher(self.adjusted), pool, ctx.k, s.device) / s.temperature, 1)
        idx = fill_classes(probs, ctx.class_counts())
        targets = torch.cat([torch.nn.functional.one_hot(split.train_labels, ctx.k).float(), probs[idx]])
        images = torch.cat([split.train_images, pool[idx]])
        ds = ArrayDataset(images, targets.argmax(1), split.class_names, soft=targets)
        return ctx.accuracy(ctx.train(ds)), {"synthetic": len(idx)}


_DEFAULT = ("default",)
PACKAGE_ARMS: tuple[Arm, ...] = (
    Baseline("baseline", "the labeled images alone, classic augmentation", "train on your labels alone"),
    RunDataset(
        "default",
        "GANAugmentedDataset(base, run): synthetic and unlabeled images, labelled by the run's teacher",
        "GANAugmentedDataset(base, run) with the run `gan-augment fit LABELED UNLABELED` writes",
        gans=_DEFAULT,
        synthetic=True,
    ),
    TeacherArm(
        "teacher",
        "the run's teacher itself, scored as the classifier",
        "the run's teacher itself as the classifier (`gan-augment predict RUN IMAGES`)",
        gans=_DEFAULT,
        classifiers=0,
    ),
    RunDataset(
        "teacher-unlabeled",
        "the default without synthetic images (the control)",
        "GANAugmentedDataset(base, run, unlabeled=True, fresh_passes=0): the teacher's labels on your unlabeled "
        "images, no synthetic ones",
        needs_pool=True,
        gans=_DEFAULT,
        synthetic=True,
        fresh_passes=0,
    ),
    GanSamples(
        "gan-per-class",
        "synthetic images of a per-class run, the generator's class",
        "GANAugmentedDataset(base, run, labels='generator') with a per-class run",
        gans=("per-class",),
        synthetic=True,
        samples=True,
        quality=True,
    ),
    DFeatures(
        "d-features",
        "logistic regression on an unconditional GAN's discriminator features",
        "a linear model on discriminator features (`gan-augment classify`)",
        gans=("unconditional",),
        classifiers=0,
    ),
    SemiSupervised(
        "ssl",
        "the semi-supervised GAN's discriminator as the classifier",
        "the semi-supervised GAN as the classifier (`gan-augment classify --method ssl`)",
        classifiers=0,
    ),
    # For an imbalanced labeled set (evaluate adds them when LABELED is one).
    LogitAdjust(
        "logit-adjust",
        "the logit-adjusted loss (Menon et al. 2021), the labels' prior, no label smoothing",
        "train your classifier with logit_adjusted_loss(logits, y, class_prior(counts)) "
        "(gan_augment.evaluate.imbalance)",
        imbalance=True,
    ),
    PosthocAdjust(
        "posthoc-adjust",
        "the baseline without label smoothing, its logits minus the log of the labels' prior",
        "subtract log class_prior(counts) from your trained classifier's logits",
        imbalance=True,
    ),
    PseudoBalance(
        "pseudo-balance-la",
        "unlabeled images filling the rarer classes, the logit-adjusted classifier's probabilities",
        "train a classifier with logit_adjusted_loss, then your network on GANAugmentedDataset(base, run, "
        "balance=True, teacher=that classifier, unlabeled=your unlabeled images, fresh_passes=0)",
        needs_pool=True,
        imbalance=True,
    ),
)
register(*PACKAGE_ARMS)
