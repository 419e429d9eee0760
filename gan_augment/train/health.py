"""Keeping a run alive: stop signals, divergence checks and roll-back, retrying after CUDA runs out of memory."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from typing import Any, Iterator

import torch

from ..errors import GanAugmentError
from ..progress import Reporter
from .checkpointer import Checkpointer
from .trainer import Trainer

# What stops training with a checkpoint: Ctrl-C, kill, and a closed terminal (SIGHUP, where it exists).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
COLLAPSE_LOSS = 1e-3  # a BCE or hinge discriminator loss below this counts towards collapse


class TrainingStopped(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP asked training to stop; a checkpoint was written at a step boundary."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_signals(reporter: Reporter) -> Iterator[dict[str, int | None]]:
    """While training: SIGINT, SIGTERM and SIGHUP (the terminal closed) set a flag the loop checks between
    steps (a second SIGINT stops at once)."""
    stop: dict[str, int | None] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        if stop["signal"] is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop["signal"] = signum
        reporter.message(f"{signal.Signals(signum).name} received: stopping after this step (Ctrl-C again to stop now)")

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class DivergenceCheck:
    """Says why training has diverged (non-finite losses or weights, a collapsed discriminator), or ``""``."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.collapse_run = 0
        self.last_check = trainer.state.step

    def reset(self) -> None:
        self.collapse_run, self.last_check = 0, self.trainer.state.step

    def __call__(self, stats: dict[str, torch.Tensor], check_weights: bool) -> str:
        t, cfg = self.trainer, self.trainer.config
        # NaN in the weights makes every later loss NaN, so this step's losses suffice between checkpoints.
        now = dict(zip(stats, torch.stack([v.float() for v in stats.values()]).tolist()))
        reason = ", ".join(k for k, v in now.items() if not math.isfinite(v))
        if not reason and check_weights and not t.pair.weights_finite():
            reason = "weights"
        reason = f"{reason} not finite" if reason else ""
        if not reason and cfg.collapse_steps and cfg.loss in ("bce", "hinge"):
            step = t.state.step
            self.collapse_run = self.collapse_run + (step - self.last_check) if now["loss_d"] < COLLAPSE_LOSS else 0
            if self.collapse_run >= cfg.collapse_steps:
                reason = f"discriminator loss below 1e-3 for {self.collapse_run} steps"
        self.last_check = t.state.step
        if t.dist.enabled:  # every rank rolls back together, or none does
            reason = "; ".join(r for r in t.dist.gather(reason) if r)
        return reason


def rollback(t: Trainer, saver: Checkpointer, reason: str) -> None:
    """Go back to the last checkpoint with both learning rates halved (at most ``max_rollbacks`` times)."""
    cfg, state = t.config, t.state
    state.rollbacks += 1
    if state.rollbacks > cfg.max_rollbacks or not saver.exists():
        raise GanAugmentError(
            f"training diverged at step {state.step} ({reason})"
            + (f" after {cfg.max_rollbacks} roll-backs with lower learning rates" if cfg.max_rollbacks else "")
            + f"; the last good checkpoint {str(saver.path)!r} is intact: "
            "try lower --lr-g/--lr-d, --loss hinge or --diffaugment on"
        )
    failed_at, rollbacks, halved = state.step, state.rollbacks, t.adam.halved()
    saver.restore(t)
    t.state.rollbacks, t.state.lr_g, t.state.lr_d = rollbacks, halved.lr_g, halved.lr_d
    t.pair.set_learning_rates(halved)
    t.reporter.message(
        f"training diverged at step {failed_at} ({reason}): rolled back to step {t.state.step}, learning rates "
        f"halved to {halved.lr_g:.2e} (G) and {halved.lr_d:.2e} (D) [{rollbacks}/{cfg.max_rollbacks}]"
    )
    saver.log(
        t,
        {
            "event": "rollback",
            "step": failed_at,
            "to_step": t.state.step,
            "reason": reason,
            "lr_g": halved.lr_g,
            "lr_d": halved.lr_d,
        },
    )


MAX_OOM_RETRIES = 3  # retries at half the batch after CUDA runs out of memory, for the GANs and the teachers
MAX_ROLLBACKS = 3  # a diverging teacher's roll-backs, as many as a GAN's (TrainConfig.max_rollbacks)


def halved_batch(batch: int, retries: int, device: torch.device, refusal: str, can_retry: bool = True) -> int:
    """After CUDA ran out of memory at ``batch`` (``retries``: this one included): the batch to retry at, the
    device's cached memory freed; ``refusal`` as a GanAugmentError past ``MAX_OOM_RETRIES``, under a batch of 4,
    or where the job cannot retry. The GANs' and both teachers' one rule."""
    if batch < 4 or retries > MAX_OOM_RETRIES or not can_retry:
        raise GanAugmentError(refusal) from None
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return batch // 2


def shrink_batch(t: Trainer, saver: Checkpointer, exc: BaseException) -> None:
    """After CUDA running out of memory: retry at half the batch (at most ``MAX_OOM_RETRIES`` times)."""
    state = t.state
    b = state.batch_size
    state.oom_retries += 1
    refusal = (
        f"out of GPU memory on {t.device} at batch size {b}: try --batch-size {max(2, b // 2)}, "
        "a smaller --image-size or narrower models (--g-width, --d-width)"
    )
    state.batch_size = halved_batch(b, state.oom_retries, t.device, refusal, not t.dist.enabled)  # ranks keep in step
    t.reporter.message(f"out of GPU memory at batch size {b} (step {state.step}): retrying at batch size {b // 2}")
    saver.log(t, {"event": "oom", "step": state.step, "batch_size": b // 2})
