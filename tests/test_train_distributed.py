"""Multi-process training with torchrun on the CPU (gloo): sharded per-class models, data-parallel modes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_CLI, write_folder

from gan_augment import load_generator, sample
from gan_augment.io import load_checkpoint
from gan_augment.train.distributed import DistContext

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built"),
]

TINY = TINY_CLI
# Without dropout and DiffAugment every random draw comes from the trainer's own stream, which a
# sharded run makes for all classes: its per-class models must equal a single process's.
EXACT = ["--d-dropout", "0", "--diffaugment", "off"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launcher(n: int) -> list[str]:
    """``torchrun`` for ``n`` processes on this machine (a free port each time)."""
    where = f"--nproc-per-node {n} --nnodes 1 --master-addr 127.0.0.1 --master-port {_free_port()}"
    return [sys.executable, "-m", "torch.distributed.run", *where.split()]


def torchrun(n: int, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*_launcher(n), "-m", "gan_augment.cli", "fit", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)


def single(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "gan_augment.cli", "fit", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def _models(run: Path) -> list[dict[str, dict[str, torch.Tensor]]]:
    return load_checkpoint(run)["models"]


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("dist") / "labeled", ["a", "b", "c"], [5, 6, 7])


def test_per_class_sharded_equals_single_process_and_resumes(three_classes: Path, tmp_path: Path) -> None:
    args = [str(three_classes), *TINY, *EXACT, "--mode", "per-class", "--steps", "4"]
    one = single(*args, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = torchrun(2, *args, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    # Rank 0 alone wrote the run: one checkpoint with all three classes, in class order.
    ckpt = load_checkpoint(tmp_path / "two")
    assert ckpt["step"] == 4 and len(ckpt["models"]) == 3 and ckpt["rng"]["world"] == 2
    assert sorted(p.name for p in (tmp_path / "two" / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    for a, b in zip(_models(tmp_path / "one"), _models(tmp_path / "two")):
        for part in ("g", "g_ema", "d"):
            for name, v in a[part].items():
                torch.testing.assert_close(b[part][name], v, rtol=1e-5, atol=1e-6, msg=f"{part}.{name}")
    # Stopped at step 2 and resumed with two processes: the same as the uninterrupted run.
    half = torchrun(2, *args[:-1], "2", "--out", str(tmp_path / "half"))
    assert half.returncode == 0, half.stderr[-3000:]
    resumed = torchrun(
        2, str(three_classes), "--steps", "4", "--out", str(tmp_path / "half"), "--resume", "--quiet", "--device", "cpu"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for a, b in zip(_models(tmp_path / "two"), _models(tmp_path / "half")):
        for name, v in a["g"].items():
            torch.testing.assert_close(b["g"][name], v, rtol=1e-5, atol=1e-6, msg=name)
    generator, info = load_generator(tmp_path / "half", device="cpu")
    assert info.class_names == ["a", "b", "c"] and sample(generator, 6, seed=0).shape == (6, 3, 16, 16)


def test_data_parallel_conditional_keeps_ranks_in_step(three_classes: Path, tmp_path: Path) -> None:
    """Gradients are averaged across ranks: both ranks' models stay identical, and differ from init."""
    script = tmp_path / "job.py"
    script.write_text(
        "import os, sys, torch\n"
        "from gan_augment import ModelConfig, TrainConfig\n"
        "from gan_augment.data import load_image_data\n"
        "from gan_augment.train.distributed import from_environment\n"
        "from gan_augment.progress import Reporter\n"
        "from gan_augment.train import Trainer\n"
        "job, dev = from_environment(torch.device('cpu'))\n"
        "data = load_image_data(sys.argv[1], None, image_size=16)\n"
        "cfg = TrainConfig(mode='conditional', image_size=16, batch_size=4, steps=3,\n"
        "                  model=ModelConfig(image_size=16, g_width=8, d_width=8, z_dim=8, embed_dim=4))\n"
        "t = Trainer(cfg, data, dev, Reporter(quiet=True), dist=job)\n"
        "init = torch.cat([p.detach().flatten().clone() for p in t.pair.g.parameters()])\n"
        "for _ in range(3):\n"
        "    t.train_step()\n"
        "params = torch.cat([p.detach().flatten() for m in (t.pair.g, t.pair.d) for p in m.parameters()])\n"
        "torch.save({'params': params, 'init': init}, os.path.join(sys.argv[2], f'rank{job.rank}.pt'))\n"
        "job.close()\n"
    )
    cmd = [*_launcher(2), str(script), str(three_classes), str(tmp_path)]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(r0["params"], r1["params"])
    assert not torch.equal(r0["init"], r0["params"][: len(r0["init"])])


def test_more_processes_than_classes_is_refused(tmp_path: Path) -> None:
    labeled = write_folder(tmp_path / "two", ["a", "b"], [4, 4])
    result = torchrun(3, str(labeled), *TINY, "--mode", "per-class", "--steps", "1", "--out", str(tmp_path / "run"))
    assert result.returncode != 0
    assert "3 processes for 2 classes" in result.stderr + result.stdout


def test_close_destroys_only_a_group_it_started(tmp_path: Path) -> None:
    """A live gloo group at interpreter exit can abort the process (SIGABRT): fit ends the group it began."""
    dist = torch.distributed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        DistContext(owns_group=False).close()
        assert dist.is_initialized()  # someone else's group (a caller's) is left alone
        DistContext(owns_group=True).close()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
