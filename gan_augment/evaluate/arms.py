"""One seed of the limited-labels comparison: its split and what its arms share (:class:`SeedArms`), the
settings they run under, and ``run_seed``. The arms themselves are in the registry."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..config import EVALUATE_CLF_STEPS, TEACHER_MIN_CONFIDENCE, SSLConfig, TrainConfig, for_device
from ..data import ImageData, memory_data
from ..errors import UsageError
from ..io.checkpoint import CHECKPOINT_NAME, TEACHER_NAME
from ..io.record import load_run
from ..plugins import DiscriminatorFeatures
from ..plugins.teacher import RunTeacher, load_run_teacher
from ..progress import Reporter
from ..train import fit_data
from ..train.metrics import predict_logits
from .classifier import ArrayDataset, ClassifierConfig, Split, UnitInput, train_classifier
from .imbalance import class_prior, imbalance_scores
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


class SeedArms:
    """One seed's split and what its arms share: its GAN data and runs, its baseline and logit-adjusted
    classifiers (each trained once, by whichever arm needs it first), and how a classifier is trained and
    scored. ``run(arm)`` runs a registered arm on it.

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
        self._adjusted: nn.Module | None = None  # the logit-adjusted classifier
        self._gan_data: ImageData | None = None
        self.last_scores: dict[str, Any] = {}  # the balanced scores of the last predictions scored

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

    def default_run(self) -> Path:
        """The run ``fit`` writes with its defaults on this seed's images, its teacher included."""
        return self.gan_run("per-class", f"default-seed{self.seed}", key="default")

    def run_teacher(self) -> RunTeacher:
        """The default run's teacher; a UsageError where it kept none."""
        run = self.default_run()
        teacher = load_run_teacher(run, self.settings.device)
        if teacher is None:
            raise UsageError(f"the default run {str(run)!r} has no teacher")
        return teacher

    def _same_run(self, run: Path, cfg: TrainConfig) -> bool:
        """Whether ``run`` holds a finished run of configuration ``cfg`` (its teacher too)."""
        if not (run / CHECKPOINT_NAME).is_file() or (cfg.teacher != "none" and not (run / TEACHER_NAME).is_file()):
            return False
        record = load_run(run)
        pretrain = record.pretrain_steps
        done = record.state.step >= pretrain + cfg.steps
        kept = record.pretrained is not None or not pretrain  # runs from before pre-trained models were kept: anew
        return done and kept and record.config == cfg

    def train(self, dataset: Any, **loss: Any) -> nn.Module:
        """The secondary classifier on ``dataset`` (``loss``: ``prior`` or ``class_weight``, see train_classifier)."""
        s = self.settings
        return train_classifier(dataset, self.channels, self.k, s.classifier, s.device, self.seed, s.flip, **loss)

    def accuracy(self, model: nn.Module) -> float:
        """Test accuracy; the balanced scores of the same predictions go into the arm's record."""
        if not len(self.split.test_labels):
            raise UsageError("the seed's split holds no test image: a larger test fraction or more images")
        return self.score(predict_logits(model, self.split.test_images, self.settings.device).argmax(1).numpy())

    def score(self, predictions: Any) -> float:
        """Test accuracy of ``predictions`` (N,); their balanced scores go into the arm's record."""
        labels = self.split.test_labels.numpy()
        self.last_scores = imbalance_scores(np.asarray(predictions), labels, self.class_counts())
        return float((np.asarray(predictions) == labels).mean())

    def class_counts(self) -> list[int]:
        """Labeled images per class."""
        return np.bincount(self.split.train_labels.numpy(), minlength=self.k).tolist()

    def baseline_classifier(self) -> nn.Module:
        """The seed's baseline classifier, trained once by whichever arm needs it first (the baseline arm,
        a teacher arm, generator quality): the same model whatever order the arms run in."""
        if self.baseline_model is None:
            self.baseline_model = self.train(self.base)
        return self.baseline_model

    def adjusted_classifier(self) -> nn.Module:
        """The seed's classifier trained with the logit-adjusted loss (the ``logit-adjust`` arm's model),
        trained once by whichever arm needs it first."""
        if self._adjusted is None:
            self._adjusted = self.train(self.base, prior=class_prior(self.class_counts()))
        return self._adjusted

    def teacher(self, adjusted: bool = False) -> nn.Module:
        """The seed's baseline classifier as a teacher, or (``adjusted``) the logit-adjusted one, whose plain
        logits weigh every class alike (the baseline's gave the rarest CIFAR-10-LT classes 0% recall, so its
        labels sent their images to the frequent classes)."""
        return UnitInput(self.adjusted_classifier() if adjusted else self.baseline_classifier())

    def pool_sample(self, arm: str, n: int = 20_000) -> torch.Tensor:
        """At most ``n`` of the seed's unlabeled images, drawn with its seed: what a teacher ranks for ``arm``."""
        unlabeled = self.split.unlabeled
        if unlabeled is None or not len(unlabeled):
            raise UsageError(f"the {arm} arm needs unlabeled images")
        return unlabeled[torch.randperm(len(unlabeled), generator=torch.Generator().manual_seed(self.seed))[:n]]

    def linear_probe(self, features: DiscriminatorFeatures) -> float:
        """Test accuracy of a standardised logistic regression on ``features`` of the labeled images."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        pipe = make_pipeline(features, StandardScaler(), LogisticRegression(max_iter=2000))
        pipe.fit(self.split.train_images, self.split.train_labels.numpy())
        return self.score(pipe.predict(self.split.test_images))

    def run(self, arm: str, ratio: float | None = None) -> dict[str, Any]:
        """Train and score ``arm`` (at synthetic ``ratio``, default the settings'); its record."""
        t0 = time.perf_counter()
        self.last_scores = {}
        acc, extra = get_arm(arm).run(self, ratio)
        rec = {
            "arm": arm,
            "seed": self.seed,
            "accuracy": acc,
            "seconds": round(time.perf_counter() - t0, 2),
            "test_images": len(self.split.test_labels),
        }
        rec.update({**self.last_scores, **extra})
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
