"""The training loop: step, check health every few steps, log, draw samples, save; reads top to bottom."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..io.checkpoint import CHECKPOINT_NAME
from .health import DivergenceCheck, TrainingStopped, log_event, rollback, shrink_batch, stop_signals

if TYPE_CHECKING:
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
        t.elapsed += dt
        row: dict[str, Any] = {"step": t.step, "phase": t.phase}
        row.update({k: round(float(v) / self.n, 5) for k, v in self.sums.items()})
        row["img_per_s"] = round(self.images / max(dt, 1e-9), 1)
        row["elapsed_s"] = round(t.elapsed, 2)
        self.t_last, self.images = now, 0
        self.clear()
        return row


def train(t: Trainer) -> Path:
    """Train ``t`` to its ``total_steps``; return the checkpoint path (see :meth:`Trainer.fit`)."""
    with stop_signals(t.reporter) as stop:
        fresh = not (t.out_dir / CHECKPOINT_NAME).is_file()
        if t.dist.enabled:
            fresh = bool(t.dist.gather(fresh)[0])  # rank 0 decides: the save is collective
        if fresh:
            t.save()  # a rollback target from the start, and something to resume after kill -9
        try:
            _loop(t, stop)
        except KeyboardInterrupt:
            if t.dist.enabled:  # the other ranks may be gone: no collective save
                t.reporter.message(f"interrupted at step {t.step}: resume from the last checkpoint with --resume")
                raise
            t.save()
            t.reporter.message(
                f"interrupted at step {t.step}: checkpoint saved; continue with "
                f"`gan-augment fit ... --out {t.out_dir} --resume`"
            )
            raise
    return t.out_dir / CHECKPOINT_NAME


def _loop(t: Trainer, stop: dict[str, int | None]) -> None:
    cfg = t.config
    window, diverged, start = MetricsWindow(), DivergenceCheck(t), t.step
    with t.reporter.progress(t.total_steps, t.step) as bar:
        while t.step < t.total_steps:
            if stop["signal"] is not None and not t.dist.enabled:
                raise TrainingStopped(stop["signal"])
            if t.phase == "pretrain" and t.step >= t.pretrain_steps:
                t.enter_per_class()
            try:
                stats = t.train_step()
            except torch.cuda.OutOfMemoryError as exc:
                shrink_batch(t, exc)
                window.clear()
                continue
            window.add(stats, t.images_per_step())
            last = t.step == t.total_steps
            logging = t.step % cfg.log_every == 0 or last
            saving = t.step % cfg.checkpoint_every == 0 or last
            if logging or saving or t.step % CHECK_EVERY == 0:
                reason = diverged(stats, check_weights=saving)
                if reason:
                    rollback(t, reason)
                    window.clear()
                    diverged.reset()
                    continue
            if logging:
                row = window.row(t)
                log_event(t, row)
                bar.update(t.step, row)
            else:  # a first reading soon after the start, so the bar is never blank for long
                bar.update(t.step, window.peek() if t.step - start in EARLY and not t.reporter.quiet else None)
            if t.step % cfg.sample_every == 0 or last:
                t.save_samples()
            if saving:
                t.save()
