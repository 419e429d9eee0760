"""``Checkpointer``: when, where and what a training run writes (checkpoints, sample grids, metrics)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import RunDirError, WriteError
from ..io.checkpoint import CHECKPOINT_NAME, load_checkpoint, reading, save_checkpoint
from ..io.images import save_image_atomic
from ..io.record import RunRecord
from ..models import Generator, PerClassGenerator
from ..progress import Reporter
from ..sampling import class_grid
from .board import Board
from .rundir import append_event
from .trainer import Trainer

CLOCK_CHECK_EVERY = 10  # steps between the clock checks of a multi-process job (a collective each)


class Checkpointer:
    """Owns a run directory while a :class:`~gan_augment.train.Trainer` trains into it.

    It decides when to save (every ``every`` steps, every ``minutes`` of training, and at the end), writes the
    :class:`~gan_augment.io.record.RunRecord` atomically, draws the sample grids, appends the
    metrics log, and keeps the EMA sampling generator of the current step (BatchNorm recalibrated
    once per step). It only reads the trainer's public state, and changes nothing of it but the
    EMA generator's BatchNorm statistics, which it recalibrates before sampling or saving.

    Args:
        out_dir: The run directory.
        sources: The folders the data came from (recorded in the checkpoint).
        every: Steps between checkpoints (and one at the end).
        minutes: Minutes between checkpoints as well (0: by steps only).
        samples_every: Steps between sample grids (and one at the end).
        reporter: Where messages go.
    """

    def __init__(
        self,
        out_dir: str | Path,
        sources: dict[str, str | None] | None = None,
        every: int = 1000,
        samples_every: int = 500,
        reporter: Reporter | None = None,
        minutes: float = 0.0,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / CHECKPOINT_NAME
        self.sources = {k: v for k, v in (sources or {}).items() if v is not None}
        self.every = every
        self.seconds = 60.0 * minutes
        self.last_save = time.monotonic()
        self.samples_every = samples_every
        self.reporter = reporter or Reporter(quiet=True)
        self._calibrated: tuple[object, int] | None = None  # (pair, step) whose EMA statistics are recalibrated
        self._sampler: tuple[object, int, nn.Module] | None = None  # (pair, step, sampling module)
        self.board: Board | None = None  # TensorBoard, when asked for (rank 0)

    @classmethod
    def for_run(
        cls,
        trainer: Trainer,
        out_dir: str | Path,
        sources: dict[str, str | None] | None = None,
        reporter: Reporter | None = None,
    ) -> Checkpointer:
        """A checkpointer with the run configuration's intervals."""
        cfg = trainer.config
        reporter = reporter or trainer.reporter
        return cls(out_dir, sources, cfg.checkpoint_every, cfg.sample_every, reporter, cfg.checkpoint_minutes)

    # ---------------------------------------------------------------- when
    def saving_due(self, t: Trainer) -> bool:
        """At every ``every``-th step, the last, and once ``minutes`` have passed since the last save (in a
        multi-process job rank 0's clock decides, at the steps where the ranks meet anyway)."""
        step = t.state.step
        if step % self.every == 0 or step == t.total_steps:
            return True
        if not self.seconds:
            return False
        if t.dist.enabled:
            if step % CLOCK_CHECK_EVERY:
                return False
            return bool(t.dist.gather(time.monotonic() - self.last_save >= self.seconds)[0])
        return time.monotonic() - self.last_save >= self.seconds

    def samples_due(self, t: Trainer) -> bool:
        return t.state.step % self.samples_every == 0 or t.state.step == t.total_steps

    def exists(self) -> bool:
        return self.path.is_file()

    # ---------------------------------------------------------------- the sampling generator
    def recalibrate(self, t: Trainer) -> None:
        """Recompute the EMA generator's BatchNorm statistics for this step (once per step and models)."""
        if self._calibrated is not None and self._calibrated[0] is t.pair and self._calibrated[1] == t.state.step:
            return
        t.recalibrate_ema()
        self._calibrated = (t.pair, t.state.step)

    def _build_sampler(self, t: Trainer, g_ema_states: list[dict[str, torch.Tensor]]) -> nn.Module:
        if t.state.phase != "per-class":
            return t.pair.g_ema
        gens = []
        for state in g_ema_states:
            with torch.device("meta"):  # no initialisation: it would draw from training's RNG
                g = Generator(t.pair.g_ema.config)
            g.load_state_dict(state, assign=True)
            gens.append(g.requires_grad_(False).eval())
        return PerClassGenerator(gens)

    def sampling_generator(self, t: Trainer) -> nn.Module:
        """This rank's EMA generator(s) as one module with ``G(z, y)``, BatchNorm recalibrated for this step."""
        cached = self._sampler
        if cached is None or cached[0] is not t.pair or cached[1] != t.state.step:
            self.recalibrate(t)
            cached = self._sampler = (t.pair, t.state.step, self._build_sampler(t, t.ema_states()))
        return cached[2]

    def save_samples(self, t: Trainer) -> Path | None:
        """Write this step's sample grid (rank 0; every rank must call it in a multi-process job)."""
        if t.dist.enabled and t.state.phase == "per-class":  # the grid needs every rank's classes
            self.recalibrate(t)
            states = t.job_states(t.ema_states)
            if states is None:
                return None
            gen = self._build_sampler(t, [{k: v.to(t.device) for k, v in st.items()} for st in states])
        elif not t.dist.is_main:
            return None
        else:
            gen = self.sampling_generator(t)
        step = t.state.step
        path = self.out_dir / "samples" / f"step_{step:06d}.png"
        title = f"step {step}" + (" (pre-training, all images)" if t.state.phase == "pretrain" else "")
        upscale = max(1, 64 // t.config.image_size)
        names = t.data.class_names
        grid = class_grid(gen, per_row=10, seed=t.config.seed, upscale=upscale, class_names=names, title=title)
        save_image_atomic(grid, path)
        if self.board is not None:
            self.board.image("samples", path, step)
        return path

    # ---------------------------------------------------------------- what: the run record
    def record(self, t: Trainer) -> RunRecord | None:
        """The run's record now (None on ranks other than 0; every rank must call it in a job)."""
        self.recalibrate(t)  # recalibrated EMA statistics go into the checkpoint
        rng = t.rng_states()
        models = t.job_states(t.pair.states)
        if models is None:
            return None
        return RunRecord(
            config=t.config,
            model=t.model_cfg,
            state=dataclasses.replace(t.state),
            pretrain_steps=t.pretrain_steps,
            total_steps=t.total_steps,
            class_names=list(t.data.class_names),
            image_size=t.config.image_size,
            channels=t.channels,
            diffaugment=t.diffaugment,
            data={**t.data.fingerprint(), "class_counts": t.data.class_counts, **self.sources},
            models=models,
            rng=rng,
            pretrained=t.pretrained,
        )

    def save(self, t: Trainer) -> Path:
        """Write the checkpoint atomically; a failed write leaves the previous checkpoint intact."""
        record = self.record(t)
        self.last_save = time.monotonic()
        if record is not None:
            try:
                save_checkpoint(record.to_dict(), self.path)
            except WriteError as exc:
                then = (
                    "the previous checkpoint is intact; free disk space or fix the folder's permissions, then --resume"
                    if self.path.is_file()
                    else "no checkpoint was written yet; free disk space or fix the folder's permissions, then run "
                    "the same command again (no --resume or --overwrite needed)"
                )
                raise WriteError(
                    f"could not write the checkpoint {str(self.path)!r} at step {t.state.step} ({exc.reason}): {then}",
                    exc.reason,
                ) from None
        return self.path

    def restore(self, t: Trainer, ckpt: dict[str, Any] | None = None) -> RunRecord:
        """Restore ``t`` from the run's checkpoint (``ckpt`` when the caller has loaded it already); its record."""
        if ckpt is None:
            ckpt = load_checkpoint(self.path, map_location="cpu")  # RNG states must stay CPU tensors
        with reading(self.path):  # right keys, wrong contents: one line
            record = RunRecord.from_dict(ckpt)
            self._check_data(t, record)
            t.load(record)
        return record

    def _check_data(self, t: Trainer, record: RunRecord) -> None:
        fp, saved = t.data.fingerprint(), record.data
        key = "real_files_sha256" if "real_files_sha256" in saved else "files_sha256"  # older runs: as given
        if saved.get(key) != fp[key]:
            raise RunDirError(
                f"the images differ from those the run in {str(self.out_dir)!r} was trained on "
                f"({saved.get('num_images')} then, {fp['num_images']} now): resume with the "
                "same folders, or start a new run with --out elsewhere or --overwrite"
            )

    # ---------------------------------------------------------------- the metrics log
    def log(self, t: Trainer, row: dict[str, Any]) -> None:
        """Append ``row`` to the run's metrics log (rank 0 only)."""
        if t.dist.is_main:
            append_event(self.out_dir, row)
            if self.board is not None and "event" not in row:
                self.board.scalars("gan", row, int(row["step"]))
