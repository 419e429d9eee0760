"""The model pair in training: generator, its EMA copy, discriminator, optimisers; EMA, BatchNorm
recalibration and ``torch.compile``."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..config import COMPILE_MODES, ModelConfig, TrainConfig
from ..errors import GanAugmentError, UsageError
from ..models import Discriminator, Generator, pack_states, unpack_states

COMPILE_BACKEND = "inductor"  # the tests use "aot_eager": the same graph capture without code generation


@dataclass(frozen=True)
class AdamSettings:
    """The optimisers' settings; training state, not configuration (a roll-back halves the rates)."""

    lr_g: float
    lr_d: float
    betas: tuple[float, float]

    @classmethod
    def from_config(cls, config: TrainConfig) -> AdamSettings:
        return cls(config.lr_g, config.lr_d, (config.beta1, config.beta2))

    def halved(self) -> AdamSettings:
        return replace(self, lr_g=max(self.lr_g * 0.5, 1e-8), lr_d=max(self.lr_d * 0.5, 1e-8))


def adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam over ``params``; fused (one kernel for all parameters) on the GPU."""
    params = list(params)
    fused = bool(params) and params[0].is_cuda
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)


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
        parts.update(
            {k: unpack_optimizer(v.state_dict(), n) for k, v in (("opt_g", self.opt_g), ("opt_d", self.opt_d))}
        )
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
            raise UsageError(f"{len(states)} model states for {self.groups} grouped models")
        if self.groups == 1:
            self.load(states[0])
            return
        self.load(
            {
                **{k: pack_states([s[k] for s in states]) for k in ("g", "g_ema", "d")},
                **{k: pack_optimizer([s[k] for s in states]) for k in ("opt_g", "opt_d")},
            }
        )

    def set_learning_rates(self, settings: AdamSettings) -> None:
        for opt, lr in ((self.opt_g, settings.lr_g), (self.opt_d, settings.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for m in (self.g, self.d) for p in m.parameters())


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
    return [
        {"state": {i: parts[i][g] for i in parts}, "param_groups": copy.deepcopy(state["param_groups"])}
        for g in range(groups)
    ]


def check_compile(compile: str, config: TrainConfig) -> None:
    """Raise GanAugmentError unless ``compile`` is a known mode that works with ``config``."""
    if compile not in COMPILE_MODES:
        raise GanAugmentError(f"compile={compile!r}: use one of {', '.join(COMPILE_MODES)}")
    if compile != "off" and config.loss == "wgan-gp":
        raise GanAugmentError(
            "--compile does not work with --loss wgan-gp (its gradient penalty needs a double "
            "backward): use --compile off, or the bce or hinge loss"
        )


def compile_pair(pair: GanPair, mode: str) -> None:
    """Compile ``pair``'s generator and discriminator in place (``torch.compile``; state dict keys unchanged).

    ``mode`` is one of :data:`~gan_augment.config.COMPILE_MODES` (checked by :func:`check_compile`);
    ``off`` does nothing. The EMA generator is not compiled (it only samples, at grids and checkpoints).
    """
    if mode == "off":
        return
    kwargs: dict[str, Any] = {"backend": COMPILE_BACKEND}
    if COMPILE_BACKEND == "inductor" and mode != "default":
        kwargs["mode"] = mode
    for module in (pair.g, pair.d):
        module.compile(**kwargs)


def make_pair(g: Generator, d: Discriminator, settings: AdamSettings, g_ema: Generator | None = None) -> GanPair:
    """A pair from built modules, with fresh optimisers (the EMA copy starts as G unless given)."""
    g_ema = g_ema if g_ema is not None else copy.deepcopy(g)
    g_ema.requires_grad_(False).eval()
    return GanPair(
        g,
        g_ema,
        d,
        adam(g.parameters(), settings.lr_g, settings.betas),
        adam(d.parameters(), settings.lr_d, settings.betas),
    )


def new_pair(model_cfg: ModelConfig, settings: AdamSettings, device: torch.device) -> GanPair:
    """Build a freshly initialised DCGAN on ``device``."""
    return make_pair(Generator(model_cfg).to(device), Discriminator(model_cfg).to(device), settings)


def grouped_pair(
    model_cfg: ModelConfig,
    settings: AdamSettings,
    device: torch.device,
    g: list[dict[str, torch.Tensor]],
    d: list[dict[str, torch.Tensor]],
    g_ema: list[dict[str, torch.Tensor]] | None = None,
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

    return make_pair(
        grouped(Generator, g),
        grouped(Discriminator, d),
        settings,
        grouped(Generator, g_ema) if g_ema is not None else None,
    )


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1−decay)·model for parameters; buffers (BatchNorm statistics) are copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


RECALIBRATION_IMAGES = 1024  # per model: noise batches whose BatchNorm statistics are averaged


@torch.no_grad()
def recalibrate_batchnorm(
    g: Generator,
    labels: Callable[[int], torch.Tensor | None],
    seed: int,
    batch_size: int = 256,
    groups_of: tuple[int, torch.Tensor] | None = None,
    images: int = RECALIBRATION_IMAGES,
) -> None:
    """Recompute a generator's BatchNorm statistics for its own (EMA) weights.

    The EMA weights never ran in training, so the running statistics copied from the live
    generator do not quite fit them; a few forward passes with a cumulative average fix that.
    Uses its own seeded RNG, so training's random stream is untouched. ``groups_of`` = (K, idx)
    draws the noise of K grouped models and keeps models ``idx`` (a rank's share of the classes),
    so each class model's statistics do not depend on how the classes are sharded. ``images``
    per model are drawn in passes of at most ``batch_size`` (the run's batch, halved after an
    out-of-memory retry), so recalibration never needs more memory than a training step.
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
    batch_size = max(1, min(batch_size, images))
    for _ in range(math.ceil(images / batch_size)):
        if groups_of is None:
            z = torch.randn(batch_size, *g.z_shape, device=dev, generator=gen)
        else:
            z = torch.randn(batch_size, groups_of[0], g.config.z_dim, device=dev, generator=gen)[:, groups_of[1]]
            z = z if g.groups > 1 else z[:, 0]
        g(z, labels(batch_size))
    for m, mom in zip(norms, momenta):
        m.momentum = mom
    g.eval()


def pretrained_state(pair: GanPair, seed: int, batch_size: int = 256) -> dict[str, Any]:
    """The pre-trained (shared, unconditional) models at the switch to per-class training, kept for the
    checkpoint: the EMA generator (BatchNorm statistics recalibrated on a copy, so training's own
    models and random stream are untouched) and the discriminator, as CPU tensors."""
    g_ema = copy.deepcopy(pair.g_ema)
    recalibrate_batchnorm(g_ema, lambda n: None, seed=seed, batch_size=batch_size)
    cpu = lambda sd: {k: v.detach().cpu().clone() for k, v in sd.items()}  # noqa: E731
    return {"g_ema": cpu(g_ema.state_dict()), "d": cpu(pair.d.state_dict())}
