"""Shared fixtures: tiny synthetic image folders, a seed, a private decode cache, a tiny config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from PIL import Image

from gan_augment import ModelConfig, TrainConfig, fit


def requires_cuda(obj: Any) -> Any:
    """Mark a test ``gpu`` (``pytest -m gpu`` runs just these on a GPU machine) and skip it without CUDA."""
    return pytest.mark.gpu(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")(obj))


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own decode cache, never the user's."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("GAN_AUGMENT_CACHE", str(cache))
    return cache


@pytest.fixture
def seed() -> int:
    torch.manual_seed(0)
    np.random.seed(0)
    return 0


def _pattern(rng: np.random.Generator, size: int, channels: int, cls: int) -> np.ndarray:
    """A small image whose brightness depends on its class, with noise."""
    base = 40 + 60 * cls
    arr = np.clip(rng.normal(base, 20, size=(size, size, channels)), 0, 255).astype(np.uint8)
    return arr[..., 0] if channels == 1 else arr


MakeFolder = Callable[..., Path]


@pytest.fixture
def make_image_folder(tmp_path: Path) -> MakeFolder:
    """Factory: an ImageFolder with ``classes`` × ``per_class`` PNGs (RGB or grayscale)."""

    def make(
        name: str = "labeled",
        classes: int = 2,
        per_class: int = 6,
        size: int = 20,
        channels: int = 3,
        seed: int = 0,
    ) -> Path:
        rng = np.random.default_rng(seed)
        root = tmp_path / name
        for c in range(classes):
            d = root / f"class_{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(_pattern(rng, size, channels, c)).save(d / f"img_{i:03d}.png")
        return root

    return make


@pytest.fixture
def make_unlabeled_folder(tmp_path: Path) -> MakeFolder:
    """Factory: a nested folder of ``n`` unlabeled PNGs."""

    def make(name: str = "unlabeled", n: int = 8, size: int = 20, channels: int = 3, seed: int = 1) -> Path:
        rng = np.random.default_rng(seed)
        root = tmp_path / name
        for i in range(n):
            d = root / ("a" if i % 2 else "b")
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_pattern(rng, size, channels, i % 3)).save(d / f"u_{i:03d}.png")
        return root

    return make


@pytest.fixture
def labeled(make_image_folder: MakeFolder) -> Path:
    return make_image_folder()


@pytest.fixture
def unlabeled(make_unlabeled_folder: MakeFolder) -> Path:
    return make_unlabeled_folder()


# `gan-augment fit` options for a run that trains in well under a second a step on a CPU (quiet last).
TINY_CLI = (
    "--image-size 16 --batch-size 4 --g-width 8 --d-width 8 --z-dim 8 --sample-every 2 --checkpoint-every 2 "
    "--teacher none --device cpu --quiet"
).split()


def tiny_config(**changes: object) -> TrainConfig:
    """A configuration that trains in well under a second a step on a CPU."""
    model = ModelConfig(image_size=16, g_width=8, d_width=8, z_dim=8, embed_dim=4)
    base = dict(
        image_size=16,
        steps=3,
        batch_size=4,
        log_every=1,
        sample_every=2,
        checkpoint_every=2,
        teacher="none",  # a teacher's own tests ask for one (tests/test_teacher.py)
        model=model,
    )
    base.update(changes)
    return TrainConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def tiny() -> Callable[..., TrainConfig]:
    return tiny_config


def write_folder(
    root: Path, classes: list[str], per_class: list[int], size: int = 16, channels: int = 3, seed: int = 0
) -> Path:
    """An ImageFolder with the given class names and counts (brightness grows with class index)."""
    rng = np.random.default_rng(seed)
    for c, (name, n) in enumerate(zip(classes, per_class)):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(_pattern(rng, size, channels, c)).save(d / f"img_{i:03d}.png")
    return root


def gray_runs(root: Path, runs: dict[str, TrainConfig]) -> dict[str, Path]:
    """Grayscale folders under ``root`` (dark, light: 6 labeled each; 8 unlabeled), and a run of each
    configuration in ``runs`` trained on them (the fast mlp teacher, where a configuration asks for one)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GAN_AUGMENT_CACHE", str(root / "cache"))
    labeled = write_folder(root / "labeled", ["dark", "light"], [6, 6], channels=1)
    unlabeled = write_folder(root / "unlabeled", ["a", "b"], [4, 4], channels=1, seed=1)
    for name, cfg in runs.items():
        fit(labeled, unlabeled, root / name, cfg, device="cpu", quiet=True)
    mp.undo()
    return {"labeled": labeled, "unlabeled": unlabeled, "root": root, **{name: root / name for name in runs}}


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny runs shared by the plugin tests: per-class, conditional, unconditional, and a
    per-class run doctored so class ``dark`` generates black images and ``light`` white ones."""
    from gan_augment import fit
    from gan_augment.io import load_checkpoint
    from gan_augment.io.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("trained")
    mp = pytest.MonkeyPatch()
    mp.setenv("GAN_AUGMENT_CACHE", str(root / "cache"))
    labeled = write_folder(root / "labeled", ["dark", "light"], [5, 7])
    runs = {"labeled": labeled}
    for mode in ("per-class", "conditional", "unconditional"):
        runs[mode] = root / mode
        fit(labeled, None, runs[mode], tiny_config(mode=mode, steps=2), device="cpu", quiet=True)
    pool = write_folder(root / "pool", ["any"], [6])  # a per-class run pre-trained on a pool keeps that model
    runs["with-pool"] = root / "with-pool"
    fit(labeled, pool, runs["with-pool"], tiny_config(steps=4, pretrain_steps=2), device="cpu", quiet=True)
    runs["taught"] = root / "taught"  # with its teacher (self-trained: RGB, a pool), as `fit LABELED UNLABELED` keeps
    fit(labeled, pool, runs["taught"], tiny_config(steps=2, teacher="auto", teacher_steps=2), device="cpu", quiet=True)
    ckpt = load_checkpoint(runs["per-class"])
    for model, level in zip(ckpt["models"], (-10.0, 10.0)):
        for part in ("g", "g_ema"):
            model[part]["to_image.weight"].zero_()
            model[part]["to_image.bias"].fill_(level)
    runs["black-white"] = root / "black-white"
    runs["black-white"].mkdir()
    ckpt = {k: v for k, v in ckpt.items() if k not in ("format_version", "package_version")}
    save_checkpoint(ckpt, runs["black-white"] / "checkpoint.pt")
    mp.undo()
    return runs


@pytest.fixture
def tiny_run(labeled: Path, tmp_path: Path) -> Path:
    """A per-class run of two steps on ``labeled`` (two classes, 16×16), trained on the CPU."""
    fit(labeled, None, tmp_path / "run", tiny_config(steps=2), device="cpu", quiet=True)
    return tmp_path / "run"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two separable classes (dark, light) of 6 labeled images, and 8 unlabeled ones."""
    root = tmp_path_factory.mktemp("cls")
    labeled = write_folder(root / "labeled", ["dark", "light"], [6, 6])
    unlabeled = write_folder(root / "unlabeled", ["a", "b"], [4, 4], seed=1)  # other images than the labeled
    return labeled, unlabeled
