"""The semi-supervised GAN's trainer (Salimans et al. 2016): K-class discriminator, feature-matching generator."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..config import TrainConfig
from ..data import ImageData, stratified_split
from ..io.images import to_unit
from ..models import SSLGan
from ..progress import Reporter
from .losses import feature_matching_loss, ssl_d_loss


def _ssl_step(
    gan: SSLGan,
    opts: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    draw: Any,
    z_dim: int,
    b: int,
    gen: torch.Generator,
    train_idx: torch.Tensor,
    pool_idx: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """One D step (labeled, unlabeled and fake batches) and one feature-matching G step."""
    opt_d, opt_g = opts
    dev = train_idx.device
    xl, yl = draw(train_idx)
    xu, _ = draw(pool_idx)
    fake = gan.g(torch.randn(b, z_dim, device=dev, generator=gen))
    sup, unsup = ssl_d_loss(gan.d(xl), yl, gan.d(xu), gan.d(fake.detach()))
    opt_d.zero_grad(set_to_none=True)
    (sup + unsup).backward()
    opt_d.step()
    xu2, _ = draw(pool_idx)
    z = torch.randn(b, z_dim, device=dev, generator=gen)
    loss_g = feature_matching_loss(gan.d.features(xu2), gan.d.features(gan.g(z)))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return {"loss_d": (sup + unsup).detach(), "loss_g": loss_g.detach()}


@torch.no_grad()
def _accuracy(gan: SSLGan, images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> float | None:
    if not len(idx):
        return None
    pred = torch.cat([gan.d(to_unit(images[idx[i : i + 512]])).argmax(1) for i in range(0, len(idx), 512)])
    return float((pred == labels[idx]).float().mean())


def train_ssl(
    data: ImageData, config: TrainConfig, device: torch.device, val_fraction: float, reporter: Reporter
) -> dict[str, Any]:
    """Train the SSL GAN on ``data`` for ``config.steps`` steps; a stratified ``val_fraction`` of the
    labeled images is held out and scored. Returns ``{"state": ..., "metrics": ...}``."""
    torch.manual_seed(config.seed)
    gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    labels = data.labels.numpy()
    labeled_idx = np.flatnonzero(labels >= 0)
    tr, va = stratified_split(labels[labeled_idx], val_fraction, config.seed)
    train_idx = torch.as_tensor(labeled_idx[tr], device=device)
    val_idx = torch.as_tensor(labeled_idx[va], device=device)
    pool_idx = torch.arange(len(labels), device=device)  # every image is "real" for the unsupervised loss
    images, ys = data.images.to(device), data.labels.to(device)
    model_cfg = replace(config.model, channels=int(data.images.shape[1]), num_classes=0)
    gan = SSLGan(model_cfg, len(data.class_names)).to(device)
    betas = (config.beta1, config.beta2)
    opts = (
        torch.optim.Adam(gan.d.parameters(), lr=config.lr_d, betas=betas),
        torch.optim.Adam(gan.g.parameters(), lr=config.lr_g, betas=betas),
    )
    b = config.batch_size

    def draw(pool: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = pool[torch.randint(0, len(pool), (b,), device=device, generator=gen)]
        return to_unit(images[idx]), ys[idx]

    with reporter.progress(config.steps) as bar:
        for step in range(1, config.steps + 1):
            stats = _ssl_step(gan, opts, draw, model_cfg.z_dim, b, gen, train_idx, pool_idx)
            if step % config.log_every == 0 or step == config.steps:
                bar.update(step, {k: float(v) for k, v in stats.items()})
    gan.eval()
    state = {
        "kind": "ssl",
        "class_names": data.class_names,
        "image_size": config.image_size,
        "channels": model_cfg.channels,
        "model_config": model_cfg.to_dict(),
        "d": gan.d.state_dict(),
        "g": gan.g.state_dict(),
    }
    metrics = {
        "method": "ssl",
        "val_accuracy": _accuracy(gan, images, ys, val_idx),
        "num_val": int(len(val_idx)),
        "num_train_labeled": int(len(train_idx)),
        "num_unlabeled": data.num_unlabeled,
        "steps": config.steps,
    }
    return {"state": state, "metrics": metrics}
