"""The batched per-class engine computes what separate per-class models would."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import tiny_config, write_folder

from gan_augment import Discriminator, Generator, ModelConfig
from gan_augment.data import load_image_data
from gan_augment.losses import d_loss, g_loss, gradient_penalty
from gan_augment.models import pack_states, unpack_states
from gan_augment.progress import Reporter
from gan_augment.training import Trainer, pack_optimizer, unpack_optimizer


@pytest.mark.parametrize("upsample", ["nearest", "transposed"])
def test_grouped_models_equal_separate_models(seed: int, upsample: str) -> None:
    cfg = ModelConfig(image_size=16, g_width=8, d_width=8, z_dim=8, d_dropout=0.0, upsample=upsample)
    k = 3
    gs, ds = [Generator(cfg) for _ in range(k)], [Discriminator(cfg) for _ in range(k)]
    g, d = Generator(cfg, k), Discriminator(cfg, k)
    g.load_state_dict(pack_states([m.state_dict() for m in gs]))
    d.load_state_dict(pack_states([m.state_dict() for m in ds]))
    z = torch.randn(5, k, 8)
    x = g(z)
    assert x.shape == (5, k, 3, 16, 16)
    separate = torch.stack([gs[i](z[:, i]) for i in range(k)], 1)
    torch.testing.assert_close(x, separate)
    torch.testing.assert_close(d(x), torch.stack([ds[i](separate[:, i]) for i in range(k)], 1))
    # Train-mode BatchNorm statistics are per model too.
    for mine, theirs in zip(unpack_states(g.state_dict(), k), (m.state_dict() for m in gs)):
        for name in theirs:
            torch.testing.assert_close(mine[name], theirs[name], msg=name)


def test_pack_round_trip(seed: int) -> None:
    cfg = ModelConfig(image_size=16, g_width=4, z_dim=4)
    models = [Generator(cfg) for _ in range(4)]
    opts = [torch.optim.Adam(m.parameters()) for m in models]
    for m, o in zip(models, opts):
        m(torch.randn(2, 4)).sum().backward()
        o.step()
    states = unpack_states(pack_states([m.state_dict() for m in models]), 4)
    ostates = unpack_optimizer(pack_optimizer([o.state_dict() for o in opts]), 4)
    for m, o, s, os_ in zip(models, opts, states, ostates):
        assert all(torch.equal(v, s[n]) for n, v in m.state_dict().items())
        for i, st in o.state_dict()["state"].items():
            assert all(torch.equal(v, os_["state"][i][n]) for n, v in st.items())


@pytest.mark.parametrize("loss", ["bce", "hinge", "wgan-gp"])
def test_trainer_step_equals_separate_models(loss: str, tmp_path: Path) -> None:
    """One grouped D + G step: the same losses, gradients and updated weights as K separate DCGANs."""
    folder = write_folder(tmp_path / "lab", ["a", "b", "c"], [5, 6, 7])
    data = load_image_data(folder, None, image_size=16)
    cfg = tiny_config(mode="per-class", steps=1, pretrain_steps=0, diffaugment="off", loss=loss, batch_size=4)
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, d_dropout=0.0))
    trainer = Trainer(cfg, data, tmp_path / "run", torch.device("cpu"), Reporter(quiet=True))
    pair = trainer.pairs[0]
    assert pair.groups == 3
    before = pair.states()
    # Record the grouped step's inputs: real batches, noise, and (WGAN-GP) the interpolation weights.
    reals: list[torch.Tensor] = []
    zs: list[torch.Tensor] = []
    draw = trainer._real_per_class
    trainer._real_per_class = lambda n: reals.append(draw(n)) or reals[-1]  # type: ignore[method-assign]
    pair.g.register_forward_pre_hook(lambda m, args: zs.append(args[0].clone()))
    alphas: list[torch.Tensor] = []
    rand = torch.rand

    def recording_rand(*shape, **kw):  # type: ignore[no-untyped-def]
        out = rand(*shape, **kw)
        if len(shape) == 4 and shape[1:] == (1, 1, 1):
            alphas.append(out)
        return out

    torch.rand = recording_rand  # type: ignore[assignment]
    try:
        stats = trainer.train_step()
    finally:
        torch.rand = rand  # type: ignore[assignment]
    grouped = pair.states()
    real, z_d, z_g = reals[0], zs[0], zs[1]

    d_losses, g_losses = [], []
    for i, state in enumerate(before):
        g, d = Generator(pair.g.config), Discriminator(pair.d.config)
        g.load_state_dict(state["g"])
        d.load_state_dict(state["d"])
        opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        with torch.no_grad():
            fake = g(z_d[:, i])
        ld = d_loss(loss, d(real[:, i]), d(fake))
        if loss == "wgan-gp":
            a = alphas[0].view(-1, 3)[:, i].view(-1, 1, 1, 1)  # the grouped step's per-image weights
            gp_gen = torch.Generator().manual_seed(0)
            torch_rand = torch.rand
            torch.rand = lambda *s, **kw: a  # type: ignore[assignment]
            try:
                ld = ld + cfg.gp_weight * gradient_penalty(d, real[:, i], fake, gp_gen)
            finally:
                torch.rand = torch_rand  # type: ignore[assignment]
        opt_d.zero_grad()
        ld.backward()
        d_grads = [p.grad.clone() for p in d.parameters()]
        opt_d.step()
        d.requires_grad_(False)
        lg = g_loss(loss, d(g(z_g[:, i])))
        opt_g.zero_grad()
        lg.backward()
        opt_g.step()
        d_losses.append(ld.item())
        g_losses.append(lg.item())
        for name, v in g.state_dict().items():
            torch.testing.assert_close(grouped[i]["g"][name], v, rtol=1e-4, atol=1e-6, msg=f"model {i} g {name}")
        for name, v in d.state_dict().items():
            torch.testing.assert_close(grouped[i]["d"][name], v, rtol=1e-4, atol=1e-6, msg=f"model {i} d {name}")
        packed_grads = [p.grad.view(3, *q.shape)[i] if p.ndim else p.grad for p, q in zip(pair.d.parameters(), d_grads)]
        for mine, theirs in zip(packed_grads, d_grads):
            torch.testing.assert_close(mine, theirs, rtol=1e-3, atol=1e-5)  # float summation order differs
    assert stats["loss_d"].item() == pytest.approx(sum(d_losses) / 3, rel=1e-4, abs=1e-6)
    assert stats["loss_g"].item() == pytest.approx(sum(g_losses) / 3, rel=1e-4, abs=1e-6)
    copy.deepcopy(grouped)  # plain, picklable states
