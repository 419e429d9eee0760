"""``--compile``: the compiled training models compute what the eager ones do.

On the CPU the graphs are captured with the ``aot_eager`` backend (Dynamo tracing and AOTAutograd,
the parts that can break on the models' code, without Inductor's slow C++ code generation); the
GPU test compiles with Inductor.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import requires_cuda, tiny_config, write_folder
from typer.testing import CliRunner

from gan_augment import ModelConfig
from gan_augment.cli import app
from gan_augment.data import load_image_data
from gan_augment.errors import GanAugmentError
from gan_augment.io import load_checkpoint
from gan_augment.progress import Reporter
from gan_augment.train import Trainer, fit_data
from gan_augment.train import pair as training_pair

EXACT = dict(
    diffaugment="off", model=ModelConfig(image_size=16, g_width=8, d_width=8, z_dim=8, embed_dim=4, d_dropout=0.0)
)


@pytest.fixture()
def aot_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    torch._dynamo.reset()
    monkeypatch.setattr(training_pair, "COMPILE_BACKEND", "aot_eager")


def _losses(trainer: Trainer, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        s = trainer.train_step()
        out += [float(s["loss_d"]), float(s["loss_g"])]
    return out


@pytest.mark.parametrize("mode", ["per-class", "conditional"])
def test_compiled_steps_equal_eager(mode: str, tmp_path: Path, aot_eager: None) -> None:
    folder = write_folder(tmp_path / "lab", ["a", "b", "c"], [5, 6, 7])
    data = load_image_data(folder, None, image_size=16)
    cfg = tiny_config(mode=mode, **EXACT)
    eager = Trainer(cfg, data, torch.device("cpu"), Reporter(quiet=True))
    compiled = Trainer(cfg, data, torch.device("cpu"), Reporter(quiet=True), compile="default")
    assert all(
        hasattr(m, "_compiled_call_impl") and m._compiled_call_impl is not None
        for p in [compiled.pair]
        for m in (p.g, p.d)
    )
    torch.testing.assert_close(_losses(compiled, 3), _losses(eager, 3), rtol=1e-4, atol=1e-5)
    for name, v in eager.pair.g.state_dict().items():  # the same keys: checkpoints unchanged
        torch.testing.assert_close(compiled.pair.g.state_dict()[name], v, rtol=1e-4, atol=1e-5, msg=name)


def test_compiled_run_switches_phase_and_saves_plain_checkpoint(tmp_path: Path, aot_eager: None) -> None:
    """Pre-training → per-class (new grouped models are compiled too); the checkpoint loads as usual."""
    lab = write_folder(tmp_path / "lab", ["a", "b"], [4, 4])
    unl = write_folder(tmp_path / "unl", ["u"], [6])
    data = load_image_data(lab, unl, image_size=16)
    cfg = tiny_config(steps=2, pretrain_steps=2, **EXACT)
    trainer = Trainer(cfg, data, torch.device("cpu"), Reporter(quiet=True), compile="default")
    trainer.train_step()
    trainer.enter_per_class()
    assert all(m._compiled_call_impl is not None for m in (trainer.pair.g, trainer.pair.d))
    assert trainer.pair.g.groups == 2
    fit_data(data, tmp_path / "run", cfg, device="cpu", quiet=True, compile="default")
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["step"] == 4 and len(ckpt["models"]) == 2
    assert not any("_orig_mod" in k for k in ckpt["models"][0]["g"])


def test_compile_refused_with_wgan_gp(tmp_path: Path) -> None:
    lab = write_folder(tmp_path / "lab", ["a", "b"], [3, 3])
    result = CliRunner().invoke(
        app,
        [
            "fit",
            str(lab),
            "--out",
            str(tmp_path / "run"),
            "--loss",
            "wgan-gp",
            "--compile",
            "default",
            "--image-size",
            "16",
            "--steps",
            "1",
            "--quiet",
        ],
    )
    assert result.exit_code == 2 and "wgan-gp" in result.output and not (tmp_path / "run").exists()
    with pytest.raises(GanAugmentError, match="compile='fast'"):
        training_pair.check_compile("fast", tiny_config())


@requires_cuda
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_inductor_on_cuda(mode: str, tmp_path: Path) -> None:
    """Inductor (and CUDA graphs: D runs twice a step on the same shapes) gives the eager losses."""
    torch._dynamo.reset()
    folder = write_folder(tmp_path / "lab", ["a", "b", "c"], [5, 6, 7])
    data = load_image_data(folder, None, image_size=16)
    cfg = tiny_config(amp=False, **EXACT)
    dev = torch.device("cuda")
    eager = Trainer(cfg, data, dev, Reporter(quiet=True))
    compiled = Trainer(cfg, data, dev, Reporter(quiet=True), compile=mode)
    torch.testing.assert_close(_losses(compiled, 5), _losses(eager, 5), rtol=1e-3, atol=1e-4)
