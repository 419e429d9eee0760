"""The arms for an imbalanced labeled set: re-sampling, re-weighting and logit adjustment without a GAN,
``balance=True`` synthetic images, and their real-image control. A part of
:class:`~gan_augment.evaluate.arms.SeedArms`, which supplies the split, the seed's baseline and its runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data import fill_classes
from ..errors import UsageError
from ..plugins import GANAugmentedDataset
from ..plugins.teacher import teacher_logits
from .classifier import ArrayDataset, Split, UnitInput, materialize, train_classifier
from .imbalance import adjust_logits, balanced_indices, class_prior, inverse_frequency_weights, rarest
from .quality import generator_quality, memorisation

ADJUSTED = "+logit-adjust"  # the suffix of an arm trained with the logit-adjusted loss


def training_prior(dataset: Dataset, k: int) -> torch.Tensor:
    """The class frequencies of the targets a classifier trains on: hard labels counted, soft targets
    summed (a teacher's probabilities spread an image over classes), synthetic items included (a
    ``GANAugmentedDataset`` says: :meth:`~gan_augment.plugins.GANAugmentedDataset.class_prior`)."""
    if isinstance(dataset, GANAugmentedDataset):
        return dataset.class_prior().clamp_min(1e-8)
    _, targets = materialize(dataset)
    totals = targets.sum(0) if targets.ndim == 2 else torch.bincount(targets, minlength=k).double()
    return (totals / totals.sum()).float().clamp_min(1e-8)


class AdjustedLogits(nn.Module):
    """Post-hoc logit adjustment of a trained classifier: its logits minus ``log prior``."""

    def __init__(self, model: nn.Module, prior: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("prior", prior.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adjust_logits(self.model(x), self.prior)


class ImbalanceArms:
    """The imbalanced-set runners (see the registry); each returns (accuracy, extra), as every runner does."""

    split: Split
    seed: int
    k: int
    channels: int
    base: ArrayDataset
    _scores: dict[str, Any]
    settings: Any
    gan_run: Callable[..., Path]
    teacher: Callable[[], nn.Module]
    _adjusted: nn.Module | None
    baseline_classifier: Callable[[], nn.Module]
    _train: Callable[..., nn.Module]
    _accuracy: Callable[[nn.Module], float]

    def class_counts(self) -> list[int]:
        """Labeled images per class."""
        return np.bincount(self.split.train_labels.numpy(), minlength=self.k).tolist()

    def adjusted_classifier(self) -> nn.Module:
        """The seed's classifier trained with the logit-adjusted loss (the ``logit-adjust`` arm's model),
        trained once by whichever arm needs it first."""
        if self._adjusted is None:
            self._adjusted = self._train(self.base, prior=class_prior(self.class_counts()))
        return self._adjusted

    def arm_teacher(self, arm: str) -> nn.Module:
        """The teacher of an imbalanced-set arm: the seed's baseline, or (arms named ``…-la``) the
        logit-adjusted classifier, whose plain logits weigh every class alike (the baseline's gave the
        rarest CIFAR-10-LT classes 0% recall, so its labels sent their images to the frequent classes)."""
        if arm.removesuffix(ADJUSTED).endswith("-la"):
            return UnitInput(self.adjusted_classifier())
        return self.teacher()

    def rebalanced(self, arm: str, ratio: float | None = None) -> tuple[float, dict[str, Any]]:
        """``class-balanced``: every class repeated up to the largest (re-sampling); ``reweight``: the
        loss weighted by inverse class frequency; ``logit-adjust``: the logit-adjusted loss with the
        labels' prior (Menon et al. 2021, tau 1). The same classifier and steps as the baseline."""
        counts = self.class_counts()
        if arm == "class-balanced":
            idx = torch.from_numpy(balanced_indices(self.split.train_labels.numpy(), np.random.default_rng(self.seed)))
            ds = ArrayDataset(self.split.train_images[idx], self.split.train_labels[idx], self.split.class_names)
            return self._accuracy(self._train(ds)), {"resampled": len(idx)}
        if arm == "reweight":
            return self._accuracy(self._train(self.base, class_weight=inverse_frequency_weights(counts))), {}
        return self._accuracy(self.adjusted_classifier()), {}

    def posthoc(self, arm: str = "posthoc-adjust", ratio: float | None = None) -> tuple[float, dict[str, Any]]:
        """Post-hoc logit adjustment: the baseline's recipe without label smoothing (which caps the margins
        that the adjustment shifts; see ``train_classifier``), its logits minus log of the labels' prior.
        The record keeps the balanced accuracy before the adjustment (``unadjusted_balanced_accuracy``)."""
        s = self.settings
        plain = dataclasses.replace(s.classifier, label_smoothing=0.0)
        model = train_classifier(self.base, self.channels, self.k, plain, s.device, self.seed, s.flip)
        self._accuracy(model)
        before = self._scores["balanced_accuracy"]
        adjusted = AdjustedLogits(model, class_prior(self.class_counts())).to(s.device)
        return self._accuracy(adjusted), {"unadjusted_balanced_accuracy": before}

    def balance_dataset(self, arm: str) -> GANAugmentedDataset:
        """``GANAugmentedDataset(base, per-class run, balance=True)``: the generator's class as the target,
        or (``-soft``) the seed's baseline's probabilities, drawn afresh on every access."""
        run = self.gan_run("per-class", f"gan-per-class-seed{self.seed}")
        s = self.settings
        kw: dict[str, Any] = {"labels": "generator"}  # asked for: the arm measures them
        if arm.removesuffix(ADJUSTED).endswith(("-soft", "-soft-la")):
            kw = {"labels": "soft", "teacher": self.arm_teacher(arm), "temperature": s.temperature}
        return GANAugmentedDataset(self.base, run, balance=True, device=s.device, seed=self.seed, **kw)

    def gan_balance(self, arm: str, ratio: float | None = None) -> tuple[float, dict[str, Any]]:
        """Every class brought up to the largest with synthetic images (:meth:`balance_dataset`); with
        ``+logit-adjust``, the logit-adjusted loss with the prior of the targets it trains on. ``gan-balance``
        also measures the run: CAS per class and memorisation (nearest-neighbour distances), with their
        means over the three rarest classes."""
        ds = self.balance_dataset(arm)
        prior = training_prior(ds, self.k) if arm.endswith(ADJUSTED) else None
        extra: dict[str, Any] = {"synthetic": len(ds) - ds.n_real}
        if prior is not None:
            extra["prior"] = [round(float(p), 4) for p in prior]
        model = self._train(ds, prior=prior)
        if arm == "gan-balance" and self.settings.quality:
            extra.update(self.rare_quality(Path(ds.generator_ckpt)))
        return self._accuracy(model), extra

    def rare_quality(self, run: Path) -> dict[str, Any]:
        """The per-class run's CAS per class and memorisation, and their means over the rarest three classes."""
        s = self.settings
        out = generator_quality(run, self.split, self.baseline_classifier(), s.classifier, s.device, s.flip, self.seed)
        out.update(memorisation(run, self.split, s.device, self.seed))
        rare = rarest(self.class_counts())
        for key, name in (("cas_per_class", "cas_rare"), ("nn_ratio_per_class", "nn_ratio_rare")):
            values = [out[key][c] for c in rare if out[key][c] == out[key][c]]
            out[name] = float(np.mean(values)) if values else float("nan")
        return out

    def pool_sample(self, arm: str, n: int = 20_000) -> torch.Tensor:
        """At most ``n`` of the seed's unlabeled images, drawn with its seed: what the teacher ranks for ``arm``."""
        unlabeled = self.split.unlabeled
        if unlabeled is None or not len(unlabeled):
            raise UsageError(f"the {arm} arm needs unlabeled images")
        return unlabeled[torch.randperm(len(unlabeled), generator=torch.Generator().manual_seed(self.seed))[:n]]

    def dataset_balance(
        self, arm: str = "dataset-balance-la", ratio: float | None = None
    ) -> tuple[float, dict[str, Any]]:
        """``pseudo-balance-la`` in one call: ``GANAugmentedDataset(base, run, balance=True, teacher=...,
        unlabeled=pool, fresh_passes=0)``: the pool images the teacher rates likeliest for each class it
        lacks (``fill_classes``), each extra item one of them at random, with its probabilities."""
        s = self.settings
        pool = self.pool_sample(arm)
        run = self.gan_run("per-class", f"gan-per-class-seed{self.seed}")
        ds = GANAugmentedDataset(
            self.base, run, balance=True, teacher=self.arm_teacher(arm), unlabeled=pool, fresh_passes=0,
            device=s.device, seed=self.seed,
        )  # fmt: skip
        return self._accuracy(self._train(ds)), {"synthetic": len(ds) - ds.n_real, "pool": len(ds.pool or [])}

    def pseudo_balance(self, arm: str = "pseudo-balance", ratio: float | None = None) -> tuple[float, dict[str, Any]]:
        """The control for ``gan-balance-soft`` (``-la``: ``gan-balance-soft-la``): real unlabeled images
        instead of synthetic ones, as many per class as it adds, the ones the same teacher rates most likely
        of that class, with its probabilities as targets. Rarest classes choose first; an image is used once."""
        s, split = self.settings, self.split
        counts = self.class_counts()
        pool = self.pool_sample(arm)
        probs = torch.softmax(teacher_logits(self.arm_teacher(arm), pool, self.k, s.device) / s.temperature, 1)
        idx = fill_classes(probs, counts)
        one_hot = torch.nn.functional.one_hot(split.train_labels, self.k).float()
        targets = torch.cat([one_hot, probs[idx]])
        images = torch.cat([split.train_images, pool[idx]])
        ds = ArrayDataset(images, targets.argmax(1), split.class_names, soft=targets)
        return self._accuracy(self._train(ds)), {"synthetic": len(idx)}
