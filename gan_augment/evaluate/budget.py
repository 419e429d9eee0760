"""What an evaluation will cost, said before it starts: its trainings counted from the arm registry,
each kind timed on a few steps of a throwaway copy (random streams forked: the evaluation is the same
with or without the estimate)."""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import torch

from ..device import synchronize
from ..progress import Reporter, duration
from ..train import Trainer
from ..train.ssl import default_ssl_steps
from ..train.teacher import ssl_seconds, teacher_seconds
from ..train.trainer import pretrain_steps
from .arms import SeedArms
from .classifier import train_classifier
from .registry import get_arm

PROBE_STEPS = 3
# The arms that train no secondary classifier.
NO_CLASSIFIER = ("teacher", "teacher-features", "d-features", "ssl")


def _classifier_cost(arms: SeedArms) -> tuple[float, float]:
    """(setup seconds, seconds a step) of the secondary classifier: one step and 1 + PROBE_STEPS timed."""
    s = arms.settings
    times = []
    for steps in (1, 1 + PROBE_STEPS):
        cfg = dataclasses.replace(s.classifier, steps=steps)
        synchronize(s.device)
        t0 = time.perf_counter()
        train_classifier(arms.base, arms.channels, arms.k, cfg, s.device, arms.seed, s.flip)
        synchronize(s.device)
        times.append(time.perf_counter() - t0)
    per = max(0.0, (times[1] - times[0]) / PROBE_STEPS)
    return max(0.0, times[0] - per), per


def _gan_step(arms: SeedArms) -> float:
    """Seconds a step of one GAN model on all the seed's images (a per-class run's pre-training step)."""
    s = arms.settings
    trainer = Trainer(arms.gan_cfg.replace(mode="unconditional"), arms.gan_data(), s.device)
    trainer.train_step()
    synchronize(s.device)
    t0 = time.perf_counter()
    for _ in range(PROBE_STEPS):
        trainer.train_step()
    synchronize(s.device)
    return (time.perf_counter() - t0) / PROBE_STEPS


def _gan_run_seconds(arms: SeedArms, key: str, step: float) -> float:
    """A GAN run's training seconds, from one model's step: per class K models a step after pre-training."""
    cfg, pool = arms.gan_cfg, arms.split.unlabeled is not None and len(arms.split.unlabeled) > 0
    if key in ("per-class", "default"):
        return pretrain_steps(cfg.replace(mode="per-class"), pool) * step + cfg.steps * arms.k * step
    return cfg.steps * step * (2 if key == "conditional" and pool else 1)  # conditional: a pool batch too


def expected_seconds(arms: SeedArms, names: Sequence[str], seeds_left: int) -> float:
    """The expected training time of ``names`` on ``seeds_left`` seeds (the GAN runs already given are free)."""
    specs = [get_arm(n) for n in names]
    with torch.random.fork_rng(devices=[arms.settings.device] if arms.settings.device.type == "cuda" else []):
        setup, per = _classifier_cost(arms)
        clf = setup + arms.settings.classifier.steps * per
        classifiers = 1 + sum(a.name not in NO_CLASSIFIER and a.name != "baseline" for a in specs)
        classifiers += sum(a.quality for a in specs) if arms.settings.quality else 0  # CAS: a classifier
        keys = {k for a in specs for k in a.gans} - set(arms.runs)
        seconds = classifiers * clf
        if keys:
            step = _gan_step(arms)
            seconds += sum(_gan_run_seconds(arms, k, step) for k in keys)
        if "default" in keys:
            cfg = arms.gan_cfg.replace(teacher="auto", teacher_steps=arms.settings.ssl.steps)
            _, iterations, per_it = teacher_seconds(arms.gan_data(), cfg, arms.settings.device)
            seconds += iterations * per_it
        if "ssl" in names:
            ssl, dev = arms.settings.ssl.replace(seed=arms.seed), arms.settings.device
            images = arms.split.train_images
            steps = ssl.steps or default_ssl_steps(dev, ssl.resolved_architecture(images.shape[-1], images.shape[1]))
            seconds += steps * ssl_seconds(arms.gan_data(), ssl, dev)
    return seeds_left * seconds


def tell_expected(arms: SeedArms, names: Sequence[str], seeds_left: int, reporter: Reporter) -> None:
    """Print the expected duration up front (nothing when quiet: the timing costs seconds)."""
    if reporter.quiet or not seeds_left:
        return
    seconds = expected_seconds(arms, names, seeds_left)
    reporter.message(
        f"expected: about {duration(seconds)} for {len(names)} arms on {seeds_left} seed(s) "
        f"(each kind of training timed on its first steps)"
    )
