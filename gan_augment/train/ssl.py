"""The semi-supervised GAN's trainer (Salimans et al. 2016, their reference code's recipe): every
discriminator step sees a labeled, an unlabeled and a fake batch; the generator learns by feature
matching against a separate unlabeled batch; Adam (β1 0.5) with a linear decay to 0; evaluation and the
saved classifier use a bias-corrected average of the discriminator's weights."""

from __future__ import annotations

import copy
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import SSLConfig
from ..data import ImageData, stratified_split
from ..errors import UsageError
from ..io.images import to_unit
from ..models.ssl import SSLGan, data_dependent_init
from ..progress import Reporter
from ..seeds import keeps_callers_rng
from .losses import consistency_loss, feature_matching_loss, prediction_entropy, ssl_d_loss
from .metrics import accuracy
from .ssl_steps import run_steps

ADAM_EPS = 1e-4  # see SSLRun


class Cycler:
    """Batches from ``pool`` that go through it in a fresh random order each pass (the paper's epochs);
    ``order`` (what is left of the current pass) is its whole state."""

    def __init__(self, pool: torch.Tensor, batch: int, generator: torch.Generator) -> None:
        self.pool, self.batch, self.gen = pool, batch, generator
        self.order = pool[:0]

    def __call__(self) -> torch.Tensor:
        while len(self.order) < self.batch:
            perm = torch.randperm(len(self.pool), generator=self.gen, device=self.gen.device)
            self.order = torch.cat([self.order, self.pool[perm.to(self.pool.device)]])
        out, self.order = self.order[: self.batch], self.order[self.batch :]
        return out


