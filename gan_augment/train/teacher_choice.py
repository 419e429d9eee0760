"""The run's teacher measured against the labels alone, on labeled images it never trained on.

With an unlabeled pool, ``fit``'s teacher is the semi-supervised GAN's discriminator. On colour photos and
a CPU budget it has learned less than a classifier of the labels alone (CIFAR-10, 25 labels per class:
29.0% against 36.8%), and a teacher worse than the labels alone only passes its errors on. So both are
trained on the same labeled images less a stratified :data:`HELDOUT_FRACTION` (at least one per class), the
labels-only one (the same network, cross-entropy on the labels, a quarter of the iterations, as
``--teacher supervised``) first, and both are scored on the held-out images. ``--teacher auto`` keeps the
semi-supervised teacher only when :meth:`Heldout.keeps_ssl` says it measured better; otherwise the run's
teacher is the labels-only classifier, and a line says which was kept and why.

Neither is trained again on the held-out images afterwards: that would double the teacher's time on a CPU.
The teacher handed over has learned from the other labels (and the pool).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..config import SSLConfig
from ..data import ImageData
from ..progress import Reporter
from .metrics import predict_logits
from .ssl import classifier_state, start_ssl
from .ssl_steps import run_steps

# Labeled images of each class kept from both candidates to measure them (at least one per class).
HELDOUT_FRACTION = 0.2


def can_hold_out(data: ImageData) -> bool:
    """Whether every class has two labeled images or more (one to hold out, one to train on)."""
    counts = data.class_counts
    return bool(counts) and min(counts) >= 2


@dataclass(frozen=True)
class Heldout:
    """Two classifiers scored on the same held-out images.

    Attributes:
        teacher: The semi-supervised teacher's accuracy.
        labels_only: The labels-only classifier's accuracy.
        images: Held-out images.
        teacher_only: Images the teacher gets right and the labels-only classifier wrong.
        labels_only_only: The other way round.
    """

    teacher: float
    labels_only: float
    images: int
    teacher_only: int
    labels_only_only: int

    @classmethod
    def of(cls, teacher_right: torch.Tensor, labels_only_right: torch.Tensor) -> Heldout:
        t, s = teacher_right.bool(), labels_only_right.bool()
        n = max(len(t), 1)
        return cls(float(t.sum()) / n, float(s.sum()) / n, len(t), int((t & ~s).sum()), int((s & ~t).sum()))

    def keeps_ssl(self) -> bool:
        """Whether the teacher measured better than the labels alone by more than chance: it is right on
        at least √(b + c) more held-out images than the labels-only classifier (b, c: the images only one
        of the two gets right), one standard deviation of that count were the two equally good (McNemar's
        view of paired predictions). A teacher that measured worse is never kept; one no better than the
        labels alone is kept by chance about one time in six; with identical predictions (b = c = 0)
        either is the same, and the teacher is kept."""
        b, c = self.teacher_only, self.labels_only_only
        return b - c >= math.sqrt(b + c)

    def not_clearly_worse(self) -> bool:
        """Whether the teacher did not measure worse than the labels alone by more than chance: the
        labels-only network is right on at most √(b + c) more held-out images (the rule for the
        self-trained teacher, the mirror of :meth:`keeps_ssl`). Self-training gained 5 to 7 points on
        every CIFAR-10 draw measured on 5,000 images, while 50 held-out images (5 a class) give b − c a
        standard deviation of about 3 images (6 points): on one draw it measured 4 against 6 and a rule of
        b ≥ c handed over the labels-only network, losing the gain; on 3 draws b ≥ c held. A teacher
        clearly worse (an untrained one: tests/test_self_teacher.py) is not kept."""
        b, c = self.teacher_only, self.labels_only_only
        return c - b <= math.sqrt(b + c)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self, name: str = "semi-supervised") -> str:
        """One line: both accuracies, on how many held-out images (``name``: what kind of teacher)."""
        return (
            f"on {self.images} held-out labeled images: the {name} teacher {100 * self.teacher:.1f}%, "
            f"the labels alone {100 * self.labels_only:.1f}%"
        )


def correct(classifier: torch.nn.Module, data: ImageData, idx: torch.Tensor) -> torch.Tensor:
    """Boolean (len(idx),): which of the images ``idx`` the classifier gets right."""
    predictions = predict_logits(classifier, data.images[idx], None).argmax(1)
    return predictions == data.labels[idx].cpu()


def labels_only_config(ssl: SSLConfig) -> SSLConfig:
    """The labels-only rival of the teacher ``ssl``: the same network, a quarter of the iterations, no pool."""
    return ssl.replace(steps=max(1, ssl.steps // 4), unlabeled_weight=0.0)


def train_labels_only(
    data: ImageData, ssl: SSLConfig, device: torch.device, reporter: Reporter, stop: Any = None
) -> dict[str, Any]:
    """Train the labels-only rival on the labeled images less the held-out ones; its classifier state (kind
    ``supervised``, ready to be the run's teacher) and which held-out images it gets right."""
    config = labels_only_config(ssl)
    run, held = start_ssl(data, config, device, HELDOUT_FRACTION, reporter, supervised=True, min_held_out=1)
    reporter.message(
        f"first the labels-only classifier to measure the teacher against ({config.steps} iterations, "
        f"{len(run.labeled.pool)} labeled images; {len(held)} held out of both)"
    )
    t0 = time.perf_counter()
    run_steps(run, reporter, stop=stop)
    classifier = run.average.averaged(run.gan.d)
    return {
        "state": classifier_state(run, data, classifier, "supervised"),
        "right": correct(classifier, data, held),
        "steps": config.steps,
        "seconds": round(time.perf_counter() - t0, 1),
    }
