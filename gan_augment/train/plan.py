"""The plan ``fit`` prints before anything trains: what will run and the sizes, then every phase still to
train with its steps and its time, each timed on a throwaway copy's first steps (random streams forked:
the run is the same with or without the plan), and, up front, a warning where this device is too slow
for the run's teacher to pay off."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..data import ImageData
from ..device import synchronize
from ..progress import Reporter, duration
from .distributed import DistContext
from .teacher import teacher_plan, teacher_warning
from .trainer import Trainer

PROBE_STEPS = 3  # timed after one warm-up step, in each phase

Phase = tuple[str, str, "float | None"]  # (name, what it trains, seconds: None when not timed)


def tell_plan(
    trainer: Trainer,
    data: ImageData,
    out_dir: Path,
    dev: torch.device,
    job: DistContext,
    compile: str,
    reporter: Reporter,
) -> None:
    """Print the plan: the run's settings, each phase left with its time, the total and any warning."""
    reporter.message(settings_line(trainer, data, dev, job, compile))
    if reporter.quiet or not job.is_main:  # the timing costs seconds; other ranks print nothing
        return
    phases = gan_phases(trainer, data, timed=not job.enabled and compile == "off")
    teacher = teacher_plan(data, out_dir, trainer.config, dev)
    phases += teacher
    if not phases:
        return
    width = max(len(name) for name, _, _ in phases)
    reporter.message("the plan (each phase timed here on its first steps):")
    for name, what, seconds in phases:
        when = f"about {duration(seconds)}" if seconds is not None else "timed once it starts"
        reporter.message(f"  {name:<{width}}  {when:>13}  {what}")
    times = [s for _, _, s in phases if s is not None]
    if len(times) == len(phases) > 1:
        reporter.message(f"  {'in all':<{width}}  {'about ' + duration(sum(times)):>13}")
    warning = teacher_warning(trainer.config, data, dev, sum(s or 0.0 for _, _, s in teacher))
    if warning:
        reporter.message(warning)


def settings_line(trainer: Trainer, data: ImageData, dev: torch.device, job: DistContext, compile: str) -> str:
    """What will run, stated plainly: every GAN phase's steps (``--steps`` is the main phase's), the sizes."""
    config, pre = trainer.config, trainer.pretrain_steps
    where = f"{dev}" + (f" × {job.world} processes" if job.enabled else "")
    if pre:
        steps = (
            f"{trainer.total_steps} steps in all: {pre} of unconditional pre-training on all {len(data.labels)} "
            f"images, then {config.steps} per-class steps (--steps) of {trainer.num_classes} models"
        )
    elif config.mode == "per-class":
        steps = f"{config.steps} per-class steps of {trainer.num_classes} models"
    else:
        steps = f"{config.steps} steps"
    return (
        f"training {config.mode} on {where}: {steps}; batch {config.batch_size}, widths G {config.model.g_width} / "
        f"D {config.model.d_width}, DiffAugment {'on' if trainer.diffaugment else 'off'}, loss {config.loss}"
        + (f", compiled ({compile})" if compile != "off" else "")
    )


def gan_phases(trainer: Trainer, data: ImageData, timed: bool) -> list[Phase]:
    """The GAN phases left from the trainer's step, each with its seconds (``timed``: on a throwaway copy)."""
    step, pre, total = trainer.state.step, trainer.pretrain_steps, trainer.total_steps
    pre_left, main_left = max(0, pre - step), total - max(step, pre)
    main = "per-class" if trainer.config.mode == "per-class" else trainer.config.mode
    per_step = phase_step_seconds(trainer, pre_left > 0, main_left > 0) if timed else {}
    phases: list[Phase] = []
    if pre_left:
        what = f"{pre_left} steps of one model on all {len(data.labels)} images"
        phases.append(("GAN pre-training", what, _times(pre_left, per_step.get("pretrain"))))
    if main_left:
        models = f" of {trainer.num_classes} models" if main == "per-class" else ""
        name = "GAN per-class" if main == "per-class" else f"GAN ({main})"
        phases.append((name, f"{main_left} steps{models}", _times(main_left, per_step.get(main))))
    return phases


def _times(steps: int, per_step: float | None) -> float | None:
    return None if per_step is None else steps * per_step


def phase_step_seconds(trainer: Trainer, pretrain: bool, main: bool) -> dict[str, float]:
    """Seconds a step of each phase asked for (``pretrain``, the main one by its name), on a throwaway copy of
    ``trainer`` (the caller's random streams kept; ``evaluate``'s estimate times its GAN runs with it)."""
    dev = trainer.device
    out: dict[str, float] = {}
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        probe = Trainer(trainer.config, trainer.data, dev, Reporter(quiet=True))
        if pretrain and probe.state.phase == "pretrain":
            out["pretrain"] = _time_steps(probe)
        if main:
            if probe.state.phase == "pretrain":
                probe.state.step = probe.pretrain_steps
                probe.enter_per_class()
            out[probe.state.phase] = _time_steps(probe)
        del probe
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return out


def _time_steps(probe: Trainer) -> float:
    probe.train_step()  # warm-up: allocations, kernels chosen
    synchronize(probe.device)
    t0 = time.perf_counter()
    for _ in range(PROBE_STEPS):
        probe.train_step()
    synchronize(probe.device)
    return (time.perf_counter() - t0) / PROBE_STEPS
