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
from gan_augment.train.losses import d_loss, g_loss, gradient_penalty
from gan_augment.models import pack_states, unpack_states
from gan_augment.progress import Reporter
from gan_augment.train import Trainer, pack_optimizer, unpack_optimizer
from gan_augment.train import trainer as step_module


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
def test_trainer_step_equals_separate_models(loss: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One grouped D + G step: the same losses and gradients as K separate DCGANs given the same inputs."""
    folder = write_folder(tmp_path / "lab", ["a", "b", "c"], [5, 6, 7])
    data = load_image_data(folder, None, image_size=16)
    cfg = tiny_config(mode="per-class", steps=1, pretrain_steps=0, diffaugment="off", loss=loss, batch_size=4)
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, d_dropout=0.0))
    trainer = Trainer(cfg, data, tmp_path / "run", torch.device("cpu"), Reporter(quiet=True))
    pair = trainer.pair
    assert pair.groups == 3
    before = pair.states()
    # Record the grouped step's inputs: real batches, noise, and (WGAN-GP) the interpolation weights.
    reals: list[torch.Tensor] = []
    zs: list[torch.Tensor] = []
    draw = trainer.batches.real_per_class
    monkeypatch.setattr(trainer.batches, "real_per_class", lambda n: reals.append(draw(n)) or reals[-1])
    pair.g.register_forward_pre_hook(lambda m, args: zs.append(args[0].clone()))
    alphas: list[torch.Tensor] = []  # the gradient penalty's interpolation weights, as the step drew them
    weights = step_module.penalty_weights
    monkeypatch.setattr(step_module, "penalty_weights", lambda *a, **kw: alphas.append(weights(*a, **kw)) or alphas[-1])
    stats = trainer.train_step()
    grouped = pair.states()
    real, z_d, z_g = reals[0], zs[0], zs[1]

    d_losses, g_losses = [], []
    for i, state in enumerate(before):
        g, d = Generator(pair.g.config), Discriminator(pair.d.config)
        g.load_state_dict(state["g"])
        d.load_state_dict(state["d"])
        with torch.no_grad():
            fake = g(z_d[:, i])
        ld = d_loss(loss, d(real[:, i]), d(fake))
        if loss == "wgan-gp":
            a = alphas[0].view(-1, 3)[:, i].view(-1, 1, 1, 1)  # the grouped step's per-image weights
            ld = ld + cfg.gp_weight * gradient_penalty(d, real[:, i], fake, alpha=a)
        d.zero_grad()
        ld.backward()
        d_grads = [p.grad.clone() for p in d.parameters()]
        # G's step is taken against the updated D: use the grouped run's, so that Adam's first
        # step (about ±lr whatever the gradient's size) cannot amplify float noise into the check.
        d.load_state_dict(grouped[i]["d"])
        d.requires_grad_(False)
        lg = g_loss(loss, d(g(z_g[:, i])))
        lg.backward()
        g_grads = [p.grad.clone() for p in g.parameters()]
        d_losses.append(ld.item())
        g_losses.append(lg.item())
        for module, grads in ((pair.d, d_grads), (pair.g, g_grads)):
            packed = [p.grad.view(3, *q.shape)[i] for p, q in zip(module.parameters(), grads)]
            assert len(packed) == len(grads)
            for mine, theirs in zip(packed, grads):
                torch.testing.assert_close(mine, theirs, rtol=1e-3, atol=1e-5)  # float summation order differs
    assert stats["loss_d"].item() == pytest.approx(sum(d_losses) / 3, rel=1e-4, abs=1e-6)
    assert stats["loss_g"].item() == pytest.approx(sum(g_losses) / 3, rel=1e-4, abs=1e-6)
    copy.deepcopy(grouped)  # plain, picklable states


def test_throughput_benchmark_quick(tmp_path: Path) -> None:
    """The benchmark's code path end to end on the CPU: a well-formed JSON and table (numbers not checked)."""
    import json
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"
    md = tmp_path / "performance.md"
    md.write_text("# Performance\n\nprose kept\n")
    result = subprocess.run([sys.executable, str(script), "--quick", "--device", "cpu", "--json", str(tmp_path / "t.json"),
                             "--markdown", str(md), "--compile", "default", "--compile-backend", "aot_eager"],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "t.json").read_text())
    assert {"machine", "torch", "commit", "results"} <= set(report)
    cases = {r["case"]: r for r in report["results"]}
    assert set(cases) == {"per-class", "conditional", "unconditional", "sampling", "features"}
    for r in cases.values():
        assert {"reference_img_per_s", "img_per_s", "speedup", "peak_gpu_mem_gb", "device"} <= set(r)
        assert r["img_per_s"] > 0
    assert cases["per-class"]["speedup"] == pytest.approx(cases["per-class"]["img_per_s"] / cases["per-class"]["reference_img_per_s"], rel=0.01)
    assert cases["per-class"]["compiled"] == "default" and cases["per-class"]["compiled_img_per_s"] > 0
    text = md.read_text()
    assert "prose kept" in text and text.count("<!-- throughput:cpu:start -->") == 1 and "| per-class |" in text
