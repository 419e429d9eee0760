"""The training engine: data on the device, GAN steps, EMA, schedule of samples, metrics and checkpoints."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .augment import diff_augment
from .checkpoint import CHECKPOINT_NAME, atomic_write_json, load_checkpoint, save_checkpoint
from .config import ModelConfig, TrainConfig
from .data import ImageData, load_image_data, summary
from .distributed import DistContext, from_environment, shard
from .errors import GanAugmentError, RunDirError
from .losses import d_loss, g_loss, gradient_penalty
from .models import Discriminator, Generator, PerClassGenerator, pack_states, unpack_states
from .progress import Reporter
from .sampling import class_grid, save_image_atomic

RUN_FILES = (CHECKPOINT_NAME, "config.json", "metrics.jsonl", "samples")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a device, checking that it exists.

    Raises:
        GanAugmentError: If CUDA is asked for but not available, or the name is unknown.
    """
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise GanAugmentError(f"device {name!r} is not valid: use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise GanAugmentError(f"device {name!r} asked for, but CUDA is not available: use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise GanAugmentError(
                f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type != "cpu":
        raise GanAugmentError(f"device {name!r} is not supported: use auto, cpu, cuda or cuda:N")
    return dev


@dataclass
class GanPair:
    """One DCGAN being trained: generator, its EMA copy, discriminator and both optimisers.

    With ``groups`` > 1 the modules are grouped (``groups`` independent per-class models computed
    as one, see :class:`~gan_augment.models.Generator`); Adam is elementwise, so one optimiser over
    the concatenated parameters is exactly ``groups`` separate optimisers.
    """

    g: Generator
    g_ema: Generator
    d: Discriminator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam

    @property
    def groups(self) -> int:
        return self.g.groups

    def state(self) -> dict[str, Any]:
        return {
            "g": self.g.state_dict(),
            "g_ema": self.g_ema.state_dict(),
            "d": self.d.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }

    def states(self) -> list[dict[str, Any]]:
        """One single-model state per group (the checkpoint's layout, whatever the engine)."""
        if self.groups == 1:
            return [self.state()]
        n = self.groups
        parts = {k: unpack_states(v.state_dict(), n) for k, v in (("g", self.g), ("g_ema", self.g_ema), ("d", self.d))}
        parts.update({k: unpack_optimizer(v.state_dict(), n) for k, v in (("opt_g", self.opt_g), ("opt_d", self.opt_d))})
        return [{k: parts[k][i] for k in parts} for i in range(n)]

    def load(self, state: dict[str, Any]) -> None:
        self.g.load_state_dict(state["g"])
        self.g_ema.load_state_dict(state["g_ema"])
        self.d.load_state_dict(state["d"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])

    def load_states(self, states: list[dict[str, Any]]) -> None:
        """Load ``groups`` single-model states (the inverse of :meth:`states`)."""
        if len(states) != self.groups:
            raise ValueError(f"{len(states)} model states for {self.groups} grouped models")
        if self.groups == 1:
            self.load(states[0])
            return
        self.load({
            **{k: pack_states([s[k] for s in states]) for k in ("g", "g_ema", "d")},
            **{k: pack_optimizer([s[k] for s in states]) for k in ("opt_g", "opt_d")},
        })


def pack_optimizer(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Adam state dicts of G single models → the state dict for their grouped model.

    Each parameter's state (``exp_avg``, ``exp_avg_sq``, ``step``) is packed like the parameter
    itself, by :func:`~gan_augment.models.pack_states`.
    """
    first = states[0]
    packed = {i: pack_states([s["state"][i] for s in states]) for i in first["state"]}
    return {"state": packed, "param_groups": copy.deepcopy(first["param_groups"])}


def unpack_optimizer(state: dict[str, Any], groups: int) -> list[dict[str, Any]]:
    """The inverse of :func:`pack_optimizer`."""
    parts = {i: unpack_states(st, groups) for i, st in state["state"].items()}
    return [{"state": {i: parts[i][g] for i in parts}, "param_groups": copy.deepcopy(state["param_groups"])}
            for g in range(groups)]


def _adam(params: Iterator[nn.Parameter], lr: float, config: TrainConfig) -> torch.optim.Adam:
    params = list(params)
    fused = bool(params) and params[0].is_cuda  # one kernel for all parameters on the GPU
    return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), fused=fused or None)


COMPILE_MODES: tuple[str, ...] = ("off", "default", "reduce-overhead", "max-autotune")
COMPILE_BACKEND = "inductor"  # the tests use "aot_eager": the same graph capture without code generation


def compile_pair(pair: GanPair, mode: str) -> None:
    """Compile ``pair``'s generator and discriminator in place (``torch.compile``; state dict keys unchanged).

    ``mode`` is one of :data:`COMPILE_MODES` (checked by :func:`check_compile`); ``off`` does
    nothing. The EMA generator is not compiled (it only samples, at grids and checkpoints).
    """
    if mode == "off":
        return
    kwargs: dict[str, Any] = {"backend": COMPILE_BACKEND}
    if COMPILE_BACKEND == "inductor" and mode != "default":
        kwargs["mode"] = mode
    for module in (pair.g, pair.d):
        module.compile(**kwargs)


def check_compile(compile: str, config: TrainConfig) -> None:
    """Raise GanAugmentError unless ``compile`` is a known mode that works with ``config``."""
    if compile not in COMPILE_MODES:
        raise GanAugmentError(f"compile={compile!r}: use one of {', '.join(COMPILE_MODES)}")
    if compile != "off" and config.loss == "wgan-gp":
        raise GanAugmentError("--compile does not work with --loss wgan-gp (its gradient penalty needs a double "
                              "backward): use --compile off, or the bce or hinge loss")


def _make_pair(g: Generator, d: Discriminator, config: TrainConfig, g_ema: Generator | None = None) -> GanPair:
    g_ema = g_ema if g_ema is not None else copy.deepcopy(g)
    g_ema.requires_grad_(False).eval()
    return GanPair(g, g_ema, d, _adam(g.parameters(), config.lr_g, config), _adam(d.parameters(), config.lr_d, config))


def new_pair(model_cfg: ModelConfig, config: TrainConfig, device: torch.device) -> GanPair:
    """Build a freshly initialised DCGAN on ``device``."""
    return _make_pair(Generator(model_cfg).to(device), Discriminator(model_cfg).to(device), config)


def grouped_pair(
    model_cfg: ModelConfig, config: TrainConfig, device: torch.device,
    g: list[dict[str, torch.Tensor]], d: list[dict[str, torch.Tensor]], g_ema: list[dict[str, torch.Tensor]] | None = None,
) -> GanPair:
    """Single models' states (one per class) as one grouped pair with fresh optimisers.

    The grouped modules are built without initialisation (it would draw from training's RNG
    only to be overwritten).
    """
    def grouped(cls: type[nn.Module], states: list[dict[str, torch.Tensor]]) -> Any:
        with torch.device("meta"):
            module = cls(model_cfg, len(states))
        module.load_state_dict(pack_states(states), assign=True)
        return module.to(device)

    return _make_pair(grouped(Generator, g), grouped(Discriminator, d), config,
                      grouped(Generator, g_ema) if g_ema is not None else None)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1−decay)·model for parameters; buffers (BatchNorm statistics) are copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


@torch.no_grad()
def recalibrate_batchnorm(
    g: Generator, labels: Callable[[int], torch.Tensor | None], seed: int, batches: int = 4, batch_size: int = 256,
    groups_of: tuple[int, torch.Tensor] | None = None,
) -> None:
    """Recompute a generator's BatchNorm statistics for its own (EMA) weights.

    The EMA weights never ran in training, so the running statistics copied from the live
    generator do not quite fit them; a few forward passes with a cumulative average fix that.
    Uses its own seeded RNG, so training's random stream is untouched. ``groups_of`` = (K, idx)
    draws the noise of K grouped models and keeps models ``idx`` (a rank's share of the classes),
    so each class model's statistics do not depend on how the classes are sharded.
    """
    dev = next(g.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(seed)
    norms = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    g.train()
    for _ in range(batches):
        if groups_of is None:
            z = torch.randn(batch_size, *g.z_shape, device=dev, generator=gen)
        else:
            z = torch.randn(batch_size, groups_of[0], g.config.z_dim, device=dev, generator=gen)[:, groups_of[1]]
            z = z if g.groups > 1 else z[:, 0]
        g(z, labels(batch_size))
    for m, mom in zip(norms, momenta):
        m.momentum = mom
    g.eval()


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


class Trainer:
    """Trains the DCGAN(s) of one run directory.

    Args:
        config: Training configuration.
        data: Decoded images (from :func:`gan_augment.data.load_image_data`).
        out_dir: Run directory.
        device: Training device.
        reporter: Progress and message output.
        sources: The folders the data came from (recorded in the checkpoint).
        dist: This process's place in a multi-process job (default: alone).
        compile: ``torch.compile`` the training models: one of :data:`COMPILE_MODES`
            (``reduce-overhead`` adds CUDA graphs). A way to run, not part of the run: it is
            not saved in the checkpoint. Not with the wgan-gp loss (its gradient penalty needs
            a double backward, which compiled graphs do not support).
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
        self.model_cfg = replace(
            config.model,
            image_size=config.image_size,
            channels=self.channels,
            num_classes=self.num_classes if config.mode == "conditional" else 0,
        )
        self.pretrain_steps = 0
        if config.mode == "per-class":
            self.pretrain_steps = config.pretrain_steps
            if self.pretrain_steps < 0:
                self.pretrain_steps = config.steps // 2 if data.num_unlabeled else 0
        self.total_steps = self.pretrain_steps + config.steps
        self.amp = config.amp and device.type == "cuda" and config.loss != "wgan-gp"

        # Everything lives on the device; batches are indexed there.
        self.images = data.images.to(device)  # (N, C, H, W) uint8
        self.labels = data.labels.to(device)  # (N,) int64, -1 = unlabeled
        self.labeled_idx = (self.labels >= 0).nonzero(as_tuple=True)[0]
        self.unlabeled_idx = (self.labels < 0).nonzero(as_tuple=True)[0]
        self.all_idx = torch.arange(len(self.labels), device=device)
        self.class_idx = [(self.labels == c).nonzero(as_tuple=True)[0] for c in range(self.num_classes)]
        # Per-class batches for all class models at once: indices sorted by class, offsets, counts.
        self.class_sorted = torch.cat(self.class_idx)
        counts = torch.tensor([len(i) for i in self.class_idx], device=device)
        self.class_counts = counts
        self.class_offsets = torch.cumsum(counts, 0) - counts
        # This rank's class models (all of them in a single process).
        self.my_classes = shard(self.num_classes, self.dist.rank, self.dist.world)
        if config.mode == "per-class" and not self.my_classes:
            raise GanAugmentError(
                f"{self.dist.world} processes for {self.num_classes} classes: per-class mode needs at "
                f"most one process per class; use --nproc-per-node {self.num_classes} or fewer"
            )
        self.my_class_idx = torch.tensor(self.my_classes, device=device)
        per_model = {
            "per-class": min(len(i) for i in self.class_idx),
            "conditional": len(self.all_idx),
            "unconditional": len(self.all_idx),
        }[config.mode]
        self.diffaugment = config.diffaugment == "on" or (
            config.diffaugment == "auto" and per_model < config.diffaugment_below
        )

        torch.manual_seed(config.seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(config.seed)
        # One stream for all ranks: per-class draws are made for every class and each rank keeps
        # its own classes' (so a sharded run equals a single-process one); data-parallel phases
        # offset it by rank (see _real).
        self.gen = torch.Generator(device=device).manual_seed(config.seed + 1)
        self.step = 0
        self.rollbacks = 0
        self.oom_retries = 0
        self._calibrated_step: int | None = None
        self._sampler: tuple[int, nn.Module] | None = None  # (step, sampling module)
        self.elapsed = 0.0
        self.phase = self._phase_at(0)
        self.pairs = self._new_pairs(self.phase)

    @property
    def pairs(self) -> list[GanPair]:
        """The models in training (one grouped pair in per-class mode, else one pair)."""
        return self._pairs

    @pairs.setter
    def pairs(self, pairs: list[GanPair]) -> None:
        for pair in pairs:
            compile_pair(pair, self.compile)
        self._pairs = pairs

    # ---------------------------------------------------------------- layout of the models
    def _phase_at(self, step: int) -> str:
        if self.config.mode == "per-class":
            return "pretrain" if step < self.pretrain_steps else "per-class"
        return self.config.mode

    def _new_pairs(self, phase: str) -> list[GanPair]:
        pretrain_cfg = replace(self.model_cfg, num_classes=0)
        if phase == "per-class":  # this rank's class models as one grouped computation
            # Every class model initialised on its own, in class order (the same weights whatever
            # the number of processes), then this rank's share packed together.
            gs = [Generator(pretrain_cfg).state_dict() for _ in range(self.num_classes)]
            ds = [Discriminator(pretrain_cfg).state_dict() for _ in range(self.num_classes)]
            mine = self.my_classes
            return [grouped_pair(pretrain_cfg, self.config, self.device, [gs[c] for c in mine], [ds[c] for c in mine])]
        return [new_pair(self.model_cfg, self.config, self.device)]

    def _enter_per_class(self) -> None:
        """Start every class's model from the pre-trained one."""
        src, k = self.pairs[0], len(self.my_classes)
        self.pairs = [grouped_pair(src.g.config, self.config, self.device, [src.g.state_dict()] * k,
                                   [src.d.state_dict()] * k, [src.g_ema.state_dict()] * k)]
        self._calibrated_step = None
        self._sampler = None
        self.phase = "per-class"
        self.reporter.message(f"pre-training done at step {self.step}: training {self.num_classes} per-class models")

    # ---------------------------------------------------------------- data
    def _real(self, pool: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch drawn with replacement from ``pool``: images (n, C, H, W) in [-1, 1], labels (n,).

        In a data-parallel job every rank draws the whole job's batch and keeps its slice.
        """
        w, r = self.dist.world, self.dist.rank
        idx = pool[torch.randint(0, len(pool), (n * w,), device=self.device, generator=self.gen)[r * n : (r + 1) * n]]
        return self.images[idx].float().div_(127.5).sub_(1.0), self.labels[idx]

    def _real_per_class(self, n: int) -> torch.Tensor:
        """n images of each of this rank's classes, drawn with replacement: (n, K, C, H, W) in [-1, 1]."""
        u = torch.rand(n, self.num_classes, device=self.device, generator=self.gen)  # drawn for all classes
        pick = (u * self.class_counts).long().clamp_(max=self.class_counts - 1)  # (n, K_all)
        idx = (self.class_sorted[self.class_offsets + pick])[:, self.my_class_idx]  # (n, K)
        return self.images[idx].float().div_(127.5).sub_(1.0)

    def _noise(self, pair: GanPair, n: int) -> torch.Tensor:
        """Noise for ``pair``'s generator; grouped: drawn for all classes, this rank's kept."""
        if self.phase == "per-class":  # (n, K, z_dim)
            z = torch.randn(n, self.num_classes, self.model_cfg.z_dim, device=self.device, generator=self.gen)
            return z[:, self.my_class_idx] if self.dist.enabled else z
        w, r = self.dist.world, self.dist.rank
        return torch.randn(n * w, *pair.g.z_shape, device=self.device, generator=self.gen)[r * n : (r + 1) * n]

    def _pools(self, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(labeled pool, unlabeled pool) for model k in the current phase."""
        if self.phase == "conditional":
            return self.labeled_idx, self.unlabeled_idx if len(self.unlabeled_idx) else None
        return self.all_idx, None

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.gen) if self.diffaugment else x

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ---------------------------------------------------------------- one step
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

    def _d_step(self, pair: GanPair, d: Discriminator, opt: torch.optim.Optimizer, k: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        conditional = self.phase == "conditional"
        grouped = self.phase == "per-class"
        # A grouped step's loss is the sum of its models' losses: each gets its own gradient.
        scale = float(pair.groups)
        if grouped:
            real, y, upool = self._real_per_class(cfg.batch_size), None, None
        else:
            pool, upool = self._pools(k)
            real, y = self._real(pool, cfg.batch_size)
        y_in = y if conditional else None
        z = self._noise(pair, cfg.batch_size)
        with self._autocast():
            with torch.no_grad():
                fake = self._generate(pair.g, z, y_in).float()  # fakes share the real batch's labels
            real_logits = self._critic(d, real, y_in)
            if upool is not None:  # unlabeled real images: D's class-free term says "real"
                ureal, uy = self._real(upool, cfg.batch_size)
                real_logits = torch.cat([real_logits, d(self._aug(ureal), uy)])
            fake_logits = self._critic(d, fake, y_in)
            loss = scale * d_loss(cfg.loss, real_logits.float(), fake_logits.float())
        if cfg.loss == "wgan-gp" and cfg.gp_weight > 0:
            if grouped:  # per image: model k's logit depends on its own image only
                loss = loss + scale * cfg.gp_weight * gradient_penalty(
                    lambda x: self._critic(d, x.view_as(real), None), real.flatten(0, 1), fake.flatten(0, 1), self.gen)
            else:
                loss = loss + cfg.gp_weight * gradient_penalty(lambda x: d(self._aug(x), y_in), real, fake, self.gen)
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

    def _g_step(self, pair: GanPair, k: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        d, opt_d = pair.d, pair.opt_d
        if cfg.unroll:
            # Unrolled GAN (Metz et al. 2017), first-order: G is scored by a copy of D advanced
            # ``unroll`` steps against the current G; the real D is not changed by them.
            d = copy.deepcopy(pair.d)
            opt_d = _adam(d.parameters(), cfg.lr_d, cfg)
            opt_d.load_state_dict(pair.opt_d.state_dict())
            for _ in range(cfg.unroll):
                self._d_step(pair, d, opt_d, k)
        conditional = self.phase == "conditional"
        y = None
        if conditional:  # labels drawn as often as they occur in the labeled data
            w, r = self.dist.world, self.dist.rank
            pick = torch.randint(0, len(self.labeled_idx), (cfg.batch_size * w,), device=self.device, generator=self.gen)
            pick = pick[r * cfg.batch_size : (r + 1) * cfg.batch_size]
            y = self.labels[self.labeled_idx[pick]]
        z = self._noise(pair, cfg.batch_size)
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
        if cfg.ema_decay > 0:
            decay = min(cfg.ema_decay, (1 + phase_step) / (10 + phase_step))
            update_ema(pair.g_ema, pair.g, decay)
        else:
            update_ema(pair.g_ema, pair.g, 0.0)
        return {"loss_g": loss.detach() / scale}

    def train_step(self) -> dict[str, torch.Tensor]:
        """Advance every model one discriminator and one generator step; return mean statistics."""
        stats: dict[str, torch.Tensor] = {}
        for k, pair in enumerate(self.pairs):
            s = self._d_step(pair, pair.d, pair.opt_d, k)
            s.update(self._g_step(pair, k))
            for name, v in s.items():
                stats[name] = stats.get(name, 0) + v / len(self.pairs)
        self.step += 1
        return stats

    def images_per_step(self) -> int:
        """Real images the discriminators see per step (all models together)."""
        n = self.config.batch_size * (self.num_classes if self.phase == "per-class" else len(self.pairs) * self.dist.world)
        if self.phase == "conditional" and len(self.unlabeled_idx):
            n *= 2
        return n

    # ---------------------------------------------------------------- sampling generator
    def _recalibrate(self) -> None:
        """Recompute the EMA generators' BatchNorm statistics for this step (once per step)."""
        if self._calibrated_step == self.step:
            return
        conditional = self.phase == "conditional"
        for k, pair in enumerate(self.pairs):
            labels = self._cycle_labels if conditional else _no_labels
            share = (self.num_classes, self.my_class_idx) if self.phase == "per-class" else None
            recalibrate_batchnorm(pair.g_ema, labels, seed=self.config.seed + 7919 * (k + 1), groups_of=share)
        self._calibrated_step = self.step

    def _ema_states(self) -> list[dict[str, torch.Tensor]]:
        """This rank's EMA generator states, one per model."""
        return [st for p in self.pairs for st in unpack_states(p.g_ema.state_dict(), p.groups)]

    def sampling_generator(self) -> nn.Module:
        """This rank's EMA generator(s) as one module with ``G(z, y)``, BatchNorm recalibrated for this step."""
        if self._sampler is None or self._sampler[0] != self.step:
            self._recalibrate()
            self._sampler = (self.step, self._build_sampler(self._ema_states()))
        return self._sampler[1]

    def _build_sampler(self, g_ema_states: list[dict[str, torch.Tensor]]) -> nn.Module:
        if self.phase != "per-class":
            return self.pairs[0].g_ema
        gens = []
        for state in g_ema_states:
            with torch.device("meta"):  # no initialisation: it would draw from training's RNG
                g = Generator(self.pairs[0].g_ema.config)
            g.load_state_dict(state, assign=True)
            gens.append(g.requires_grad_(False).eval())
        return PerClassGenerator(gens)

    def _cycle_labels(self, n: int) -> torch.Tensor:
        return torch.arange(n, device=self.device) % self.num_classes

    def _job_states(self, local: Callable[[], list[Any]]) -> list[Any] | None:
        """``local()``'s per-model states for the whole job on rank 0 (per-class: gathered from
        every rank, in class order; other phases: rank 0's own); None on other ranks. Collective."""
        if not self.dist.enabled:
            return local()
        mine = _to_cpu(local()) if (self.phase == "per-class" or self.dist.is_main) else None
        gathered = self.dist.gather(mine)
        if not self.dist.is_main:
            return None
        return [st for part in gathered for st in part] if self.phase == "per-class" else gathered[0]

    def save_samples(self) -> Path | None:
        """Write this step's sample grid (rank 0; every rank must call it in a multi-process job)."""
        if self.dist.enabled and self.phase == "per-class":  # the grid needs every rank's classes
            self._recalibrate()
            states = self._job_states(self._ema_states)
            if states is None:
                return None
            gen = self._build_sampler([{k: v.to(self.device) for k, v in st.items()} for st in states])
        elif not self.dist.is_main:
            return None
        else:
            gen = self.sampling_generator()
        path = self.out_dir / "samples" / f"step_{self.step:06d}.png"
        upscale = max(1, 64 // self.config.image_size)
        grid = class_grid(gen, per_row=10, seed=self.config.seed, upscale=upscale)
        save_image_atomic(grid, path)
        return path

    # ---------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict[str, Any] | None:
        """The run's checkpoint dict (None on ranks other than 0; every rank must call it in a job)."""
        self._recalibrate()  # recalibrated EMA statistics go into the checkpoint
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "trainer": self.gen.get_state().cpu(), "device": str(self.device)}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        models = self._job_states(lambda: [st for p in self.pairs for st in p.states()])
        ranks = self.dist.gather(rng)
        if models is None:
            return None
        if self.dist.enabled:
            rng = {**rng, "world": self.dist.world, "ranks": ranks}
        return {
            "config": self.config.to_dict(),
            "model_config": self.model_cfg.to_dict(),
            "mode": self.config.mode,
            "phase": self.phase,
            "step": self.step,
            "pretrain_steps": self.pretrain_steps,
            "total_steps": self.total_steps,
            "models": models,
            "class_names": list(self.data.class_names),
            "image_size": self.config.image_size,
            "channels": self.channels,
            "normalization": {"mean": 0.5, "std": 0.5, "range": [-1.0, 1.0]},
            "diffaugment": self.diffaugment,
            "data": {**self.data.fingerprint(), **{k: v for k, v in self.sources.items() if v is not None}},
            "rng": rng,
            "elapsed_s": self.elapsed,
        }

    def save(self) -> Path:
        """Write the checkpoint atomically; a failed write leaves the previous checkpoint intact."""
        path = self.out_dir / CHECKPOINT_NAME
        ckpt = self.checkpoint()
        if ckpt is not None:
            try:
                save_checkpoint(ckpt, path)
            except OSError as exc:
                raise GanAugmentError(
                    f"could not write the checkpoint {str(path)!r} at step {self.step} ({exc.strerror or exc}): "
                    "the previous checkpoint is intact; free disk space or fix the folder's permissions, then --resume"
                ) from None
        return path

    def load(self, ckpt: dict[str, Any]) -> None:
        """Restore models, optimisers, step and RNG states from a checkpoint dict."""
        fp = self.data.fingerprint()
        if ckpt["data"].get("files_sha256") != fp["files_sha256"]:
            raise RunDirError(
                f"the images differ from those the run in {str(self.out_dir)!r} was trained on "
                f"({ckpt['data'].get('num_images')} then, {fp['num_images']} now): resume with the "
                "same folders, or start a new run with --out elsewhere or --overwrite"
            )
        self.step = int(ckpt["step"])
        self._calibrated_step = None
        self._sampler = None
        self.elapsed = float(ckpt.get("elapsed_s", 0.0))
        self.phase = ckpt["phase"]
        self.pairs = self._new_pairs(self.phase)
        states = list(ckpt["models"])
        if self.phase == "per-class":
            states = [states[c] for c in self.my_classes]  # this rank's share
        for pair in self.pairs:
            pair.load_states(states[: pair.groups])
            states = states[pair.groups :]
        rng = ckpt["rng"]
        if self.dist.enabled or "ranks" in rng:
            if rng.get("world", 1) == self.dist.world:
                rng = rng["ranks"][self.dist.rank]
            else:
                self.reporter.message(f"resuming with {self.dist.world} processes instead of {rng.get('world', 1)}: random streams reseeded")
                rng = {**rng, "device": "reseed"}
        torch.set_rng_state(rng["torch"])
        if rng.get("device") == str(self.device):
            self.gen.set_state(rng["trainer"])
            if self.device.type == "cuda" and "cuda" in rng:
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        else:
            if rng.get("device") != "reseed":
                self.reporter.message(f"resuming on {self.device} instead of {rng.get('device')}: random stream reseeded")
            self.gen.manual_seed(self.config.seed + 1 + self.step)

    # ---------------------------------------------------------------- the loop
    # ---------------------------------------------------------------- faults
    def _weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for pair in self.pairs for m in (pair.g, pair.d) for p in m.parameters())

    def _rollback(self, reason: str) -> None:
        """Go back to the last checkpoint with both learning rates halved (at most ``max_rollbacks`` times)."""
        cfg = self.config
        path = self.out_dir / CHECKPOINT_NAME
        self.rollbacks += 1
        if self.rollbacks > cfg.max_rollbacks or not path.is_file():
            raise GanAugmentError(
                f"training diverged at step {self.step} ({reason})"
                + (f" after {cfg.max_rollbacks} roll-backs with lower learning rates" if cfg.max_rollbacks else "")
                + f"; the last good checkpoint {str(path)!r} is intact: try lower --lr-g/--lr-d, --loss hinge or --diffaugment on"
            )
        failed_at = self.step
        rollbacks = self.rollbacks
        ckpt = load_checkpoint(path, map_location="cpu")
        lr_g, lr_d = max(cfg.lr_g * 0.5, 1e-8), max(cfg.lr_d * 0.5, 1e-8)
        self.config = cfg.replace(lr_g=lr_g, lr_d=lr_d)
        self.load(ckpt)
        self.rollbacks = rollbacks
        for pair in self.pairs:
            for opt, lr in ((pair.opt_g, lr_g), (pair.opt_d, lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr
        self.reporter.message(
            f"training diverged at step {failed_at} ({reason}): rolled back to step {self.step}, "
            f"learning rates halved to {lr_g:.2e} (G) and {lr_d:.2e} (D) [{self.rollbacks}/{cfg.max_rollbacks}]"
        )
        self._event({"event": "rollback", "step": failed_at, "to_step": self.step, "reason": reason, "lr_g": lr_g, "lr_d": lr_d})

    def _shrink_batch(self, exc: BaseException) -> None:
        """After CUDA running out of memory: retry at half the batch (at most three times)."""
        b = self.config.batch_size
        self.oom_retries += 1
        if b < 4 or self.oom_retries > 3 or self.dist.enabled:  # ranks must keep in step: no retry in a job
            raise GanAugmentError(
                f"out of GPU memory on {self.device} at batch size {b}: try --batch-size {max(2, b // 2)}, "
                "a smaller --image-size or narrower models (--g-width, --d-width)"
            ) from None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.config = self.config.replace(batch_size=b // 2)
        self.reporter.message(f"out of GPU memory at batch size {b} (step {self.step}): retrying at batch size {b // 2}")
        self._event({"event": "oom", "step": self.step, "batch_size": b // 2})

    def _event(self, row: dict[str, Any]) -> None:
        if self.dist.is_main:
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    # ---------------------------------------------------------------- the loop
    def fit(self) -> Path:
        """Train to ``total_steps``, writing metrics, sample grids and checkpoints; return the checkpoint path.

        SIGINT (Ctrl-C) and SIGTERM stop at the end of the current step with a checkpoint; a second
        Ctrl-C stops at once. Divergence rolls back (see :meth:`_rollback`); CUDA running out of
        memory retries at half the batch.
        """
        with _stop_signals(self) as stop:
            fresh = not (self.out_dir / CHECKPOINT_NAME).is_file()
            if self.dist.enabled:
                fresh = bool(self.dist.gather(fresh)[0])  # rank 0 decides: the save is collective
            if fresh:
                self.save()  # a rollback target from the start, and something to resume after kill -9
            try:
                self._loop(stop)
            except KeyboardInterrupt:
                if self.dist.enabled:  # the other ranks may be gone: no collective save
                    self.reporter.message(f"interrupted at step {self.step}: resume from the last checkpoint with --resume")
                    raise
                self.save()
                self.reporter.message(
                    f"interrupted at step {self.step}: checkpoint saved; continue with "
                    f"`gan-augment fit ... --out {self.out_dir} --resume`"
                )
                raise
        return self.out_dir / CHECKPOINT_NAME

    def _loop(self, stop: dict[str, int | None]) -> None:
        sums: dict[str, torch.Tensor] = {}
        n_sums = 0
        t_last, images_since = time.perf_counter(), 0
        collapse_run, last_check = 0, self.step
        check_every = 10  # steps between the (synchronising) health checks
        with self.reporter.progress(self.total_steps, self.step) as bar:
            while self.step < self.total_steps:
                if stop["signal"] is not None and not self.dist.enabled:
                    raise TrainingStopped(stop["signal"])
                cfg = self.config
                if self.phase == "pretrain" and self.step >= self.pretrain_steps:
                    self._enter_per_class()
                try:
                    stats = self.train_step()
                except torch.cuda.OutOfMemoryError as exc:
                    self._shrink_batch(exc)
                    sums, n_sums = {}, 0
                    continue
                images_since += self.images_per_step()
                for name, v in stats.items():
                    sums[name] = sums.get(name, 0) + v
                n_sums += 1
                last = self.step == self.total_steps
                logging = self.step % cfg.log_every == 0 or last
                saving = self.step % cfg.checkpoint_every == 0 or last
                if logging or saving or self.step % check_every == 0:
                    # NaN in the weights makes every later loss NaN, so this step's losses suffice.
                    now_stats = dict(zip(stats, torch.stack([v.float() for v in stats.values()]).tolist()))
                    reason = ", ".join(k for k, v in now_stats.items() if not math.isfinite(v))
                    if not reason and saving and not self._weights_finite():
                        reason = "weights"
                    reason = f"{reason} not finite" if reason else ""
                    if not reason and cfg.collapse_steps and cfg.loss in ("bce", "hinge"):
                        collapse_run = collapse_run + (self.step - last_check) if now_stats["loss_d"] < 1e-3 else 0
                        if collapse_run >= cfg.collapse_steps:
                            reason = f"discriminator loss below 1e-3 for {collapse_run} steps"
                    last_check = self.step
                    if self.dist.enabled:  # every rank rolls back together, or none does
                        reason = "; ".join(r for r in self.dist.gather(reason) if r)
                    if reason:
                        self._rollback(reason)
                        sums, n_sums, collapse_run, last_check = {}, 0, 0, self.step
                        continue
                if logging:
                    now = time.perf_counter()
                    dt = now - t_last
                    self.elapsed += dt
                    row: dict[str, Any] = {"step": self.step, "phase": self.phase}
                    row.update({k: round(float(v) / n_sums, 5) for k, v in sums.items()})
                    row["img_per_s"] = round(images_since / max(dt, 1e-9), 1)
                    row["elapsed_s"] = round(self.elapsed, 2)
                    self._event(row)
                    bar.update(self.step, row)
                    sums, n_sums, t_last, images_since = {}, 0, now, 0
                else:
                    bar.update(self.step, None)
                if self.step % cfg.sample_every == 0 or last:
                    self.save_samples()
                if saving:
                    self.save()


class TrainingStopped(KeyboardInterrupt):
    """SIGINT or SIGTERM asked training to stop; a checkpoint was written at a step boundary."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals(trainer: Trainer) -> Iterator[dict[str, int | None]]:
    """While training: SIGINT/SIGTERM set a flag the loop checks between steps (a second SIGINT stops at once)."""
    stop: dict[str, int | None] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        if stop["signal"] is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop["signal"] = signum
        trainer.reporter.message(f"{signal.Signals(signum).name} received: stopping after this step (Ctrl-C again to stop now)")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def check_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Check, without writing anything, that ``out`` may be used as asked.

    Raises:
        RunDirError: If another run is there and neither ``resume`` nor ``overwrite`` is set, or
            ``resume`` is set and there is nothing to resume.
    """
    if resume:
        if not (out / CHECKPOINT_NAME).is_file():
            raise RunDirError(f"nothing to resume: {str(out / CHECKPOINT_NAME)!r} does not exist; drop --resume")
        return
    if out.exists() and not out.is_dir():
        raise RunDirError(f"output path {str(out)!r} is a file: pass a folder for --out")
    has_run = out.is_dir() and any((out / name).exists() for name in RUN_FILES)
    if has_run and not overwrite:
        raise RunDirError(
            f"{str(out)!r} already holds a run: pass --resume to continue it, --overwrite to "
            "replace it, or another --out"
        )


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Create ``out``; with ``overwrite``, first remove the previous run's files (and only those)."""
    check_run_dir(out, resume, overwrite)
    if out.is_dir():  # temporary files of a write that a kill -9 cut short
        for stale in out.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    if overwrite and not resume:
        for name in RUN_FILES:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def fit(
    labeled: str | os.PathLike[str],
    unlabeled: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] = "runs/run",
    config: TrainConfig | None = None,
    *,
    device: str | torch.device = "auto",
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    reporter: Reporter | None = None,
    strict: bool = False,
    compile: str = "off",
) -> Path:
    """Train DCGAN(s) on image folders and write a run directory.

    Args:
        labeled: ImageFolder-style folder (one sub-folder of images per class).
        unlabeled: Optional folder of unlabeled images of the same kind (searched recursively).
        out: Run directory to write (``checkpoint.pt``, ``samples/``, ``metrics.jsonl``,
            ``config.json``).
        config: Training configuration (default: :class:`TrainConfig`'s defaults). With
            ``resume``, the checkpoint's configuration is used and only ``steps`` is taken from
            ``config`` (to train longer).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        resume: Continue the run in ``out`` from its checkpoint.
        overwrite: Replace a run already in ``out``.
        quiet: No progress bar or messages.
        reporter: Where progress goes (default: a terminal reporter honouring ``quiet``).
        strict: Fail on an unreadable image file instead of skipping and listing it.
        compile: ``torch.compile`` the training models (see :class:`Trainer`); honoured on resume.

    Returns:
        Path of the final checkpoint.

    Raises:
        GanAugmentError: On bad folders, a run directory in the way, or an unusable device.
    """
    out_dir = Path(out).expanduser()
    reporter = reporter or Reporter(quiet=quiet)
    resolve_device(device)
    check_run_dir(out_dir, resume, overwrite)  # before the (possibly long) decoding
    ckpt = None
    if resume:
        ckpt = load_checkpoint(out_dir, map_location="cpu")
        # The checkpoint's settings, with pre-training fixed at what the run resolved it to.
        saved = TrainConfig.from_dict(ckpt["config"]).replace(pretrain_steps=int(ckpt["pretrain_steps"]))
        config = saved.replace(steps=config.steps) if config is not None else saved
    config = config or TrainConfig()
    check_compile(compile, config)  # before the (possibly long) decoding
    data = load_image_data(labeled, unlabeled, image_size=config.image_size, channels=config.channels, strict=strict)
    reporter.message(summary(data))
    sources = {"labeled": str(Path(labeled).resolve()), "unlabeled": str(Path(unlabeled).resolve()) if unlabeled else None}
    return fit_data(
        data, out_dir, config, device=device, resume=resume, overwrite=overwrite, reporter=reporter,
        sources=sources, checkpoint=ckpt, compile=compile,
    )


def fit_data(
    data: ImageData,
    out: str | os.PathLike[str],
    config: TrainConfig,
    *,
    device: str | torch.device = "auto",
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    reporter: Reporter | None = None,
    sources: dict[str, str | None] | None = None,
    checkpoint: dict[str, Any] | None = None,
    compile: str = "off",
) -> Path:
    """Train on images already decoded (an :class:`ImageData`, e.g. a benchmark's split) into ``out``.

    ``config.image_size`` must match the images; ``checkpoint`` is the run's checkpoint when the
    caller has already read it for ``resume``; ``compile`` as in :class:`Trainer`; see :func:`fit`
    for the rest.
    """
    out_dir = Path(out).expanduser()
    reporter = reporter or Reporter(quiet=quiet)
    dev = resolve_device(device)
    job, dev = from_environment(dev)  # under torchrun: this rank's place and device
    try:
        out_path = _fit_job(data, out_dir, config, job, dev, resume, overwrite, reporter, sources, checkpoint, compile)
    except BaseException:
        job.close(clean=False)
        raise
    job.close()
    return out_path


def _fit_job(data: ImageData, out_dir: Path, config: TrainConfig, job: DistContext, dev: torch.device, resume: bool,
             overwrite: bool, reporter: Reporter, sources: dict[str, str | None] | None,
             checkpoint: dict[str, Any] | None, compile: str) -> Path:
    if not job.is_main:
        reporter = Reporter(quiet=True)
    if data.images.shape[-1] != config.image_size:
        raise GanAugmentError(f"images are {data.images.shape[-1]} px but config.image_size={config.image_size}")
    check_run_dir(out_dir, resume, overwrite)
    sources = sources or {}
    trainer = Trainer(config, data, out_dir, dev, reporter, sources, dist=job, compile=compile)
    if resume:
        # On the CPU: load_state_dict copies to the device, and RNG states must stay CPU tensors.
        trainer.load(checkpoint if checkpoint is not None else load_checkpoint(out_dir, map_location="cpu"))
        reporter.message(f"resuming at step {trainer.step} of {trainer.total_steps}")
    job.barrier()  # every rank has checked the run directory before rank 0 writes to it
    if job.is_main:
        _write_run_header(out_dir, config, trainer, data, sources, dev, resume, overwrite, job.world)
    job.barrier()
    reporter.message(
        f"training {config.mode} on {dev}" + (f" × {job.world} processes" if job.enabled else "") + f" ({trainer.total_steps} steps"
        + (f", {trainer.pretrain_steps} of them unconditional pre-training" if trainer.pretrain_steps else "")
        + f", DiffAugment {'on' if trainer.diffaugment else 'off'}, loss {config.loss}"
        + (f", compiled ({compile})" if compile != "off" else "") + ")"
    )
    return trainer.fit()


def _write_run_header(out_dir: Path, config: TrainConfig, trainer: Trainer, data: ImageData,
                      sources: dict[str, str | None], dev: torch.device, resume: bool, overwrite: bool, world: int) -> None:
    prepare_run_dir(out_dir, resume, overwrite)  # nothing is written before the data is known good
    atomic_write_json(
        out_dir / "config.json",
        {
            "config": config.to_dict(),
            "model_config": trainer.model_cfg.to_dict(),
            "class_names": data.class_names,
            "data": {**data.fingerprint(), **{k: v for k, v in sources.items() if v}},
            "device": str(dev),
            "processes": world,
            "diffaugment": trainer.diffaugment,
            "pretrain_steps": trainer.pretrain_steps,
            "total_steps": trainer.total_steps,
        },
    )
