"""The arms of the limited-labels comparison: one seed's split, each arm trained and scored on it."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

from ..config import EVALUATE_CLF_STEPS, TEACHER_MIN_CONFIDENCE, SSLConfig, TrainConfig, for_device
from ..data import ImageData, memory_data
from ..errors import UsageError
from ..io.checkpoint import CHECKPOINT_NAME, TEACHER_NAME
from ..io.rebuild import build_ssl_classifier
from ..io.record import load_run
from ..plugins import DiscriminatorFeatures, GANAugmentedDataset
from ..plugins.teacher import label_synthetic, load_run_teacher, teacher_logits
from ..progress import Reporter
from ..train import fit_data
from ..train.metrics import predict_logits
from ..train.ssl import train_ssl
from .classifier import ArrayDataset, ClassifierConfig, Split, UnitInput, train_classifier
from .imbalance import imbalance_scores
from .imbalance_arms import ADJUSTED, ImbalanceArms, training_prior
from .quality import generator_quality
from .registry import get_arm


@dataclass(frozen=True)
class ArmSettings:
    """What the arms share: GAN and classifier recipes, the synthetic ratio, flips, the device."""

    gan: TrainConfig
    classifier: ClassifierConfig
    synthetic_ratio: float = 0.5
    flip: bool = True
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    quality: bool = True  # CAS, real-classifier accuracy on samples, diversity
    ssl: SSLConfig = field(default_factory=SSLConfig)  # the ssl arm's own recipe and budget
    ssl_eval_every: int = 0  # iterations between test accuracies of the ssl arm (0: only at the end)
    min_confidence: float = (
        TEACHER_MIN_CONFIDENCE  # the teacher arms' threshold (gan-teacher, gan-agree, gan-pretrain, pseudo-label)
    )
    temperature: float = 1.0  # gan-soft's temperature
    filter_top: float | None = None  # discriminator rejection in the sample arms: keep this top fraction


def classifier_workers(device: torch.device) -> int:
    """DataLoader workers for the secondary classifier: none on a CPU (they would take its cores)."""
    return 0 if device.type == "cpu" else 4


def default_settings(device: str | torch.device = "cpu") -> ArmSettings:
    """evaluate's settings when none are given, as the CLI's defaults on ``device``: fit's GAN sizes for that
    device, :data:`EVALUATE_CLF_STEPS` classifier steps."""
    dev = torch.device(device)
    clf = ClassifierConfig(steps=EVALUATE_CLF_STEPS, workers=classifier_workers(dev))
    return ArmSettings(gan=for_device(dev.type), classifier=clf, device=dev)


class SeedArms(ImbalanceArms):
    """The arms of one seed, sharing its split, its GAN data and (for generator quality) its baseline.

    ``runs`` maps a GAN mode (``per-class``, ``conditional``, ``unconditional``) to an existing run
    to use instead of training one in ``work``.
    """

    def __init__(
        self,
        split: Split,
        settings: ArmSettings,
        seed: int,
        work: Path,
        reporter: Reporter,
        runs: dict[str, Path] | None = None,
        reuse: bool = False,
    ) -> None:
        self.split, self.settings, self.seed, self.work, self.reporter = split, settings, seed, work, reporter
        self.reuse = reuse  # use a run already in ``work`` when its configuration is this seed's
        self.runs = dict(runs or {})
        self.k = len(split.class_names)
        self.channels = int(split.train_images.shape[1])
        size = int(split.train_images.shape[-1])
        self.gan_cfg = settings.gan.replace(seed=seed, image_size=size, channels=self.channels)
        self.base = ArrayDataset(split.train_images, split.train_labels, split.class_names)
        self.baseline_model: nn.Module | None = None
        self._adjusted: nn.Module | None = None  # the logit-adjusted classifier (ImbalanceArms)
        self._gan_data: ImageData | None = None

    def with_settings(self, settings: ArmSettings) -> SeedArms:
        """The same seed, runs and baseline under other settings (e.g. another filter)."""
        other = SeedArms(self.split, settings, self.seed, self.work, self.reporter, self.runs, self.reuse)
        other.baseline_model, other._adjusted, other._gan_data = self.baseline_model, self._adjusted, self._gan_data
        return other

    def gan_data(self) -> ImageData:
        """The seed's labeled + unlabeled images for fit_data, concatenated once for every GAN arm."""
        if self._gan_data is None:
            s = self.split
            self._gan_data = memory_data(
                s.train_images, s.train_labels, s.class_names, s.unlabeled, tag=f"seed{self.seed}"
            )
        return self._gan_data

    def gan_run(self, mode: str, name: str, key: str | None = None) -> Path:
        """The run of ``mode`` this seed uses (``runs[key]``, key default ``mode``): the one given, or one
        trained now into ``work/name``. Key ``default``: the run ``fit`` writes with its defaults, its
        teacher included (``settings.ssl.steps`` iterations, 0: the package's budget); the other runs
        have no teacher."""
        key = key or mode
        teacher = {"teacher": "auto", "teacher_steps": self.settings.ssl.steps} if key == "default" else {}
        cfg = self.gan_cfg.replace(mode=mode, **{"teacher": "none", **teacher})
        if key not in self.runs and self.reuse and self._same_run(self.work / name, cfg):
            self.runs[key] = self.work / name
        if key not in self.runs:
            run = self.work / name
            fit_data(
                self.gan_data(), run, cfg, device=self.settings.device, overwrite=True, reporter=Reporter(quiet=True)
            )
            self.runs[key] = run
        return self.runs[key]

    def _same_run(self, run: Path, cfg: TrainConfig) -> bool:
        """Whether ``run`` holds a finished run of configuration ``cfg`` (its teacher too)."""
        if not (run / CHECKPOINT_NAME).is_file() or (cfg.teacher != "none" and not (run / TEACHER_NAME).is_file()):
            return False
        record = load_run(run)
        pretrain = record.pretrain_steps
        done = record.state.step >= pretrain + cfg.steps
        kept = record.pretrained is not None or not pretrain  # runs from before pre-trained models were kept: anew
        return done and kept and record.config == cfg

    def _train(self, dataset: Any, **loss: Any) -> nn.Module:
        """The secondary classifier on ``dataset`` (``loss``: ``prior`` or ``class_weight``, see train_classifier)."""
        s = self.settings
        return train_classifier(dataset, self.channels, self.k, s.classifier, s.device, self.seed, s.flip, **loss)

    def _accuracy(self, model: nn.Module) -> float:
        """Test accuracy; the balanced scores of the same predictions go into the arm's record."""
        if not len(self.split.test_labels):
            raise UsageError("the seed's split holds no test image: a larger test fraction or more images")
        return self._score(predict_logits(model, self.split.test_images, self.settings.device).argmax(1).numpy())

    def _score(self, predictions: Any) -> float:
        """Test accuracy of ``predictions`` (N,); their balanced scores go into the arm's record."""
        labels = self.split.test_labels.numpy()
        self._scores = imbalance_scores(np.asarray(predictions), labels, self.class_counts())
        return float((np.asarray(predictions) == labels).mean())

    def baseline_classifier(self) -> nn.Module:
        """The seed's baseline classifier, trained once by whichever arm needs it first (the baseline arm,
        a teacher arm, generator quality): the same model whatever order the arms run in."""
        if self.baseline_model is None:
            self.baseline_model = self._train(self.base)
        return self.baseline_model

    def baseline(self, arm: str = "baseline", ratio: float | None = None) -> tuple[float, dict[str, Any]]:
        return self._accuracy(self.baseline_classifier()), {}

    def teacher(self) -> nn.Module:
        """The baseline classifier of this seed, as a teacher."""
        return UnitInput(self.baseline_classifier())

    def synthetic_dataset(self, arm: str, ratio: float) -> GANAugmentedDataset:
        """The real images with a per-class (or conditional) run's synthetic ones mixed in, as ``arm`` labels them."""
        s = self.settings
        mode = "conditional" if arm.removesuffix(ADJUSTED) == "gan-conditional" else "per-class"
        run = self.gan_run(mode, f"gan-{mode}-seed{self.seed}")
        kw: dict[str, Any] = {}
        if arm in ("gan-teacher", "gan-pretrain"):
            kw = {"labels": "teacher", "min_confidence": s.min_confidence}
        elif arm in ("gan-soft", "gan-pretrained-soft"):
            kw = {"labels": "soft", "temperature": s.temperature, "pretrained": arm == "gan-pretrained-soft"}
        elif arm == "gan-agree":
            kw = {"labels": "generator", "min_confidence": s.min_confidence}
        if kw:
            kw["teacher"] = self.teacher()
        return GANAugmentedDataset(
            self.base, run, synthetic_ratio=ratio, device=s.device, seed=self.seed, filter_top=s.filter_top, **kw
        )

    def gan_samples(self, arm: str, ratio: float | None = None) -> tuple[float, dict[str, Any]]:
        """Baseline + ``GANAugmentedDataset`` at the synthetic ratio, labelled as ``arm`` says; for the plain
        arms, generator quality beside it. ``gan-pretrain`` trains half the steps on the synthetic images
        alone, then half on the real ones (the same step count as every arm)."""
        s = self.settings
        ratio = s.synthetic_ratio if ratio is None else ratio
        ds = self.synthetic_dataset(arm, ratio)
        extra: dict[str, Any] = {"synthetic_ratio": ratio, "synthetic": len(ds) - ds.n_real}
        if arm == "gan-pretrain":
            half = dataclasses.replace(s.classifier, steps=max(1, s.classifier.steps // 2))
            synthetic = Subset(ds, range(ds.n_real, len(ds))) if len(ds) > ds.n_real else self.base  # none kept
            first = train_classifier(synthetic, self.channels, self.k, half, s.device, self.seed, s.flip)
            model = train_classifier(self.base, self.channels, self.k, half, s.device, self.seed, s.flip, init=first)
        else:
            prior = training_prior(ds, self.k) if arm.endswith(ADJUSTED) else None  # Menon's: the targets' prior
            if prior is not None:
                extra["prior"] = [round(float(p), 4) for p in prior]
            model = self._train(ds, prior=prior)
        if s.quality and get_arm(arm).quality:
            quality = generator_quality(
                Path(ds.generator_ckpt),
                self.split,
                self.baseline_classifier(),
                s.classifier,
                s.device,
                s.flip,
                self.seed,
            )
            extra.update(quality)
        return self._accuracy(model), extra

    def real_extra(self, arm: str, ratio: float | None = None) -> tuple[float, dict[str, Any]]:
        """The controls for the teacher arms: real images instead of synthetic ones, as many as the sample
        arms add, labelled by the same teacher. ``pseudo-label``: unlabeled images, the teacher's hard
        label where its confidence reaches ``min_confidence``; ``pseudo-soft``: unlabeled images, its
        probabilities at ``temperature``; ``distill-real``: the labeled images again (no new image), its
        probabilities at ``temperature`` (is gan-soft's gain the images', or distillation's?)."""
        s, split = self.settings, self.split
        ratio = s.synthetic_ratio if ratio is None else ratio
        n_real = len(split.train_labels)
        want = int(round(ratio * n_real / (1 - ratio)))
        g = torch.Generator().manual_seed(self.seed)
        if arm == "distill-real":
            pool = split.train_images[torch.randperm(n_real, generator=g).repeat(want // max(1, n_real) + 1)]
        elif split.unlabeled is None or not len(split.unlabeled):
            raise UsageError(f"the {arm} arm needs unlabeled images")
        else:
            pool = split.unlabeled[torch.randperm(len(split.unlabeled), generator=g)[: max(want * 8, 1024)]]
        logits = teacher_logits(self.teacher(), pool, self.k, s.device)
        labels = "teacher" if arm == "pseudo-label" else "soft"
        threshold = s.min_confidence if arm == "pseudo-label" else 0.0
        keep, hard, soft = label_synthetic(
            logits, torch.zeros(len(pool), dtype=torch.int64), labels, threshold, s.temperature
        )
        idx = torch.nonzero(keep).flatten()[:want]
        images = torch.cat([split.train_images, pool[idx]])
        if soft is None:
            ds = ArrayDataset(images, torch.cat([split.train_labels, hard[idx]]), split.class_names)
        else:
            one_hot = F.one_hot(split.train_labels, soft.shape[1]).float()
            targets = torch.cat([one_hot, soft[idx]])
            ds = ArrayDataset(images, targets.argmax(1), split.class_names, soft=targets)
        return self._accuracy(self._train(ds)), {"synthetic_ratio": ratio, "synthetic": len(idx)}

    def run_arm(self, arm: str, ratio: float | None = None) -> tuple[float, dict[str, Any]]:
        """The arms of the default run (see the registry): the two-argument ``GANAugmentedDataset`` (at
        its default synthetic share unless a ratio is given), without its unlabeled or its synthetic
        images, the teacher itself, or a linear model on its features."""
        s = self.settings
        run = self.gan_run("per-class", f"default-seed{self.seed}", key="default")
        teacher = load_run_teacher(run, s.device)
        if teacher is None:
            raise UsageError(f"the default run {str(run)!r} has no teacher")
        if arm == "teacher":
            logits = teacher_logits(teacher, self.split.test_images, self.k, s.device)
            return self._score(logits.argmax(1).numpy()), dict(teacher.metrics)
        if arm == "teacher-features":
            return self._linear_probe(DiscriminatorFeatures(run, device=str(s.device), source="teacher")), {}
        # The run was trained from images in memory, so it names no unlabeled folder for the dataset to read
        # again (what GANAugmentedDataset does for a run of folders): it is given the same images instead.
        kw: dict[str, Any] = {"unlabeled": False if arm == "default-synthetic" else self.split.unlabeled}
        if arm == "teacher-unlabeled":  # the control: no synthetic image in the pool
            kw["fresh_passes"] = 0
        if ratio is not None:
            kw["synthetic_ratio"] = ratio
        ds = GANAugmentedDataset(self.base, run, device=s.device, seed=self.seed, **kw)
        extra = {
            "synthetic_ratio": ds.n_synthetic / max(1, len(ds)),
            "synthetic": ds.n_synthetic,
            "pool": len(ds.pool or []),
        }
        return self._accuracy(self._train(ds)), extra

    def d_features(self, arm: str = "d-features", ratio: float | None = None) -> tuple[float, dict[str, Any]]:
        """Logistic regression on the discriminator features of an unconditional GAN."""
        run = self.gan_run("unconditional", f"unconditional-seed{self.seed}")
        return self._linear_probe(DiscriminatorFeatures(run, device=str(self.settings.device))), {}

    def _linear_probe(self, features: DiscriminatorFeatures) -> float:
        """Test accuracy of a standardised logistic regression on ``features`` of the labeled images."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        pipe = make_pipeline(features, StandardScaler(), LogisticRegression(max_iter=2000))
        pipe.fit(self.split.train_images, self.split.train_labels.numpy())
        return self._score(pipe.predict(self.split.test_images))

    def ssl(self, arm: str = "ssl", ratio: float | None = None) -> tuple[float, dict[str, Any]]:
        """The semi-supervised GAN's (averaged) discriminator as the classifier; with
        ``settings.ssl_eval_every``, its test accuracy along the way (the learning curve)."""
        s = self.settings
        cfg = s.ssl.replace(seed=self.seed)

        def test_accuracy(model: nn.Module) -> float:
            return self._accuracy(model)

        result = train_ssl(self.gan_data(), cfg, s.device, 0.0, Reporter(quiet=True), test_accuracy, s.ssl_eval_every)
        model = build_ssl_classifier(result["state"]).to(s.device)
        extra = {"ssl_steps": result["metrics"]["steps"], "ssl_architecture": result["metrics"]["architecture"]}
        if result["curve"]:
            extra["curve"] = result["curve"]
        return test_accuracy(model), extra

    def run(self, arm: str, ratio: float | None = None) -> dict[str, Any]:
        """Train and score ``arm`` (at synthetic ``ratio``, default the settings'); its record."""
        spec = get_arm(arm)
        t0 = time.perf_counter()
        self._scores: dict[str, Any] = {}
        acc, extra = getattr(self, spec.runner)(arm, ratio)
        rec = {"arm": arm, "seed": self.seed, "accuracy": acc, "seconds": round(time.perf_counter() - t0, 2),
               "test_images": len(self.split.test_labels)}  # fmt: skip
        rec.update({**self._scores, **extra})
        if self.settings.filter_top is not None and spec.runner == "gan_samples":
            rec["filter_top"] = self.settings.filter_top
        at = f" at ratio {extra['synthetic_ratio']}" if "synthetic_ratio" in extra else ""
        tested = f"the seed's {rec['test_images']} test images"
        self.reporter.message(f"  seed {self.seed} {arm}{at}: accuracy {acc:.4f} on {tested} ({rec['seconds']:.0f} s)")
        return rec


def run_seed(
    split: Split,
    arms: Sequence[str],
    settings: ArmSettings,
    seed: int,
    work: Path,
    reporter: Reporter,
    runs: dict[str, Path] | None = None,
) -> list[dict[str, Any]]:
    """Train and score every arm for one seed; returns one record per arm (plus generator quality).

    ``runs`` maps a GAN mode (``per-class``, ``conditional``, ``unconditional``) to an existing run
    to use instead of training one.
    """
    seed_arms = SeedArms(split, settings, seed, work, reporter, runs)
    return [seed_arms.run(arm) for arm in arms]


def with_gan(settings: ArmSettings, **changes: Any) -> ArmSettings:
    """A copy of ``settings`` with ``changes`` applied to its GAN configuration."""
    return dataclasses.replace(settings, gan=settings.gan.replace(**changes))
