"""The batched per-class engine computes what separate per-class models would."""

from __future__ import annotations

import pytest
import torch

from gan_augment import ModelConfig
from gan_augment.models import Discriminator, Generator, pack_states, unpack_states
from gan_augment.train import pack_optimizer, unpack_optimizer


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
