"""The one training loop. The GANs (:mod:`~gan_augment.train.loop`) and the semi-supervised teacher
(:mod:`~gan_augment.train.ssl_steps`) step through it: each is a :class:`Job` that says how it steps,
saves, checks its health, rolls back and reports; the loop owns the order and the stop signals."""

from __future__ import annotations

from typing import Any

import torch

from ..progress import Reporter, SecondsLeft
from .health import TrainingStopped

CHECK_EVERY = 10  # steps between the (synchronising) health checks of the jobs that check on a cadence


class Job:
    """A training the loop drives, step by step. A job overrides what it does; what it does not is nothing
    (no saves, no time-left estimate of its own, stoppable between two steps)."""

    reporter: Reporter
    step: int  # steps done (a property where the job keeps it elsewhere)
    total: int  # steps to do in all

    def stoppable(self) -> bool:
        """Whether a stop signal stops it between two steps (a distributed job stops at once or not at all)."""
        return True

    def left(self) -> SecondsLeft | None:
        """Its own time-left estimate for the progress bar (None: the mean rate so far)."""
        return None

    def before_step(self) -> None:
        """What comes before a step (the GANs: leave pre-training when it is done)."""

    def train_step(self) -> dict[str, torch.Tensor]:
        """One step; its statistics (tensors, possibly still on the device)."""
        raise NotImplementedError

    def count(self, stats: dict[str, torch.Tensor]) -> None:
        """Take in a step's statistics (for the rows it logs)."""

    def out_of_memory(self, exc: BaseException) -> None:
        """After CUDA ran out of memory in a step: get ready to retry smaller, or raise."""
        raise exc

    def saving_due(self) -> bool:
        """Whether it saves after this step."""
        return False

    def diverged(self, stats: dict[str, torch.Tensor], saving: bool) -> str:
        """Why it has diverged (checked on its own cadence, and before every save), or ``""``."""
        return ""

    def roll_back(self, reason: str) -> None:
        """Go back to its last saved state with lower learning rates (or raise past its limit)."""
        raise NotImplementedError

    def report(self, stats: dict[str, torch.Tensor], bar: Any) -> None:
        """Log, update the progress bar, draw samples or measure: whatever it shows of this step."""

    def save(self) -> None:
        """Save (at a step boundary)."""

    def after_step(self) -> None:
        """What follows a step (the GANs: the clock, the expected duration)."""


def drive(job: Job, stop: dict[str, int | None] | None) -> None:
    """Train ``job`` to its total: between two steps a stop signal in ``stop`` (see
    :func:`~gan_augment.train.health.stop_signals`) raises :class:`TrainingStopped` (the caller saves);
    CUDA out of memory goes to the job to retry; a diverged step is rolled back instead of reported or saved."""
    with job.reporter.progress(job.total, job.step, left=job.left()) as bar:
        while job.step < job.total:
            if stop is not None and stop["signal"] is not None and job.stoppable():
                raise TrainingStopped(stop["signal"])
            job.before_step()
            try:
                stats = job.train_step()
            except torch.cuda.OutOfMemoryError as exc:
                job.out_of_memory(exc)
                continue
            job.count(stats)
            saving = job.saving_due()
            reason = job.diverged(stats, saving)
            if reason:
                job.roll_back(reason)
                continue
            job.report(stats, bar)
            if saving:
                job.save()
            job.after_step()
