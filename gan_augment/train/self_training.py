"""The colour teacher: a small ResNet trained on the labels, then rounds of self-training on the pool.

On colour photos and a CPU budget the semi-supervised GAN's discriminator learns less than a small ResNet
taught by the labels alone with crops and flips (CIFAR-10, 25 labels per class, 2 cores: 29% against 39%),
and a teacher worse than the labels alone only passes its errors on. This teacher starts from that
labels-only network and lets the unlabeled pool teach it (self-training, as Noisy Student does it): each
round the current network labels the pool, its predictions are aligned to the labeled set's class
proportions (ReMixMatch's distribution alignment: the pool keeps the classes' balance, not the network's
bias), the most confident images of each class after alignment are kept, a growing share of the pool each
round, and a fresh network trains on the labeled images and those (their aligned classes as targets, crops
and flips as noise).
It becomes the next round's teacher. Measured in ``benchmarks/colour_teacher.py``.

The budget follows the data: passes over the images each phase trains on, within fixed bounds, so a
600-image pool takes seconds where CIFAR-10's 45,000 take minutes.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanAugmentError
from ..models import build_classifier
from ..progress import Reporter
from .crop_flip import device_augmentation
from .drive import CHECK_EVERY, Job, drive
from .health import MAX_OOM_RETRIES, MAX_ROLLBACKS, TrainingStopped, halved_batch
from .metrics import predict_logits

# The share of each class's pool images kept in each round (after alignment, the most confident first).
ROUND_SHARES = (0.1, 0.3, 0.6, 1.0)
LABELS_PASSES, LABELS_STEPS = 250, (100, 800)  # the labels-only network: passes over the labels, step bounds
ROUND_PASSES, ROUND_STEPS = 40, (100, 1500)  # each round's student: passes over its images, step bounds


@dataclass(frozen=True)
class SelfTrainingConfig:
    """One self-trained teacher's recipe.

    Attributes:
        width: The small ResNet's first-stage channels (stages width, 2·width, 4·width).
        labels_steps: Steps of the labels-only network (round 0).
        round_steps: Steps of each round's student.
        shares: Share of each class's pool images kept in each round.
        batch_size: Images per step; ``labeled_share`` of them labeled once the pool is in.
        lr: Peak learning rate (SGD, Nesterov momentum 0.9; warm-up, then cosine decay to 0).
        smoothing: Label smoothing of every target.
        seed: Seeds the networks, the batches and the augmentation.
    """

    width: int = 16
    labels_steps: int = LABELS_STEPS[1]
    round_steps: tuple[int, ...] = (ROUND_STEPS[1],) * len(ROUND_SHARES)
    shares: tuple[float, ...] = ROUND_SHARES
    batch_size: int = 64
    labeled_share: float = 0.25
    lr: float = 0.1
    smoothing: float = 0.1
    seed: int = 0

    @property
    def steps(self) -> int:
        """Every phase's steps together."""
        return self.labels_steps + sum(self.round_steps)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {**d, "round_steps": list(self.round_steps), "shares": list(self.shares), "steps": self.steps}


def _clamp(value: float, bounds: tuple[int, int]) -> int:
    return int(min(max(math.ceil(value), bounds[0]), bounds[1]))


def self_training_config(labeled: int, pool: int, seed: int, steps: int = 0) -> SelfTrainingConfig:
    """The recipe for ``labeled`` training labels and a ``pool`` of unlabeled images: each phase's steps
    from passes over its images (:data:`LABELS_PASSES`, :data:`ROUND_PASSES`), within bounds. ``steps``
    (``--teacher-steps``): every phase scaled so that they add up to it instead."""
    base = SelfTrainingConfig(seed=seed)
    first = _clamp(LABELS_PASSES * labeled / base.batch_size, LABELS_STEPS)
    rounds = [_clamp(ROUND_PASSES * (labeled + share * pool) / base.batch_size, ROUND_STEPS) for share in ROUND_SHARES]
    if steps:
        scale = steps / (first + sum(rounds))
        first, rounds = max(1, round(first * scale)), [max(1, round(r * scale)) for r in rounds]
    return SelfTrainingConfig(labels_steps=first, round_steps=tuple(rounds), seed=seed)


