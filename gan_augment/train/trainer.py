"""``Trainer``: the models of one run, one training step of them, and their state (no files, no loop)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import replace
from typing import Any, Callable

import torch

from ..config import TrainConfig
from ..data import ImageData
from ..errors import GanAugmentError, UsageError
from ..io.checkpoint import check_weights
from ..io.record import RunRecord, TrainState
from ..models import Discriminator, Generator, unpack_states
from ..progress import Reporter
from ..seeds import BATCHNORM_RECALIBRATION
from .batches import DeviceBatches
from .diffaugment import diff_augment
from .distributed import DistContext, shard
from .losses import d_loss, g_loss, gradient_penalty, penalty_weights
from .pair import (
    AdamSettings,
    GanPair,
    adam,
    check_compile,
    compile_pair,
    grouped_pair,
    new_pair,
    pretrained_state,
    recalibrate_batchnorm,
    update_ema,
)


class Trainer:
    """The models of one run and one training step of them; the loop (:func:`~gan_augment.train.loop.train`)
    drives it and a :class:`~gan_augment.train.checkpointer.Checkpointer` saves it.

    ``config`` is the caller's and is never replaced; what changes while training (step, phase,
    learning rates after a roll-back, batch size after running out of memory) is :attr:`state`,
    a :class:`~gan_augment.io.record.TrainState`, saved whole in the checkpoint. The trainer
    writes no file and runs no loop.

    Args:
        config: Training configuration.
        data: Decoded images (from :func:`gan_augment.data.load_image_data`).
        device: Training device.
        reporter: Where messages go (entering per-class training, resuming on another device).
        dist: This process's place in a multi-process job (default: alone).
        compile: ``torch.compile`` the training models: one of
            :data:`~gan_augment.config.COMPILE_MODES` (``reduce-overhead`` adds CUDA graphs). A way
            to run, not part of the run: it is not saved in the checkpoint. Not with the wgan-gp
            loss (its gradient penalty needs a double backward, which compiled graphs do not support).
    """

    def __init__(
        self,
        config: TrainConfig,
        data: ImageData,
        device: torch.device,
        reporter: Reporter | None = None,
        dist: DistContext | None = None,
        compile: str = "off",
    ) -> None:
        check_compile(compile, config)
        self.compile = compile
        self.dist = dist or DistContext()
        self.config = config
        self.data = data
        self.device = device
        self.reporter = reporter or Reporter(quiet=True)
        self.num_classes = len(data.class_names)
        self.channels = int(data.images.shape[1])
        conditional = config.mode == "conditional"
        self.model_cfg = replace(
            config.model, channels=self.channels, num_classes=self.num_classes if conditional else 0
        )
        self.pretrain_steps = self._resolve_pretrain_steps()
        self.total_steps = self.pretrain_steps + config.steps
        self.amp = config.amp and device.type == "cuda" and config.loss != "wgan-gp"
        # This rank's class models (all of them in a single process).
        self.my_classes = shard(self.num_classes, self.dist.rank, self.dist.world)
        if config.mode == "per-class" and not self.my_classes:
            raise GanAugmentError(
                f"{self.dist.world} processes for {self.num_classes} classes: per-class mode needs at "
                f"most one process per class; use --nproc-per-node {self.num_classes} or fewer"
            )
        torch.manual_seed(config.seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(config.seed)
        # One stream for all ranks (see DeviceBatches).
        self.gen = torch.Generator(device=device).manual_seed(config.seed + 1)
        self.batches = DeviceBatches(data, device, self.gen, self.dist, self.my_classes)
        self.diffaugment = self._resolve_diffaugment()
        self.state = TrainState.start(config, self.phase_at(0))
        self.pretrained: dict[str, Any] | None = None  # per-class: the shared models at the switch
        self.pair = self.new_pair(self.state.phase)

    @property
    def adam(self) -> AdamSettings:
        """The optimisers' settings now (the rates are training state: a roll-back halves them)."""
        return AdamSettings(self.state.lr_g, self.state.lr_d, (self.config.beta1, self.config.beta2))

    def _resolve_pretrain_steps(self) -> int:
        return pretrain_steps(self.config, bool(self.data.num_unlabeled))

    def _resolve_diffaugment(self) -> bool:
        cfg = self.config
        per_model = self.batches.min_class_size if cfg.mode == "per-class" else len(self.batches.all_idx)
        return cfg.diffaugment == "on" or (cfg.diffaugment == "auto" and per_model < cfg.diffaugment_below)

    @property
    def pair(self) -> GanPair:
        """The models in training: one grouped pair of this rank's class models in the per-class phase."""
        return self._pair

    @pair.setter
    def pair(self, pair: GanPair) -> None:
        compile_pair(pair, self.compile)
        self._pair = pair

    # ---------------------------------------------------------------- layout of the models
    def phase_at(self, step: int) -> str:
        """The phase training is in at ``step``: ``pretrain``, ``per-class``, ``conditional`` or ``unconditional``."""
        if self.config.mode == "per-class":
            return "pretrain" if step < self.pretrain_steps else "per-class"
        return self.config.mode

    def new_pair(self, phase: str) -> GanPair:
        """Freshly initialised models for ``phase``."""
        if phase != "per-class":
            return new_pair(self.model_cfg, self.adam, self.device)
        # Every class model initialised on its own, in class order (the same weights whatever the
        # number of processes), then this rank's share packed together.
        single = replace(self.model_cfg, num_classes=0)
        gs = [Generator(single).state_dict() for _ in range(self.num_classes)]
        ds = [Discriminator(single).state_dict() for _ in range(self.num_classes)]
        mine = self.my_classes
        return grouped_pair(single, self.adam, self.device, [gs[c] for c in mine], [ds[c] for c in mine])

    def enter_per_class(self) -> None:
        """Start every class's model from the pre-trained one."""
        src, k = self.pair, len(self.my_classes)
        self.pretrained = pretrained_state(src, self.config.seed + BATCHNORM_RECALIBRATION, self.state.batch_size)
        self.pair = grouped_pair(
            src.g.config,
            self.adam,
            self.device,
            [src.g.state_dict()] * k,
            [src.d.state_dict()] * k,
            [src.g_ema.state_dict()] * k,
        )
        self.state.phase = "per-class"
        self.reporter.message(
            f"pre-training done at step {self.state.step}: training {self.num_classes} per-class models"
        )

    # ---------------------------------------------------------------- one step
    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.gen) if self.diffaugment else x

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _noise(self, g: Generator, n: int) -> torch.Tensor:
        if self.state.phase == "per-class":  # (n, K, z_dim)
            return self.batches.noise_per_class(n, self.model_cfg.z_dim)
        return self.batches.noise(n, g.z_shape)

    def _critic(self, d: Discriminator, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """D's logits on augmented images; per-class: x (B, K, C, H, W) → (B, K), each image augmented on its own."""
        if self.state.phase != "per-class":
            return d(self._aug(x), y)
        xa = self._aug(x.flatten(0, 1)).view_as(x)
        return d(xa) if d.groups > 1 else d(xa[:, 0]).unsqueeze(1)

    def _generate(self, g: Generator, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """G's images; per-class: noise (B, K, z_dim) → images (B, K, C, H, W)."""
        if self.state.phase != "per-class":
            return g(z, y)
        return g(z) if g.groups > 1 else g(z[:, 0]).unsqueeze(1)

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(real images, their labels, the unlabeled pool or None) for this phase's D step."""
        b = self.state.batch_size
        if self.state.phase == "per-class":
            return self.batches.real_per_class(b), None, None
        if self.state.phase == "conditional":
            real, y = self.batches.real(self.batches.labeled_idx, b)
            return real, y, self.batches.unlabeled_idx if len(self.batches.unlabeled_idx) else None
        real, y = self.batches.real(self.batches.all_idx, b)
        return real, y, None

    def _penalty(
        self, d: Discriminator, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None
    ) -> torch.Tensor:
        if self.state.phase == "per-class":  # per image: model k's logit depends on its own image only
            flat_real, flat_fake = real.flatten(0, 1), fake.flatten(0, 1)
            alpha = penalty_weights(len(flat_real), real.device, self.gen)
            return gradient_penalty(lambda x: self._critic(d, x.view_as(real), None), flat_real, flat_fake, alpha=alpha)
        alpha = penalty_weights(len(real), real.device, self.gen)
        return gradient_penalty(lambda x: d(self._aug(x), y), real, fake, alpha=alpha)

    def d_step(self, d: Discriminator, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        """One discriminator step of ``d`` (the pair's, or an unrolled copy) against the pair's generator."""
        cfg, pair = self.config, self.pair
        scale = float(pair.groups)  # a grouped step's loss is the sum of its models' losses
        real, y, upool = self._real_batch()
        y_in = y if self.state.phase == "conditional" else None
        z = self._noise(pair.g, self.state.batch_size)
        with self._autocast():
            with torch.no_grad():
                fake = self._generate(pair.g, z, y_in).float()  # fakes share the real batch's labels
            real_logits = self._critic(d, real, y_in)
            if upool is not None:  # unlabeled real images: D's class-free term says "real"
                ureal, uy = self.batches.real(upool, self.state.batch_size)
                real_logits = torch.cat([real_logits, d(self._aug(ureal), uy)])
            fake_logits = self._critic(d, fake, y_in)
            loss = scale * d_loss(cfg.loss, real_logits.float(), fake_logits.float())
        if cfg.loss == "wgan-gp" and cfg.gp_weight > 0:
            loss = loss + scale * cfg.gp_weight * self._penalty(d, real, fake, y_in)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.state.phase != "per-class":  # data-parallel phases: the job's mean gradient
            self.dist.average_gradients(d)
        opt.step()
        return {
            "loss_d": loss.detach() / scale,
            "d_real": torch.sigmoid(real_logits.detach().float()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach().float()).mean(),
        }

    def _unrolled_d(self) -> Discriminator:
        """Unrolled GAN (Metz et al. 2017), first-order: a copy of D advanced ``unroll`` steps against
        the current G; the pair's D is not changed by them."""
        d = copy.deepcopy(self.pair.d)
        opt = adam(d.parameters(), self.adam.lr_d, self.adam.betas)
        opt.load_state_dict(self.pair.opt_d.state_dict())
        for _ in range(self.config.unroll):
            self.d_step(d, opt)
        return d

    def g_step(self) -> dict[str, torch.Tensor]:
        """One generator step against D (or its unrolled copy), then the EMA update."""
        cfg, pair = self.config, self.pair
        d = self._unrolled_d() if cfg.unroll else pair.d
        y = self.batches.labels_like_data(self.state.batch_size) if self.state.phase == "conditional" else None
        z = self._noise(pair.g, self.state.batch_size)
        d.requires_grad_(False)
        scale = float(pair.groups)
        with self._autocast():
            fake_logits = self._critic(d, self._generate(pair.g, z, y), y)
            loss = scale * g_loss(cfg.loss, fake_logits.float())
        d.requires_grad_(True)
        pair.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        if self.state.phase != "per-class":
            self.dist.average_gradients(pair.g)
        pair.opt_g.step()
        phase_step = self.state.step - (self.pretrain_steps if self.state.phase == "per-class" else 0)
        decay = min(cfg.ema_decay, (1 + phase_step) / (10 + phase_step)) if cfg.ema_decay > 0 else 0.0
        update_ema(pair.g_ema, pair.g, decay)
        return {"loss_g": loss.detach() / scale}

    def train_step(self) -> dict[str, torch.Tensor]:
        """Advance the models one discriminator and one generator step; return their statistics."""
        stats = self.d_step(self.pair.d, self.pair.opt_d)
        stats.update(self.g_step())
        self.state.step += 1
        return stats

    def images_per_step(self) -> int:
        """Real images the discriminators see per step (all models together)."""
        n = self.state.batch_size * (self.num_classes if self.state.phase == "per-class" else self.dist.world)
        if self.state.phase == "conditional" and len(self.batches.unlabeled_idx):
            n *= 2
        return n

    # ---------------------------------------------------------------- its state, for the checkpointer
    def recalibrate_ema(self) -> None:
        """Recompute the EMA generator's BatchNorm statistics for its weights now (its own seeded RNG)."""
        labels = self.batches.cycle_labels if self.state.phase == "conditional" else _no_labels
        share = (self.num_classes, self.batches.my_class_idx) if self.state.phase == "per-class" else None
        seed = self.config.seed + BATCHNORM_RECALIBRATION
        recalibrate_batchnorm(self.pair.g_ema, labels, seed=seed, batch_size=self.state.batch_size, groups_of=share)

    def ema_states(self) -> list[dict[str, torch.Tensor]]:
        """This rank's EMA generator states, one per model."""
        return unpack_states(self.pair.g_ema.state_dict(), self.pair.groups)

    def job_states(self, local: Callable[[], list[Any]]) -> list[Any] | None:
        """``local()``'s per-model states for the whole job on rank 0 (per-class: gathered from every
        rank, in class order; other phases: rank 0's own); None on other ranks. Collective."""
        if not self.dist.enabled:
            return local()
        per_class = self.state.phase == "per-class"
        mine = _to_cpu(local()) if (per_class or self.dist.is_main) else None
        gathered = self.dist.gather(mine)
        if not self.dist.is_main:
            return None
        return [st for part in gathered for st in part] if per_class else gathered[0]

    def rng_states(self) -> dict[str, Any]:
        """The random states to save: this process's (with every rank's in a job). Collective."""
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "trainer": self.gen.get_state().cpu(),
            "device": str(self.device),
        }
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        ranks = self.dist.gather(rng)
        return {**rng, "world": self.dist.world, "ranks": ranks} if self.dist.enabled else rng

    def load(self, record: RunRecord) -> None:
        """Restore the training state, models, optimisers and random states of ``record`` (all of them)."""
        if record.model.to_dict() != self.model_cfg.to_dict():
            raise UsageError("its model_config does not match the models its config describes")
        self.state = dataclasses.replace(record.state)
        self.pretrained = record.pretrained
        self.pair = self.new_pair(self.state.phase)
        states = list(record.models)
        for entry in states:
            for part in ("g", "g_ema", "d"):
                check_weights(entry[part])
        if self.state.phase == "per-class":
            states = [states[c] for c in self.my_classes]  # this rank's share
        self.pair.load_states(states[: self.pair.groups])
        self.pair.set_learning_rates(self.adam)  # the state owns the rates, not the optimisers' saved groups
        self._restore_rng(record.rng)

    def _restore_rng(self, rng: dict[str, Any]) -> None:
        if self.dist.enabled or "ranks" in rng:
            if rng.get("world", 1) == self.dist.world:
                rng = rng["ranks"][self.dist.rank]
            else:
                self.reporter.message(
                    f"resuming with {self.dist.world} processes instead of {rng.get('world', 1)}: "
                    "random streams reseeded"
                )
                rng = {**rng, "device": "reseed"}
        torch.set_rng_state(rng["torch"])
        if rng.get("device") == str(self.device):
            self.gen.set_state(rng["trainer"])
            if self.device.type == "cuda" and "cuda" in rng:
                torch.cuda.set_rng_state(rng["cuda"], self.device)
            return
        if rng.get("device") != "reseed":
            self.reporter.message(f"resuming on {self.device} instead of {rng.get('device')}: random stream reseeded")
        self.gen.manual_seed(self.config.seed + 1 + self.state.step)


def pretrain_steps(config: TrainConfig, has_unlabeled: bool) -> int:
    """A run's unconditional pre-training steps: per-class mode only; ``-1`` = half the steps with an
    unlabeled pool, else none."""
    if config.mode != "per-class":
        return 0
    if config.pretrain_steps >= 0:
        return config.pretrain_steps
    return config.steps // 2 if has_unlabeled else 0


def _no_labels(n: int) -> None:
    return None


def _to_cpu(obj: Any) -> Any:
    """A nested state with every tensor moved to the CPU (for gathering across ranks)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
