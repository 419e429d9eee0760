"""``Trainer``: the models of one run and one training step of them (the loop, health and files live next door)."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..data import ImageData
from ..errors import GanAugmentError
from ..models import Discriminator, Generator
from ..progress import Reporter
from ..seeds import BATCHNORM_RECALIBRATION
from . import loop, snapshot
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
    update_ema,
)


class Trainer:
    """Trains the DCGAN(s) of one run directory.

    ``config`` is the caller's and is never replaced; what changes while training (step, phase,
    learning rates after a roll-back, batch size after running out of memory) is training state
    on the trainer, saved in the checkpoint.

    Args:
        config: Training configuration.
        data: Decoded images (from :func:`gan_augment.data.load_image_data`).
        out_dir: Run directory.
        device: Training device.
        reporter: Progress and message output.
        sources: The folders the data came from (recorded in the checkpoint).
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
        out_dir: Path,
        device: torch.device,
        reporter: Reporter,
        sources: dict[str, str | None] | None = None,
        dist: DistContext | None = None,
        compile: str = "off",
    ) -> None:
        check_compile(compile, config)
        self.compile = compile
        self.dist = dist or DistContext()
        self.config = config
        self.data = data
        self.out_dir = Path(out_dir)
        self.device = device
        self.reporter = reporter
        self.sources = sources or {}
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
        # Training state.
        self.step = 0
        self.rollbacks = 0
        self.oom_retries = 0
        self.elapsed = 0.0
        self.adam = AdamSettings.from_config(config)
        self.batch_size = config.batch_size
        self._calibrated_step: int | None = None
        self._sampler: tuple[int, nn.Module] | None = None  # (step, sampling module)
        self.pretrained: dict[str, Any] | None = None  # per-class: the shared models at the switch
        self.phase = self.phase_at(0)
        self.pair = self.new_pair(self.phase)

    def _resolve_pretrain_steps(self) -> int:
        if self.config.mode != "per-class":
            return 0
        if self.config.pretrain_steps >= 0:
            return self.config.pretrain_steps
        return self.config.steps // 2 if self.data.num_unlabeled else 0

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
        self._calibrated_step = None
        self._sampler = None

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
        self.pretrained = pretrained_state(src, self.config.seed + BATCHNORM_RECALIBRATION, self.batch_size)
        self.pair = grouped_pair(
            src.g.config,
            self.adam,
            self.device,
            [src.g.state_dict()] * k,
            [src.d.state_dict()] * k,
            [src.g_ema.state_dict()] * k,
        )
        self.phase = "per-class"
        self.reporter.message(f"pre-training done at step {self.step}: training {self.num_classes} per-class models")

    # ---------------------------------------------------------------- one step
    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.gen) if self.diffaugment else x

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _noise(self, g: Generator, n: int) -> torch.Tensor:
        if self.phase == "per-class":  # (n, K, z_dim)
            return self.batches.noise_per_class(n, self.model_cfg.z_dim)
        return self.batches.noise(n, g.z_shape)

    def _critic(self, d: Discriminator, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """D's logits on augmented images; per-class: x (B, K, C, H, W) → (B, K), each image augmented on its own."""
        if self.phase != "per-class":
            return d(self._aug(x), y)
        xa = self._aug(x.flatten(0, 1)).view_as(x)
        return d(xa) if d.groups > 1 else d(xa[:, 0]).unsqueeze(1)

    def _generate(self, g: Generator, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """G's images; per-class: noise (B, K, z_dim) → images (B, K, C, H, W)."""
        if self.phase != "per-class":
            return g(z, y)
        return g(z) if g.groups > 1 else g(z[:, 0]).unsqueeze(1)

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(real images, their labels, the unlabeled pool or None) for this phase's D step."""
        b = self.batch_size
        if self.phase == "per-class":
            return self.batches.real_per_class(b), None, None
        if self.phase == "conditional":
            real, y = self.batches.real(self.batches.labeled_idx, b)
            return real, y, self.batches.unlabeled_idx if len(self.batches.unlabeled_idx) else None
        real, y = self.batches.real(self.batches.all_idx, b)
        return real, y, None

    def _penalty(
        self, d: Discriminator, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None
    ) -> torch.Tensor:
        if self.phase == "per-class":  # per image: model k's logit depends on its own image only
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
        y_in = y if self.phase == "conditional" else None
        z = self._noise(pair.g, self.batch_size)
        with self._autocast():
            with torch.no_grad():
                fake = self._generate(pair.g, z, y_in).float()  # fakes share the real batch's labels
            real_logits = self._critic(d, real, y_in)
            if upool is not None:  # unlabeled real images: D's class-free term says "real"
                ureal, uy = self.batches.real(upool, self.batch_size)
                real_logits = torch.cat([real_logits, d(self._aug(ureal), uy)])
            fake_logits = self._critic(d, fake, y_in)
            loss = scale * d_loss(cfg.loss, real_logits.float(), fake_logits.float())
        if cfg.loss == "wgan-gp" and cfg.gp_weight > 0:
            loss = loss + scale * cfg.gp_weight * self._penalty(d, real, fake, y_in)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.phase != "per-class":  # data-parallel phases: the job's mean gradient
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
        y = self.batches.labels_like_data(self.batch_size) if self.phase == "conditional" else None
        z = self._noise(pair.g, self.batch_size)
        d.requires_grad_(False)
        scale = float(pair.groups)
        with self._autocast():
            fake_logits = self._critic(d, self._generate(pair.g, z, y), y)
            loss = scale * g_loss(cfg.loss, fake_logits.float())
        d.requires_grad_(True)
        pair.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        if self.phase != "per-class":
            self.dist.average_gradients(pair.g)
        pair.opt_g.step()
        phase_step = self.step - (self.pretrain_steps if self.phase == "per-class" else 0)
        decay = min(cfg.ema_decay, (1 + phase_step) / (10 + phase_step)) if cfg.ema_decay > 0 else 0.0
        update_ema(pair.g_ema, pair.g, decay)
        return {"loss_g": loss.detach() / scale}

    def train_step(self) -> dict[str, torch.Tensor]:
        """Advance the models one discriminator and one generator step; return their statistics."""
        stats = self.d_step(self.pair.d, self.pair.opt_d)
        stats.update(self.g_step())
        self.step += 1
        return stats

    def images_per_step(self) -> int:
        """Real images the discriminators see per step (all models together)."""
        n = self.batch_size * (self.num_classes if self.phase == "per-class" else self.dist.world)
        if self.phase == "conditional" and len(self.batches.unlabeled_idx):
            n *= 2
        return n

    # ---------------------------------------------------------------- files (see snapshot.py and loop.py)
    def sampling_generator(self) -> nn.Module:
        """This rank's EMA generator(s) as one module with ``G(z, y)``, BatchNorm recalibrated for this step."""
        return snapshot.sampling_generator(self)

    def save_samples(self) -> Path | None:
        """Write this step's sample grid (rank 0; every rank must call it in a multi-process job)."""
        return snapshot.save_samples(self)

    def checkpoint(self) -> dict[str, Any] | None:
        """The run's checkpoint dict (None on ranks other than 0; every rank must call it in a job)."""
        return snapshot.checkpoint_dict(self)

    def save(self) -> Path:
        """Write the checkpoint atomically; a failed write leaves the previous checkpoint intact."""
        return snapshot.save(self)

    def load(self, ckpt: dict[str, Any]) -> None:
        """Restore models, optimisers, training state and RNG states from a checkpoint dict."""
        snapshot.restore(self, ckpt)

    def fit(self) -> Path:
        """Train to ``total_steps``, writing metrics, sample grids and checkpoints; return the checkpoint path.

        SIGINT (Ctrl-C) and SIGTERM stop at the end of the current step with a checkpoint; a second
        Ctrl-C stops at once. Divergence rolls back to the last checkpoint with lower learning rates;
        CUDA running out of memory retries at half the batch (see :mod:`~gan_augment.train.health`).
        """
        return loop.train(self)
