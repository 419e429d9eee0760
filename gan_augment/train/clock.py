"""Time left in a GAN run whose phases cost differently a step (a per-class step trains K models, a
pre-training step one): each phase's seconds per step as measured, and for a phase not yet reached, the
one measured times its models."""

from __future__ import annotations

import time

from .trainer import Trainer

MEASURED_BEFORE_TELLING = 3  # steps timed before the time left is shown


class PhaseClock:
    """Seconds per step of each phase, measured over whole loop iterations (saves, grids and logs
    included), the first step after a start or a phase switch left out (it carries one-off costs)."""

    def __init__(self, trainer: Trainer) -> None:
        self.t = trainer
        self.seconds: dict[str, float] = {}
        self.steps: dict[str, int] = {}
        self._last: tuple[float, str] | None = None

    def tick(self) -> None:
        """Call at the end of every loop iteration that took a step."""
        now, phase = time.perf_counter(), self.t.state.phase
        if self._last is not None and self._last[1] == phase:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last[0]
            self.steps[phase] = self.steps.get(phase, 0) + 1
        self._last = (now, phase)

    def restart(self) -> None:
        """After an iteration that took no step (a roll-back, a retry after running out of memory)."""
        self._last = None

    def per_step(self, phase: str) -> float | None:
        """Seconds a step of ``phase``: measured, or (per-class, before it starts) K pre-training steps."""
        if self.steps.get(phase, 0) >= MEASURED_BEFORE_TELLING:
            return self.seconds[phase] / self.steps[phase]
        if phase == "per-class" and self.steps.get("pretrain", 0) >= MEASURED_BEFORE_TELLING:
            return self.t.num_classes * self.seconds["pretrain"] / self.steps["pretrain"]
        return None

    def left(self, step: int) -> float | None:
        """Seconds left from ``step`` to the end of the GAN training (None until enough steps are timed)."""
        t = self.t
        main = "per-class" if t.config.mode == "per-class" else t.config.mode
        pre_left = max(0, t.pretrain_steps - step)
        main_left = t.total_steps - max(step, t.pretrain_steps)
        pre, rest = self.per_step("pretrain"), self.per_step(main)
        if (pre_left and pre is None) or (main_left and rest is None):
            return None
        return pre_left * (pre or 0.0) + main_left * (rest or 0.0)
