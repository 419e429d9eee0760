"""The training loop: step, check health every few steps, log, draw samples, save; reads top to bottom."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..progress import duration
from .checkpointer import Checkpointer
from .clock import PhaseClock
from .health import DivergenceCheck, TrainingStopped, rollback, shrink_batch, stop_signals
from .trainer import Trainer

CHECK_EVERY = 10  # steps between the (synchronising) health checks
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
            _loop(t, saver, stop)
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


def _loop(t: Trainer, saver: Checkpointer, stop: dict[str, int | None]) -> None:
    log_every = t.config.log_every
    window, diverged, start = MetricsWindow(), DivergenceCheck(t), t.state.step
    clock, told = PhaseClock(t), False
    with t.reporter.progress(t.total_steps, start, left=clock.left) as bar:
        while t.state.step < t.total_steps:
            if stop["signal"] is not None and not t.dist.enabled:
                raise TrainingStopped(stop["signal"])
            if t.state.phase == "pretrain" and t.state.step >= t.pretrain_steps:
                t.enter_per_class()
            try:
                stats = t.train_step()
            except torch.cuda.OutOfMemoryError as exc:
                shrink_batch(t, saver, exc)
                window.clear()
                clock.restart()
                continue
            window.add(stats, t.images_per_step())
            step = t.state.step
            logging = step % log_every == 0 or step == t.total_steps
            saving = saver.saving_due(t)
            if logging or saving or step % CHECK_EVERY == 0:
                reason = diverged(stats, check_weights=saving)
                if reason:
                    rollback(t, saver, reason)
                    window.clear()
                    diverged.reset()
                    clock.restart()
                    continue
            if logging:
                row = window.row(t)
                saver.log(t, row)
                bar.update(step, row)
            else:  # a first reading soon after the start, so the bar is never blank for long
                bar.update(step, window.peek() if step - start in EARLY and not t.reporter.quiet else None)
            if saver.samples_due(t):
                saver.save_samples(t)
            if saving:
                saver.save(t)
            clock.tick()
            if not told and step < t.total_steps:
                told = _tell_expected(t, clock, step)


def _tell_expected(t: Trainer, clock: PhaseClock, step: int) -> bool:
    """Once the first steps are timed: the GAN training's expected duration, in one line."""
    seconds = clock.left(step)
    if seconds is None:
        return False
    t.reporter.message(f"expected: about {duration(seconds)} more for the GAN(s) at this speed (its first steps timed)")
    return True
