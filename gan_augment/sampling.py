"""Sampling: rebuild a generator from a checkpoint, draw images of chosen classes, save grids and folders."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import torch
from PIL import Image
from torch import nn

from .checkpoint import atomic_write, load_checkpoint, strip_prefixes
from .config import ModelConfig
from .errors import CheckpointError
from .models import Discriminator, Generator, PerClassDiscriminator, PerClassGenerator


@dataclass(frozen=True)
class GeneratorInfo:
    """What a loaded generator produces.

    Attributes:
        mode: The training mode (``per-class``, ``conditional`` or ``unconditional``).
        class_names: Class names in label order (empty when the generator is unconditional).
        image_size: Side of the images in pixels.
        channels: 1 or 3.
        step: Training step of the checkpoint.
        model: The architecture.
        checkpoint: Path of the checkpoint file.
    """

    mode: str
    class_names: list[str]
    image_size: int
    channels: int
    step: int
    model: ModelConfig
    checkpoint: str


def build_generator(ckpt: dict[str, Any], ema: bool = True) -> nn.Module:
    """Rebuild the sampling generator (EMA weights by default) from a checkpoint dict."""
    model_cfg = ModelConfig.from_dict(ckpt["model_config"])
    key = "g_ema" if ema and ckpt["models"][0].get("g_ema") is not None else "g"
    gens = []
    for entry in ckpt["models"]:
        g = Generator(model_cfg)
        g.load_state_dict(strip_prefixes(entry[key]))
        gens.append(g)
    if ckpt["phase"] == "per-class":
        return PerClassGenerator(gens)
    return gens[0]


def build_discriminator(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the discriminator(s) of a checkpoint dict (per class: one module with ``D(x, y)``)."""
    model_cfg = ModelConfig.from_dict(ckpt["model_config"])
    ds = []
    for entry in ckpt["models"]:
        d = Discriminator(model_cfg)
        d.load_state_dict(strip_prefixes(entry["d"]))
        ds.append(d)
    if ckpt["phase"] == "per-class":
        return PerClassDiscriminator(ds)
    return ds[0]


def load_discriminator(
    path_or_run_dir: str | os.PathLike[str], device: str | torch.device | None = None
) -> nn.Module:
    """Load a run's discriminator(s) in eval mode (for scoring or filtering samples, or features).

    Raises:
        CheckpointError: If the checkpoint is missing, untrusted or unreadable.
    """
    ckpt = load_checkpoint(path_or_run_dir, map_location="cpu")
    try:
        d = build_discriminator(ckpt)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{str(path_or_run_dir)!r} is not a complete gan-augment checkpoint ({exc}): use another one"
        ) from exc
    device = torch.device(device) if device is not None else default_device()
    return d.to(device).eval()


def load_generator(
    path_or_run_dir: str | os.PathLike[str], device: str | torch.device | None = None, ema: bool = True
) -> tuple[nn.Module, GeneratorInfo]:
    """Load a ready-to-sample generator (eval mode) and its metadata.

    Args:
        path_or_run_dir: A run directory from ``gan-augment fit`` or its ``checkpoint.pt``.
        device: Where to put the generator (default: CUDA when available, else CPU).
        ema: Use the exponential-moving-average weights (what sampling should use).

    Returns:
        ``(generator, info)``; call ``generator(z, y)`` or, simpler, :func:`sample`.

    Raises:
        CheckpointError: If the checkpoint is missing, untrusted or unreadable.
    """
    ckpt = load_checkpoint(path_or_run_dir, map_location="cpu")
    try:
        gen = build_generator(ckpt, ema=ema)
        mode = ckpt["config"]["mode"]
        info = GeneratorInfo(
            mode=mode,
            class_names=list(ckpt["class_names"]) if ckpt["phase"] in ("per-class", "conditional") else [],
            image_size=int(ckpt["image_size"]),
            channels=int(ckpt["channels"]),
            step=int(ckpt["step"]),
            model=ModelConfig.from_dict(ckpt["model_config"]),
            checkpoint=str(path_or_run_dir),
        )
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{str(path_or_run_dir)!r} is not a complete gan-augment checkpoint ({exc}): use another one"
        ) from exc
    device = torch.device(device) if device is not None else default_device()
    return gen.to(device).eval(), info


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _num_classes(generator: nn.Module) -> int:
    return int(getattr(generator, "num_classes", 0))


@overload
def sample(
    generator: nn.Module,
    n: int,
    labels: int | list[int] | torch.Tensor | None = ...,
    seed: int | None = ...,
    output: Literal["tensor"] = ...,
    batch_size: int = ...,
) -> torch.Tensor: ...


@overload
def sample(
    generator: nn.Module,
    n: int,
    labels: int | list[int] | torch.Tensor | None = ...,
    seed: int | None = ...,
    output: Literal["pil"] = ...,
    batch_size: int = ...,
) -> list[Image.Image]: ...


