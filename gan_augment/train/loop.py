"""The training loop: step, check health every few steps, log, draw samples, save; reads top to bottom."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..progress import SecondsLeft, duration
from .checkpointer import Checkpointer
from .clock import PhaseClock
from .drive import CHECK_EVERY, Job, drive
from .health import DivergenceCheck, rollback, shrink_batch, stop_signals
from .trainer import Trainer

EARLY = (1, 2, 5, 10, 20)  # steps after a start at which the progress bar gets a first reading


class MetricsWindow:
    """Sums of step statistics and images seen since the last logged row."""

    def __init__(self) -> None:
        self.t_last = time.perf_counter()
        self.images = 0
        self.clear()

    def clear(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0

    def add(self, stats: dict[str, torch.Tensor], images: int) -> None:
        for name, v in stats.items():
            self.sums[name] = self.sums.get(name, 0) + v
        self.n += 1
        self.images += images

    def peek(self) -> dict[str, Any]:
        """The window's means and throughput so far, for the progress bar (not logged, not cleared)."""
        dt = time.perf_counter() - self.t_last
        row: dict[str, Any] = {k: float(v) / max(self.n, 1) for k, v in self.sums.items()}
        return {**row, "img_per_s": self.images / max(dt, 1e-9)}

    def row(self, t: Trainer) -> dict[str, Any]:
        """The row to log (mean statistics, throughput, elapsed time); starts a new window."""
        now = time.perf_counter()
        dt = now - self.t_last
        t.state.elapsed_s += dt
        row: dict[str, Any] = {"step": t.state.step, "phase": t.state.phase}
        row.update({k: round(float(v) / self.n, 5) for k, v in self.sums.items()})
        row["img_per_s"] = round(self.images / max(dt, 1e-9), 1)
        row["elapsed_s"] = round(t.state.elapsed_s, 2)
        self.t_last, self.images = now, 0
        self.clear()
        return row


def train(t: Trainer, saver: Checkpointer) -> Path:
    """Train ``t`` to its ``total_steps``, ``saver`` writing its checkpoints, samples and metrics;
    return the checkpoint path.

    SIGINT (Ctrl-C) and SIGTERM stop at the end of the current step with a checkpoint; a second
    Ctrl-C stops at once. Divergence rolls back to the last checkpoint with lower learning rates;
    CUDA running out of memory retries at half the batch (see :mod:`~gan_augment.train.health`).
    """
    with stop_signals(t.reporter) as stop:
        fresh = not saver.exists()
        if t.dist.enabled:
            fresh = bool(t.dist.gather(fresh)[0])  # rank 0 decides: the save is collective
        if fresh:
            saver.save(t)  # a rollback target from the start, and something to resume after kill -9
        try:
            drive(GanJob(t, saver), stop)
        except KeyboardInterrupt:
            if t.dist.enabled:  # the other ranks may be gone: no collective save
                t.reporter.message(f"interrupted at step {t.state.step}: resume from the last checkpoint with --resume")
                raise
            saver.save(t)
            t.reporter.message(
                f"interrupted at step {t.state.step}: checkpoint saved; continue with "
                f"`gan-augment fit ... --out {saver.out_dir} --resume`"
            )
            raise
    return saver.path


class GanJob(Job):
    """The GANs' training as the loop's :class:`~gan_augment.train.drive.Job`: steps of ``trainer``, saved by
    ``saver``; health checks every ``CHECK_EVERY`` steps and at every log row and save; roll-back and
    out-of-memory retry as :mod:`~gan_augment.train.health` does them; logged rows, samples and the clock."""

    def __init__(self, t: Trainer, saver: Checkpointer) -> None:
        self.t, self.saver, self.reporter = t, saver, t.reporter
        self.window, self.check, self.start = MetricsWindow(), DivergenceCheck(t), t.state.step
        self.clock, self.told = PhaseClock(t), False

    @property
    def step(self) -> int:
        return self.t.state.step

    @property
    def total(self) -> int:
        return self.t.total_steps

    def stoppable(self) -> bool:
        return not self.t.dist.enabled  # the ranks stop together: at the next checkpoint, or by being killed

    def left(self) -> SecondsLeft:
        return self.clock.left

    def before_step(self) -> None:
        if self.t.state.phase == "pretrain" and self.t.state.step >= self.t.pretrain_steps:
            self.t.enter_per_class()

    def train_step(self) -> dict[str, torch.Tensor]:
        return self.t.train_step()

    def count(self, stats: dict[str, torch.Tensor]) -> None:
        self.window.add(stats, self.t.images_per_step())

    def out_of_memory(self, exc: BaseException) -> None:
        shrink_batch(self.t, self.saver, exc)
        self.window.clear()
        self.clock.restart()

    def saving_due(self) -> bool:
        return self.saver.saving_due(self.t)

    def _logging(self) -> bool:
        return self.step % self.t.config.log_every == 0 or self.step == self.total

    def diverged(self, stats: dict[str, torch.Tensor], saving: bool) -> str:
        if self._logging() or saving or self.step % CHECK_EVERY == 0:
            return self.check(stats, check_weights=saving)
        return ""

    def roll_back(self, reason: str) -> None:
        rollback(self.t, self.saver, reason)
        self.window.clear()
        self.check.reset()
        self.clock.restart()

    def report(self, stats: dict[str, torch.Tensor], bar: Any) -> None:
        step = self.step
        if self._logging():
            row = self.window.row(self.t)
            self.saver.log(self.t, row)
            bar.update(step, row)
        else:  # a first reading soon after the start, so the bar is never blank for long
            early = step - self.start in EARLY and not self.reporter.quiet
            bar.update(step, self.window.peek() if early else None)
        if self.saver.samples_due(self.t):
            self.saver.save_samples(self.t)

    def save(self) -> None:
        self.saver.save(self.t)

    def after_step(self) -> None:
        self.clock.tick()
        if not self.told and self.step < self.total:
            self.told = _tell_expected(self.t, self.clock, self.step)


def _tell_expected(t: Trainer, clock: PhaseClock, step: int) -> bool:
    """Once the first steps are timed: the GAN training's expected duration, in one line."""
    seconds = clock.left(step)
    if seconds is None:
        return False
    t.reporter.message(f"expected: about {duration(seconds)} more for the GAN(s) at this speed (its first steps timed)")
    return True
