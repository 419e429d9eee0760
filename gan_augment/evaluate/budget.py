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
from ..train.plan import phase_step_seconds
from ..train.ssl import default_ssl_steps
from ..train.teacher import ssl_seconds, teacher_plan
from .arms import SeedArms
from .classifier import train_classifier
from .registry import get_arm

PROBE_STEPS = 3


def _classifier_cost(arms: SeedArms) -> tuple[float, float]:
    """(setup seconds, seconds a step) of the secondary classifier: one step and 1 + PROBE_STEPS timed, after
    an untimed step (the process's first training is about twice as slow: timed cold, a step measured at 0.36 s
    where 60 took 0.53 s each)."""
    s = arms.settings
    times = []
    for steps in (0, 1, 1 + PROBE_STEPS):
        cfg = dataclasses.replace(s.classifier, steps=max(1, steps))  # 0: the untimed warm-up step
        synchronize(s.device)
        t0 = time.perf_counter()
        train_classifier(arms.base, arms.channels, arms.k, cfg, s.device, arms.seed, s.flip)
        synchronize(s.device)
        times.append(time.perf_counter() - t0)
    per = max(0.0, (times[2] - times[1]) / PROBE_STEPS)
    return max(0.0, times[1] - per), per


def _gan_run_seconds(arms: SeedArms, key: str) -> float:
    """A GAN run's training seconds: each phase's step timed on this seed's data (fit's plan does the same)."""
    mode = "per-class" if key == "default" else key
    trainer = Trainer(arms.gan_cfg.replace(mode=mode), arms.gan_data(), arms.settings.device)
    per = phase_step_seconds(trainer, trainer.pretrain_steps > 0, True)
    main = per[trainer.phase_at(trainer.total_steps - 1)]
    return trainer.pretrain_steps * per.get("pretrain", 0.0) + arms.gan_cfg.steps * main


def _batch_share(arms: SeedArms, synthetic: bool) -> float:
    """A classifier step's cost on an arm's data against the labeled images' (a step is a batch of
    ``min(batch size, items)``: an arm that adds images at ``synthetic_ratio`` trains on larger batches
    when the labeled images are fewer than a batch)."""
    n, s = len(arms.split.train_labels), arms.settings
    ratio = min(s.synthetic_ratio, 0.95)
    items = n + round(ratio * n / (1 - ratio)) if synthetic else n
    return min(s.classifier.batch_size, items) / max(1, min(s.classifier.batch_size, n))


def arm_seconds(arms: SeedArms, names: Sequence[str]) -> dict[str, float]:
    """Each arm's expected seconds on a seed where none has run yet, as the journal will time it: its
    classifier(s), and the GAN runs (and the run's teacher) it is the first in ``names`` to need (the runs
    given with ``--run`` are free). Every kind of training is timed here on this seed's data (random
    streams forked: the evaluation is the same with or without the estimate)."""
    s, dev = arms.settings, arms.settings.device
    specs = [get_arm(n) for n in names]
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        setup, per = _classifier_cost(arms)
        keys = {k for a in specs for k in a.gans} - set(arms.runs)
        run_seconds = {k: _gan_run_seconds(arms, k) for k in keys}
        if "default" in keys:
            cfg = arms.gan_cfg.replace(teacher="auto", teacher_steps=s.ssl.steps)
            run_seconds["default"] += sum(s for *_, s in teacher_plan(arms.gan_data(), None, cfg, dev))
        ssl = 0.0
        if "ssl" in names:
            ssl_cfg, images = s.ssl.replace(seed=arms.seed), arms.split.train_images
            steps = ssl_cfg.steps or default_ssl_steps(
                dev, ssl_cfg.resolved_architecture(images.shape[-1], images.shape[1])
            )
            ssl = steps * ssl_seconds(arms.gan_data(), ssl_cfg, dev)
    out: dict[str, float] = {}
    for a in specs:
        clf = setup + s.classifier.steps * per * _batch_share(arms, a.synthetic)
        classifiers = a.classifiers + (int(a.quality) if s.quality else 0)  # CAS: a classifier
        out[a.name] = classifiers * clf + sum(run_seconds.pop(k, 0.0) for k in a.gans)
        out[a.name] += ssl if a.name == "ssl" else 0.0
    return out


def tell_expected(arms: SeedArms, todo: Sequence[Sequence[str]], reporter: Reporter) -> dict[str, float]:
    """Print the expected duration of the whole evaluation up front: ``todo``, each seed's arms still to run
    (nothing when quiet: the timing costs seconds). Returns each arm's expected seconds ({} when quiet)."""
    names = list(dict.fromkeys(n for seed in todo for n in seed))
    if reporter.quiet or not names:
        return {}
    expected = arm_seconds(arms, names)
    seconds = sum(expected[n] for seed in todo for n in seed)
    seeds = sum(bool(seed) for seed in todo)
    reporter.message(
        f"expected: about {duration(seconds)} in all for {len(names)} arms on {seeds} seed(s) "
        f"(each kind of training timed here on its first steps, on this data)"
    )
    return expected