@torch.no_grad()
def sample(
    generator: nn.Module,
    n: int,
    labels: int | list[int] | torch.Tensor | None = None,
    seed: int | None = None,
    output: Literal["tensor", "pil"] = "tensor",
    batch_size: int = 1024,
) -> torch.Tensor | list[Image.Image]:
    """Draw ``n`` images from a generator.

    Args:
        generator: A generator from :func:`load_generator` (or the trainer).
        n: Number of images.
        labels: Classes of the images: one int for all, a sequence or tensor of ``n`` ints, or
            None (classes cycle 0, 1, ..., K-1, 0, ... for class-aware generators).
        seed: Seed of the noise; the same seed gives the same images.
        output: ``tensor`` for uint8 (n, C, H, W) on the CPU, ``pil`` for a list of PIL images.
        batch_size: Images generated per forward pass.

    Returns:
        The images, in the order of ``labels``.

    Raises:
        ValueError: If ``n`` or a label is out of range.
    """
    if n < 0:
        raise ValueError(f"n={n} must be >= 0")
    k = _num_classes(generator)
    y = _labels(labels, n, k)
    param = next(generator.parameters())
    dev = param.device
    z_dim = generator.config.z_dim
    g = torch.Generator(device=dev)
    g.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,))))
    was_training = generator.training
    generator.eval()
    chunks = []
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        z = torch.randn(stop - start, z_dim, device=dev, generator=g)  # (b, z_dim)
        yb = y[start:stop].to(dev) if y is not None else None
        chunks.append(to_uint8(generator(z, yb)).cpu())
    generator.train(was_training)
    cfg = generator.config
    images = (
        torch.cat(chunks)
        if chunks
        else torch.empty(0, cfg.channels, cfg.image_size, cfg.image_size, dtype=torch.uint8)
    )
    if output == "pil":
        return [to_pil(img) for img in images]
    return images


def _labels(labels: int | list[int] | torch.Tensor | None, n: int, k: int) -> torch.Tensor | None:
    if k == 0:
        if labels is not None and not (isinstance(labels, int) and labels == 0):
            raise ValueError("this generator is unconditional: leave labels out")
        return None
    if labels is None:
        y = torch.arange(n) % k
    elif isinstance(labels, int):
        y = torch.full((n,), labels, dtype=torch.int64)
    else:
        y = torch.as_tensor(labels, dtype=torch.int64).flatten()
        if y.numel() != n:
            raise ValueError(f"got {y.numel()} labels for n={n} images: pass one label per image")
    if y.numel() and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must be in [0, {k - 1}] for this generator; got {y.unique().tolist()}")
    return y


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Map images in [-1, 1] to uint8 [0, 255]."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_pil(img: torch.Tensor) -> Image.Image:
    """One uint8 (C, H, W) tensor to a PIL image (mode L or RGB)."""
    arr = img.permute(1, 2, 0).numpy()  # (H, W, C)
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr, mode="L" if arr.shape[2] == 1 else "RGB")


def make_grid(images: torch.Tensor, rows: int, padding: int = 2) -> Image.Image:
    """Tile uint8 images (N, C, H, W) into a grid with ``rows`` rows (row-major), as a PIL image."""
    n, c, h, w = images.shape
    cols = max(1, math.ceil(n / max(1, rows)))
    canvas = torch.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), 255, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        canvas[:, top : top + h, left : left + w] = images[i]
    return to_pil(canvas)


def save_image_atomic(image: Image.Image, path: str | os.PathLike[str]) -> None:
    """Save a PIL image as PNG atomically."""
    atomic_write(path, lambda f: image.save(f, format="PNG"))


def class_grid(
    generator: nn.Module, per_row: int, seed: int = 0, upscale: int = 1, rows: int | None = None
) -> Image.Image:
    """A grid of samples: one row per class, or ``rows`` rows (default ``per_row // 2``) if unconditional."""
    k = _num_classes(generator)
    if k:
        rows = k
    elif rows is None:
        rows = max(1, per_row // 2)
    labels = torch.arange(rows).repeat_interleave(per_row) if k else None
    images = sample(generator, rows * per_row, labels=labels, seed=seed)
    grid = make_grid(images, rows=rows)
    if upscale > 1:
        grid = grid.resize((grid.width * upscale, grid.height * upscale), Image.Resampling.NEAREST)
    return grid


def write_image_folder(
    generator: nn.Module,
    out_dir: str | os.PathLike[str],
    per_class: int,
    class_names: list[str],
    seed: int = 0,
) -> int:
    """Write ``per_class`` PNGs per class into ``out_dir/<class>/`` (an ImageFolder); returns the count.

    For an unconditional generator, ``per_class`` images go to ``out_dir/unlabeled/``.
    """
    out = Path(out_dir)
    k = _num_classes(generator)
    names = class_names if k else ["unlabeled"]
    total = 0
    for c, name in enumerate(names):
        images = sample(generator, per_class, labels=c if k else None, seed=seed + c)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(images):
            save_image_atomic(to_pil(img), folder / f"synthetic_{i:06d}.png")
        total += len(images)
    return total