class WeightAverage:
    """A bias-corrected exponential moving average of a module's parameters (Adam's correction): after t
    updates it is Σ decayᵗ⁻ⁱ(1 − decay) pᵢ / (1 − decayᵗ), a weighted mean of the weights seen so far."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay, self.t = decay, 0
        self.avg = [torch.zeros_like(p) for p in module.parameters()]

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.t += 1
        torch._foreach_lerp_(self.avg, [p.detach() for p in module.parameters()], 1.0 - self.decay)

    @torch.no_grad()
    def averaged(self, module: nn.Module) -> nn.Module:
        """A copy of ``module`` holding the averaged weights, in eval mode."""
        copy_ = copy.deepcopy(module).eval().requires_grad_(False)
        if self.t:  # before any update the average is the module's own weights
            correction = 1.0 - self.decay**self.t
            for p, a in zip(copy_.parameters(), self.avg):
                p.copy_(a / correction)
        return copy_


def jitter(x: torch.Tensor, generator: torch.Generator, shift: int = 2) -> torch.Tensor:
    """Each image translated by up to ``shift`` pixels (reflected borders) and flipped with probability ½."""
    b, dev = x.shape[0], x.device
    t = (torch.rand(b, 2, device=dev, generator=generator) * 2 - 1) * (2 * shift / x.shape[-1])
    flip = torch.where(torch.rand(b, device=dev, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = flip, 1.0, t
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)


class SSLRun:
    """One SSL GAN being trained: the networks, optimisers, batch sources and the weight average.

    ``supervised``: the same discriminator trained on the labeled batches alone (no unlabeled or
    fake batch, no generator step): the network without the semi-supervised part.
    """

    def __init__(
        self,
        data: ImageData,
        config: SSLConfig,
        device: torch.device,
        train_idx: torch.Tensor,
        supervised: bool = False,
    ) -> None:
        self.config, self.device, self.supervised = config, device, supervised
        self.gen = torch.Generator(device=device).manual_seed(config.seed + 1)
        self.images, self.labels = data.images.to(device), data.labels.to(device)
        size, channels = int(data.images.shape[-1]), int(data.images.shape[1])
        self.architecture = config.resolved_architecture(size, channels)
        classes = len(data.class_names)
        self.gan = SSLGan(self.architecture, size, channels, classes, config.z_dim, config.width).to(device)
        self.lr = config.learning_rate(self.architecture)
        # The reference code's Adam divides by sqrt(v + 1e-8): a floor of 1e-4 under the denominator. With
        # torch's sqrt(v) + 1e-8 instead, parameters with vanishing gradients (saturated sigmoid units of the
        # generator) take full-size steps on noise and the generator diverges after a few thousand iterations.
        adam = dict(lr=self.lr, betas=(config.beta1, 0.999), eps=ADAM_EPS)
        self.opt_d = torch.optim.Adam(self.gan.d.parameters(), **adam)
        self.opt_g = torch.optim.Adam([p for p in self.gan.g.parameters() if p.requires_grad], **adam)
        every = torch.arange(len(self.labels), device=device)  # every image is real for the unsupervised loss
        self.batch = b = config.batch_size  # halved when CUDA runs out of memory (see set_batch)
        self.labeled = Cycler(train_idx.to(device), b, self.gen)
        self.unlabeled, self.unlabeled_g = Cycler(every, b, self.gen), Cycler(every, b, self.gen)
        init = every[torch.randperm(len(every), generator=self.gen, device=device)[: config.init_images]]
        data_dependent_init(self.gan.d, to_unit(self.images[init]))
        self.average = WeightAverage(self.gan.d, config.ema_decay)
        self.step = 0

    def _set_lr(self) -> None:
        steps = self.config.steps
        start = self.config.decay_from * steps
        frac = 1.0 if self.step < start else max(0.0, (steps - self.step) / max(1.0, steps - start))
        for opt in (self.opt_d, self.opt_g):
            for group in opt.param_groups:
                group["lr"] = self.lr * frac

    def state_dict(self) -> dict[str, Any]:
        """Everything the run needs to continue exactly: networks, optimisers, average, batch orders, RNG."""
        return {
            "step": self.step,
            "g": self.gan.g.state_dict(),
            "d": self.gan.d.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "average": list(self.average.avg),
            "average_t": self.average.t,
            "orders": [c.order for c in (self.labeled, self.unlabeled, self.unlabeled_g)],
            "rng": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "lr": self.lr,  # lower after a roll-back
            "batch": self.batch,  # smaller after running out of memory
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (raises on weights of other shapes)."""
        self.gan.g.load_state_dict(state["g"])
        self.gan.d.load_state_dict(state["d"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if len(state["average"]) != len(self.average.avg):
            raise UsageError("its weight average does not fit the network")
        for mine, saved in zip(self.average.avg, state["average"]):
            mine.copy_(saved)
        self.average.t = int(state["average_t"])
        for cycler, order in zip((self.labeled, self.unlabeled, self.unlabeled_g), state["orders"]):
            if len(order) and (order.min() < 0 or order.max() >= len(self.labels)):
                raise UsageError("its batch order names images the data does not have")
            cycler.order = order.to(self.device, torch.int64)
        self.gen.set_state(state["rng"].cpu())
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.lr = float(state.get("lr", self.lr))  # (files from before roll-backs: the recipe's)
        batch = int(state.get("batch", self.config.batch_size))
        if not 1 <= batch <= self.config.batch_size:
            raise UsageError(f"its batch of {batch} images is out of range")
        self.set_batch(batch)
        if self.step and not self.supervised:
            # g_step leaves every discriminator parameter trainable, the weight-norm scales of the hidden
            # layers too (created frozen): the recipe as measured trains them from the first iteration on.
            self.gan.d.requires_grad_(True)

    def set_batch(self, batch: int) -> None:
        """Train on batches of ``batch`` images (labeled, unlabeled and generated) from now on."""
        self.batch = batch
        for cycler in (self.labeled, self.unlabeled, self.unlabeled_g):
            cycler.batch = batch

    def d_step(self) -> dict[str, torch.Tensor]:
        cfg, d, b = self.config, self.gan.d, self.batch
        if self.supervised:
            return self._supervised_step()
        li, ui = self.labeled(), self.unlabeled()
        with torch.no_grad():
            fake = self.gan.g(self.gan.noise(b, self.gen))
        xu = to_unit(self.images[ui])
        logits = d(torch.cat([to_unit(self.images[li]), xu, fake]))  # (3b, K): no statistics are shared
        lab, unl, fak = logits.split(b)
        sup, unsup = ssl_d_loss(lab, self.labels[li], unl, fak)
        loss = sup + cfg.unlabeled_weight * unsup
        if cfg.consistency:
            second = xu if self.architecture == "mlp" else jitter(xu, self.gen)  # new noise or dropout, too
            loss = loss + cfg.consistency * consistency_loss(unl, d(second))
        if cfg.entropy:
            loss = loss + cfg.entropy * prediction_entropy(unl)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        train_acc = (lab.argmax(1) == self.labels[li]).float().mean()
        return {"loss_lab": sup.detach(), "loss_unl": unsup.detach(), "train_acc": train_acc}

    def _supervised_step(self) -> dict[str, torch.Tensor]:
        li = self.labeled()
        x = to_unit(self.images[li])
        logits = self.gan.d(x if self.architecture == "mlp" else jitter(x, self.gen))
        loss = F.cross_entropy(logits, self.labels[li])
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return {"loss_lab": loss.detach(), "train_acc": (logits.argmax(1) == self.labels[li]).float().mean()}

    def g_step(self) -> dict[str, torch.Tensor]:
        d = self.gan.d
        with torch.no_grad():
            real = d.features(to_unit(self.images[self.unlabeled_g()]))
        d.requires_grad_(False)
        fake = d.features(self.gan.g(self.gan.noise(self.batch, self.gen)))
        d.requires_grad_(True)
        loss = feature_matching_loss(real, fake)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return {"loss_g": loss.detach()}

    def train_step(self) -> dict[str, torch.Tensor]:
        """One discriminator and one generator step, then the weight average."""
        self._set_lr()
        stats = self.d_step()
        if not self.supervised:
            stats.update(self.g_step())
        self.average.update(self.gan.d)
        self.step += 1
        return stats


def default_ssl_steps(device: torch.device, architecture: str) -> int:
    """Iterations when none are asked for. mlp: 24,000 on the CPU (about 15 minutes on 2 cores for
    MNIST, 98.8% with 10 labels per class; docs/results/ssl_mnist.md has the curve), 60,000 on a GPU
    (the paper: 180,000). conv: 30,000 on a GPU (the paper's CIFAR-10 run: 600,000); on the CPU its
    iterations take about 3.4 s (2 cores), so 200, which does not train it: use a GPU."""
    if architecture == "mlp":
        return 60_000 if device.type == "cuda" else 24_000
    return 30_000 if device.type == "cuda" else 200


@keeps_callers_rng
def train_ssl(
    data: ImageData,
    config: SSLConfig,
    device: torch.device,
    val_fraction: float,
    reporter: Reporter,
    evaluate: Callable[[nn.Module], float] | None = None,
    eval_every: int = 0,
) -> dict[str, Any]:
    """Train the SSL GAN on ``data`` (labels −1: unlabeled) for ``config.steps`` iterations (0: the
    device's and networks' default, :func:`default_ssl_steps`).

    A stratified ``val_fraction`` of the labeled images is held out of training and scored at the end.
    With ``evaluate`` and ``eval_every``, ``evaluate(averaged discriminator)`` is recorded every
    ``eval_every`` iterations (the learning curve). Returns ``{"state", "metrics", "curve"}``; the
    state holds the averaged discriminator, which is the classifier.
    """
    run, val_idx = start_ssl(data, config, device, val_fraction, reporter)
    t0 = time.perf_counter()
    curve = run_steps(run, reporter, evaluate, eval_every)
    return finish_ssl(run, data, val_idx, time.perf_counter() - t0, curve)


def start_ssl(
    data: ImageData,
    config: SSLConfig,
    device: torch.device,
    val_fraction: float,
    reporter: Reporter,
    supervised: bool = False,
    min_held_out: int = 0,
) -> tuple[SSLRun, torch.Tensor]:
    """A new :class:`SSLRun` (its budget resolved) and the indices of the labeled images held out of it
    (``val_fraction`` of each class, at least ``min_held_out``)."""
    architecture = config.resolved_architecture(int(data.images.shape[-1]), int(data.images.shape[1]))
    config = config if config.steps else config.replace(steps=default_ssl_steps(device, architecture))
    if device.type == "cpu" and architecture == "conv":
        reporter.message("the ssl method's conv networks take seconds per iteration on a CPU: use a GPU")
    torch.manual_seed(config.seed)
    labels = data.labels.numpy()
    labeled = np.flatnonzero(labels >= 0)
    tr, va = stratified_split(labels[labeled], val_fraction, config.seed, min_held_out)
    return SSLRun(data, config, device, torch.as_tensor(labeled[tr]), supervised), torch.as_tensor(labeled[va])


def classifier_state(run: SSLRun, data: ImageData, classifier: nn.Module, kind: str = "ssl") -> dict[str, Any]:
    """The trained classifier (``run``'s averaged discriminator) as a plain dict, with what rebuilds it."""
    return {
        "kind": kind,
        "class_names": list(data.class_names),
        "image_size": int(data.images.shape[-1]),
        "channels": int(data.images.shape[1]),
        "architecture": run.architecture,
        "ssl_config": run.config.to_dict(),
        "d": classifier.state_dict(),
    }


def finish_ssl(
    run: SSLRun, data: ImageData, val_idx: torch.Tensor, seconds: float, curve: list[dict[str, float]]
) -> dict[str, Any]:
    """``{"state", "metrics", "curve"}`` of a trained run (see :func:`train_ssl`)."""
    classifier = run.average.averaged(run.gan.d)
    state = {**classifier_state(run, data, classifier), "g": run.gan.g.state_dict()}
    metrics = {
        "method": "ssl",
        "val_accuracy": accuracy(classifier, data.images[val_idx], data.labels[val_idx]),
        "num_val": int(len(val_idx)),
        "num_train_labeled": int(len(run.labeled.pool)),
        "num_unlabeled": data.num_unlabeled,
        "steps": run.config.steps,
        "architecture": run.architecture,
        "train_seconds": round(seconds, 1),
    }
    return {"state": state, "metrics": metrics, "curve": curve}