def aligned_pick(probs: torch.Tensor, prior: torch.Tensor, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The pool images a round keeps and their targets (one-hot): predictions ``probs`` (N, K) aligned to
    the class proportions ``prior`` (K) and renormalised, then in each class (its argmax after alignment)
    the ``share`` · N / K most confident. (Hard targets: on CIFAR-10 they gained 1.5 points more than the
    aligned probabilities after four rounds, benchmarks/colour_teacher.py.)"""
    aligned = probs * (prior / probs.mean(0).clamp_min(1e-12))
    aligned = aligned / aligned.sum(1, keepdim=True).clamp_min(1e-12)
    confidence, cls = aligned.max(1)
    per_class = max(1, round(share * len(probs) / len(prior)))
    kept = []
    for c in range(len(prior)):
        idx = torch.nonzero(cls == c).flatten()
        kept.append(idx[confidence[idx].argsort(descending=True)[:per_class]])
    idx = torch.cat(kept)
    return idx, F.one_hot(cls[idx], len(prior)).float()


class Student:
    """One phase's network and its training: a fresh small ResNet trained for ``steps`` on the labeled
    images and, after round 0, pool images with the targets the last network gave them."""

    def __init__(
        self,
        config: SelfTrainingConfig,
        channels: int,
        classes: int,
        phase: int,
        device: torch.device,
        reporter: Reporter | None = None,
    ) -> None:
        self.config, self.classes, self.device = config, classes, device
        self.reporter = reporter or Reporter(quiet=True)  # where a roll-back or a retry is told
        self.steps = config.labels_steps if phase == 0 else config.round_steps[phase - 1]
        self.seed = config.seed + 1009 * phase
        self.lr, self.batch = config.lr, config.batch_size  # lower after a roll-back, smaller after running out
        torch.manual_seed(self.seed)
        net = build_classifier("small-resnet", channels, classes, config.width)
        self.model = net.to(device).to(memory_format=torch.channels_last)
        decay = [p for p in self.model.parameters() if p.ndim > 1]
        rest = [p for p in self.model.parameters() if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}]
        self.opt = torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)

    def lr_at(self, step: int) -> float:
        warm = max(1, int(0.15 * self.steps))
        if step < warm:
            return self.lr * (step + 1) / warm
        return self.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, self.steps - warm)))

    def train(
        self,
        labeled: tuple[torch.Tensor, torch.Tensor],
        pool: tuple[torch.Tensor, torch.Tensor] | None,
        flip: bool,
        on_step: Callable[[int, float], None],
    ) -> nn.Module:
        """Train for ``self.steps`` through the one training loop; ``on_step(step, loss)`` after each (it may
        raise to stop)."""
        self.model.train()
        drive(StudentJob(self, labeled, pool, flip, on_step), None)
        return self.model.eval()


class StudentJob(Job):
    """A :class:`Student`'s steps as the loop's :class:`~gan_augment.train.drive.Job`. Its state (network,
    optimiser, batch stream) is kept every ``CHECK_EVERY`` steps while the loss is finite; a non-finite loss
    goes back there with the learning rate halved, and CUDA running out of memory with the batch halved, each
    at most as often as the semi-supervised teacher's (then an error that says what to change)."""

    def __init__(self, student: Student, labeled: Any, pool: Any, flip: bool, on_step: Any) -> None:
        self.s, self.labeled, self.pool, self.flip, self.on_step = student, labeled, pool, flip, on_step
        c, k = student.config, student.classes
        self.g, self.reporter = torch.Generator().manual_seed(student.seed), Reporter(quiet=True)  # on_step shows it
        self.targets_l = F.one_hot(labeled[1], k).float() * (1 - c.smoothing) + c.smoothing / k
        self.step, self.total, self.loss, self.rollbacks, self.oom_retries = 0, student.steps, 0.0, 0, 0
        self.keep()

    def keep(self) -> None:
        """This state is what a roll-back or a retry returns to."""
        s = self.s
        self.snapshot = copy.deepcopy((self.step, s.model.state_dict(), s.opt.state_dict(), self.g.get_state()))

    def _back(self) -> None:
        step, model, opt, rng = copy.deepcopy(self.snapshot)
        self.step = step
        self.s.model.load_state_dict(model)
        self.s.opt.load_state_dict(opt)
        self.g.set_state(rng)

    def train_step(self) -> dict[str, torch.Tensor]:
        s, c, g, eps = self.s, self.s.config, self.g, self.s.config.smoothing
        for group in s.opt.param_groups:
            group["lr"] = s.lr_at(self.step)
        n_l = s.batch if self.pool is None else max(1, round(s.batch * c.labeled_share))
        i = torch.randint(0, len(self.targets_l), (n_l,), generator=g)
        xs, ts = [self.labeled[0][i]], [self.targets_l[i]]
        if self.pool is not None:
            j = torch.randint(0, len(self.pool[1]), (s.batch - n_l,), generator=g)
            xs.append(self.pool[0][j])
            ts.append(self.pool[1][j] * (1 - eps) + eps / s.classes)
        x = device_augmentation(torch.cat(xs).to(s.device), self.flip, g)
        logits = s.model(x.contiguous(memory_format=torch.channels_last))
        loss = -(torch.cat(ts).to(s.device) * F.log_softmax(logits.float(), 1)).sum(1).mean()
        s.opt.zero_grad(set_to_none=True)
        loss.backward()
        s.opt.step()
        self.step += 1
        self.loss = float(loss.detach())
        return {"loss": loss.detach()}

    def diverged(self, stats: dict[str, torch.Tensor], saving: bool) -> str:
        if not math.isfinite(self.loss):
            return "loss not finite"
        if self.step % CHECK_EVERY == 0:
            self.keep()
        return ""

    def roll_back(self, reason: str) -> None:
        self.rollbacks += 1
        failed, self.s.lr = self.step, self.s.lr / 2
        if self.rollbacks > MAX_ROLLBACKS:
            raise GanAugmentError(
                f"the self-trained teacher diverged at step {failed} of a phase ({reason}) after {MAX_ROLLBACKS} "
                "roll-backs with lower learning rates: try other --teacher-steps, or --teacher none"
            )
        self._back()
        self.s.reporter.message(
            f"the self-trained teacher diverged at step {failed} of a phase ({reason}): rolled back to step "
            f"{self.step}, learning rate halved to {self.s.lr:.2e} [{self.rollbacks}/{MAX_ROLLBACKS}]"
        )

    def out_of_memory(self, exc: BaseException) -> None:
        self.oom_retries += 1
        refusal = (
            f"out of GPU memory in the self-trained teacher (batch {self.s.batch}): free the GPU, or train it "
            "on the CPU (--device cpu), or choose --teacher none"
        )
        half = halved_batch(self.s.batch, self.oom_retries, self.s.device, refusal)
        self._back()
        self.s.batch = half
        self.s.reporter.message(
            f"out of GPU memory in the self-trained teacher: back to step {self.step} of its phase, retrying at "
            f"batch {self.s.batch} [{self.oom_retries}/{MAX_OOM_RETRIES}]"
        )

    def report(self, stats: dict[str, torch.Tensor], bar: Any) -> None:
        self.on_step(self.step, self.loss)


def train_self_training(
    images: torch.Tensor,
    labels: torch.Tensor,
    pool: torch.Tensor,
    config: SelfTrainingConfig,
    device: torch.device,
    reporter: Reporter,
    flip: bool = True,
    start: tuple[int, dict[str, Any] | None] = (0, None),
    save: Callable[[int, nn.Module, nn.Module], None] | None = None,
    stop: dict[str, int | None] | None = None,
) -> tuple[nn.Module, nn.Module]:
    """The labels-only network and the last round's student, in eval mode.

    ``images``/``labels``: the labeled training images (uint8) and their classes; ``pool``: the unlabeled
    images. ``start``: ``(phase, state)`` to continue from, the network of phase − 1 finished
    (``state``: its weights; the labels-only network's too under ``"labels_only"``). ``save(phase, labels_only,
    network)`` runs after each phase; a signal in ``stop`` raises TrainingStopped between two steps (the phase under
    way starts again on resume).
    """
    classes = int(labels.max()) + 1 if len(labels) else 1
    prior = torch.bincount(labels, minlength=classes).float() / max(1, len(labels))
    channels = int(images.shape[1])
    phase, state = start
    first = current = None
    if phase > 0 and state is not None:
        first = _restore(config, channels, classes, state["labels_only"], device)
        current = _restore(config, channels, classes, state["network"], device)
    total = config.steps
    done = 0 if phase == 0 else config.labels_steps + sum(config.round_steps[: phase - 1])
    with reporter.progress(total, done) as bar:
        for p in range(phase, len(config.round_steps) + 1):
            student = Student(config, channels, classes, p, device, reporter)
            picked = _round_pool(current, pool, prior, config, p, student.steps, device, reporter) if p else None

            def on_step(step: int, loss: float, offset: int = done, last: int = student.steps) -> None:
                if stop is not None and stop["signal"] is not None:
                    raise TrainingStopped(stop["signal"])
                bar.update(offset + step, {"loss": loss} if step % 50 == 0 or step == last else None)

            current = student.train((images, labels), picked, flip, on_step)
            done += student.steps
            first = current if p == 0 else first
            if save is not None:
                save(p + 1, first, current)
    assert first is not None and current is not None
    return first, current


def _round_pool(
    current: nn.Module | None,
    pool: torch.Tensor,
    prior: torch.Tensor,
    config: SelfTrainingConfig,
    p: int,
    steps: int,
    device: torch.device,
    reporter: Reporter,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Round ``p``'s training pool: the pool images the last network labels, picked in ``prior``'s
    proportions (``aligned_pick``), with its probabilities as targets."""
    assert current is not None
    probs = predict_logits(current, pool, device).softmax(1)
    idx, targets = aligned_pick(probs, prior, config.shares[p - 1])
    reporter.message(
        f"self-training round {p} of {len(config.round_steps)}: {len(idx)} pool images labeled by the "
        f"last network, {steps} steps"
    )
    return pool[idx], targets


def _restore(
    config: SelfTrainingConfig, channels: int, classes: int, weights: dict[str, Any], device: torch.device
) -> nn.Module:
    net = build_classifier("small-resnet", channels, classes, config.width)
    net.load_state_dict(weights)
    return net.to(device).to(memory_format=torch.channels_last).eval()
