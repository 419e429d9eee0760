"""The semi-supervised teacher's steps through the one training loop (:func:`~gan_augment.train.drive.drive`):
saves by the step count and the clock, roll-back of a diverging teacher, the learning curve and its progress."""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable

import torch
from torch import nn

from ..errors import GanAugmentError
from ..progress import Reporter
from .drive import CHECK_EVERY, Job, drive
from .health import MAX_OOM_RETRIES, MAX_ROLLBACKS, halved_batch

EARLY_READINGS = (1, 2, 5, 10, 20)  # iterations after a start at which the losses are shown at once


class TeacherJob(Job):
    """An :class:`~gan_augment.train.ssl.SSLRun` as the loop's :class:`~gan_augment.train.drive.Job`. A
    diverging run (a non-finite loss, checked every ``CHECK_EVERY`` iterations, at the last and before every
    save) goes back to the state it last saved with its learning rate halved, at most ``MAX_ROLLBACKS``
    times; running out of GPU memory goes back there too and retries at half the batch, at most
    ``MAX_OOM_RETRIES`` times (then an error that says what to change), as the GANs do."""

    def __init__(self, run: Any, reporter: Reporter, save: Callable[[], None] | None = None, **every: Any) -> None:
        self.run, self.reporter, self.save_fn = run, reporter, save
        self.save_every, self.save_seconds = int(every.get("save_every", 0)), float(every.get("save_seconds", 0.0))
        self.evaluate, self.eval_every = every.get("evaluate"), int(every.get("eval_every", 0))
        self.on_stats: Callable[[int, dict[str, float]], None] | None = every.get("on_stats")
        self.curve: list[dict[str, float]] = []
        self.t0, self.last_save, self.start, self.rollbacks = time.perf_counter(), time.monotonic(), run.step, 0
        self.oom_retries = 0
        self.keep()

    @property
    def step(self) -> int:
        return int(self.run.step)

    @property
    def total(self) -> int:
        return int(self.run.config.steps)

    def train_step(self) -> dict[str, torch.Tensor]:
        return self.run.train_step()

    def out_of_memory(self, exc: BaseException) -> None:
        b, failed = self.run.batch, self.step + 1
        self.oom_retries += 1
        refusal = (
            f"out of GPU memory in the teacher's iteration {failed} (batch {b}): "
            "free the GPU, or train it on the CPU (--device cpu), or choose --teacher none"
        )
        half = halved_batch(b, self.oom_retries, self.run.device, refusal)
        self._back()  # the iteration may have moved some weights: from the last save
        self.run.set_batch(half)
        self.reporter.message(
            f"out of GPU memory in the teacher's iteration {failed} at batch {b}: back to iteration {self.step}, "
            f"retrying at batch {b // 2} [{self.oom_retries}/{MAX_OOM_RETRIES}]"
        )

    def saving_due(self) -> bool:
        by_count = bool(self.save_every) and self.step % self.save_every == 0
        return by_count or bool(self.save_seconds and time.monotonic() - self.last_save >= self.save_seconds)

    def keep(self) -> None:
        """The run's state now is what a roll-back returns to (where it is saved)."""
        self.snapshot = copy.deepcopy(self.run.state_dict())

    def _back(self) -> None:
        """Back to the kept state (a copy: the optimisers take the tensors they are given as their own)."""
        self.run.load_state_dict(copy.deepcopy(self.snapshot))

    def diverged(self, stats: dict[str, torch.Tensor], saving: bool) -> str:
        if not (saving or self.step % CHECK_EVERY == 0 or self.step == self.total) or not stats:
            return ""
        values = torch.stack([v.float() for v in stats.values()]).tolist()
        bad = [k for k, v in zip(stats, values) if not math.isfinite(v)]
        return f"{', '.join(bad)} not finite" if bad else ""

    def roll_back(self, reason: str) -> None:
        self.rollbacks += 1
        failed, halved = self.step, self.run.lr / 2
        if self.rollbacks > MAX_ROLLBACKS:
            raise GanAugmentError(
                f"the teacher diverged at iteration {failed} ({reason}) after {MAX_ROLLBACKS} roll-backs with lower "
                "learning rates: try fewer --teacher-steps, or --teacher none"
            )
        self._back()
        self.run.lr = halved
        self.reporter.message(
            f"the teacher diverged at iteration {failed} ({reason}): rolled back to iteration {self.step}, "
            f"learning rate halved to {halved:.2e} [{self.rollbacks}/{MAX_ROLLBACKS}]"
        )

    def report(self, stats: dict[str, torch.Tensor], bar: Any) -> None:
        step, last = self.step, self.step == self.total
        if self.evaluate is not None and self.eval_every and (step % self.eval_every == 0 or last):
            acc = self.evaluate(self.run.average.averaged(self.run.gan.d))
            self.curve.append({"step": step, "accuracy": acc, "seconds": round(time.perf_counter() - self.t0, 1)})
        if step % 50 == 0 or last or step - self.start in EARLY_READINGS:
            row = {k: float(v) for k, v in stats.items()}
            bar.update(step, row)
            if self.on_stats is not None and (step % 50 == 0 or last):
                self.on_stats(step, row)
        else:
            bar.update(step, None)  # the count and time left move every iteration

    def save(self) -> None:
        if self.step >= self.total:
            return  # the end is saved by the caller, as the finished teacher
        if self.save_fn is not None:
            self.save_fn()
        self.keep()
        self.last_save = time.monotonic()


def run_steps(
    run: Any,
    reporter: Reporter,
    evaluate: Callable[[nn.Module], float] | None = None,
    eval_every: int = 0,
    save: Callable[[], None] | None = None,
    save_every: int = 0,
    stop: dict[str, int | None] | None = None,
    save_seconds: float = 0.0,
    on_stats: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``run`` (an :class:`~gan_augment.train.ssl.SSLRun`) to its ``config.steps`` through the one loop;
    the learning curve (see :func:`~gan_augment.train.ssl.train_ssl`). ``save`` is called every ``save_every``
    iterations and every ``save_seconds`` (0: never by the clock); a signal in ``stop`` raises TrainingStopped
    between two iterations; ``on_stats(step, row)`` gets the losses every 50 iterations (TensorBoard)."""
    every = dict(save_every=save_every, save_seconds=save_seconds, evaluate=evaluate, eval_every=eval_every)
    job = TeacherJob(run, reporter, save, on_stats=on_stats, **every)
    drive(job, stop)
    return job.curve
