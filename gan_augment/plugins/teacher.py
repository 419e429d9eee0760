"""Labels for synthetic images from a teacher: a classifier trained on the real labels.

A teacher is any callable (an ``nn.Module`` in eval mode, usually) that takes a float batch
(B, C, H, W) in [0, 1] (the torchvision convention: ``ToImage()`` + ``ToDtype(torch.float32,
scale=True)``, before any ``Normalize``) and returns logits (B, K) over the base dataset's labels.
Given synthetic images and the generator's classes, :func:`label_synthetic` says which images to
keep and what their targets are:

- ``"generator"``: the generator's class; keep an image when the teacher gives that class at least
  ``min_confidence`` (classifier-agreement filtering; 0 keeps every image);
- ``"teacher"``: the teacher's top class (a hard pseudo-label); keep it when that class has at least
  ``min_confidence``;
- ``"soft"``: the teacher's probabilities at ``temperature`` as the target (knowledge distillation);
  kept as for ``"teacher"``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Literal, Mapping

import torch
from torch import nn

from ..errors import GanAugmentError, UsageError
from ..io.checkpoint import reading
from ..io.classifier_record import NetworkRecord
from ..io.images import match_images
from ..train.teacher_status import finished_teacher

LabelSource = Literal["generator", "teacher", "soft"]
LABEL_SOURCES: tuple[str, ...] = ("generator", "teacher", "soft")

Teacher = Callable[[torch.Tensor], torch.Tensor]


def check_labeling(labels: str, teacher: Any, min_confidence: float, temperature: float) -> None:
    """Raise ValueError for a labelling that cannot work, naming the value."""
    if labels not in LABEL_SOURCES:
        raise UsageError(f"labels={labels!r}: use one of {', '.join(LABEL_SOURCES)}")
    if not 0 <= min_confidence < 1:
        raise UsageError(f"min_confidence={min_confidence} must be in [0, 1)")
    if not temperature > 0:
        raise UsageError(f"temperature={temperature} must be > 0")
    if teacher is None and (labels != "generator" or min_confidence > 0):
        what = f"labels={labels!r}" if labels != "generator" else f"min_confidence={min_confidence}"
        raise UsageError(
            f"{what} needs teacher=: a classifier trained on the real labels (float [0, 1] in, logits out)"
        )
    if teacher is not None and not callable(teacher):
        raise UsageError(f"teacher must be callable (an nn.Module or a function), not {type(teacher).__name__}")


class RunTeacher(nn.Module):
    """A run's teacher (``teacher.pt``, trained by ``fit``) as a :data:`Teacher`: float images (B, C, H, W)
    in [0, 1] of any size, 1 or 3 channels, in; logits out, over the run's classes in its order, or
    (after :meth:`for_labels`) over a base dataset's labels.

    Attributes:
        kind: ``ssl`` or ``supervised``.
        class_names: The run's classes.
        metrics: What ``fit`` measured of it (``labeled_accuracy`` is on the images it trained on).
    """

    def __init__(self, network: nn.Module, record: NetworkRecord) -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.kind = record.kind
        self.class_names = list(record.class_names)
        self.image_size, self.channels = record.image_size, record.channels
        self.metrics = dict(record.metrics)
        self.columns: list[int] | None = None  # base label of each run class (for_labels)
        self.width = len(self.class_names)

    def for_labels(self, run_to_base: Mapping[int, int], width: int) -> RunTeacher:
        """Logits over ``width`` base labels: run class k's logit goes to label ``run_to_base[k]``; a base
        label no run class maps to gets a logit of -1e4 (probability 0)."""
        self.columns = [int(run_to_base.get(k, -1)) for k in range(len(self.class_names))]
        self.width = int(width)
        return self

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = match_images(x.float(), (self.image_size, self.image_size), self.channels)
        logits = self.network(x * 2 - 1)
        if self.columns is None:
            return logits
        out = logits.new_full((len(x), self.width), -1e4)
        keep = [k for k, c in enumerate(self.columns) if c >= 0]
        out[:, [self.columns[k] for k in keep]] = logits[:, keep]
        return out


def load_run_teacher(
    run: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    fallback: str = "pass labels='generator' (the generator's labels) or teacher=",
    planned: str | None = None,
) -> RunTeacher | None:
    """The teacher ``fit`` kept in ``run`` (a run directory, or its checkpoint.pt), on ``device``;
    None when the run has none by choice (``--teacher none``, or a run from before teachers).

    Raises:
        TeacherStateError: If its training was interrupted, it is missing or unreadable (with the
            command that mends it, and ``fallback``): never taken silently for no teacher.
        CheckpointError: If ``teacher.pt`` is there but not a teacher gan-augment wrote.
    """
    found = finished_teacher(run, fallback, planned)  # planned: the run's config.teacher when read already
    if found is None:
        return None
    path, record = found
    with reading(path):
        return RunTeacher(record.build(), record).to(device)


def _teacher_device(teacher: Teacher, fallback: torch.device) -> torch.device:
    if isinstance(teacher, nn.Module):
        for p in teacher.parameters():
            return p.device
    return fallback


@torch.no_grad()
def teacher_logits(
    teacher: Teacher, images: torch.Tensor, num_labels: int, device: torch.device, batch_size: int = 512
) -> torch.Tensor:
    """The teacher's logits (N, K) for uint8 images (N, C, H, W), on the CPU.

    Raises:
        GanAugmentError: If the teacher does not return (B, K) logits with K = ``num_labels`` (a
            teacher of another class set would give targets that fit neither the labels nor the model).
    """
    dev = _teacher_device(teacher, device)
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(dev).float().div_(255.0)
        logits = teacher(x)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != len(x):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise GanAugmentError(
                f"the teacher returned {shape} for a batch of {len(x)} images: it must return logits (B, K)"
            )
        if logits.shape[1] != num_labels:
            raise GanAugmentError(
                f"the teacher returned {logits.shape[1]} logits per image, but the base dataset has {num_labels} "
                "classes: it must score exactly the base dataset's classes, in label order"
            )
        out.append(logits.float().cpu())
    return torch.cat(out) if out else torch.empty(0, num_labels)


def label_synthetic(
    logits: torch.Tensor,
    generator_labels: torch.Tensor,
    labels: LabelSource,
    min_confidence: float = 0.0,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Which synthetic images to keep, and their targets.

    Args:
        logits: The teacher's logits (N, K).
        generator_labels: The generator's class of each image as a base label (N,).
        labels: ``generator``, ``teacher`` or ``soft`` (see the module docstring).
        min_confidence: Keep an image only if the teacher gives its label at least this probability.
        temperature: Softens the ``soft`` targets (confidences are always read at temperature 1).

    Returns:
        ``keep`` (N,) bool, hard targets (N,) int64, and soft targets (N, K) for ``soft`` (else None).
    """
    probs = logits.softmax(1)
    if labels == "generator":
        hard = generator_labels.to(torch.int64)
        confidence = probs.gather(1, hard[:, None]).squeeze(1)
    else:
        confidence, hard = probs.max(1)
    soft = (logits / temperature).softmax(1) if labels == "soft" else None
    return confidence >= min_confidence, hard, soft
