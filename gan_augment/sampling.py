"""Sampling: draw images of chosen classes from a generator; grids with one row per class; ImageFolders of PNGs."""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path
from typing import Iterator, Literal, overload

import torch
from PIL import Image
from torch import nn

from .data.folders import safe_folder_names
from .errors import GanAugmentError, UsageError
from .io.atomic import UMASK, atomic_write_json
from .io.images import label_grid, make_grid, save_image_atomic, to_pil, to_uint8
from .io.outdir import CLASS_NAMES_FILE, MARKER_NAME, SAMPLES, is_marked, mark, remove_own, remove_stale_temporaries


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
    chunks = list(iter_samples(generator, n, labels, seed, batch_size))
    cfg = generator.config
    images = (
        torch.cat(chunks) if chunks else torch.empty(0, cfg.channels, cfg.image_size, cfg.image_size, dtype=torch.uint8)
    )
    if output == "pil":
        return [to_pil(img) for img in images]
    return images


@torch.no_grad()
def iter_samples(
    generator: nn.Module,
    n: int,
    labels: int | list[int] | torch.Tensor | None = None,
    seed: int | None = None,
    batch_size: int = 1024,
) -> Iterator[torch.Tensor]:
    """:func:`sample`'s images, ``batch_size`` at a time as uint8 (b, C, H, W) CPU tensors: the same
    images as ``sample`` with the same seed, in bounded memory however large ``n`` is."""
    if n < 0:
        raise UsageError(f"n={n} must be >= 0")
    k = _num_classes(generator)
    y = _labels(labels, n, k)
    dev = next(generator.parameters()).device
    z_dim = generator.config.z_dim
    g = torch.Generator(device=dev)
    g.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,))))
    was_training = generator.training
    generator.eval()
    try:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            z = torch.randn(stop - start, z_dim, device=dev, generator=g)  # (b, z_dim)
            yb = y[start:stop].to(dev) if y is not None else None
            yield to_uint8(generator(z, yb)).cpu()
    finally:
        generator.train(was_training)


def _labels(labels: int | list[int] | torch.Tensor | None, n: int, k: int) -> torch.Tensor | None:
    if k == 0:
        if labels is not None and not (isinstance(labels, int) and labels == 0):
            raise UsageError("this generator is unconditional: leave labels out")
        return None
    if labels is None:
        y = torch.arange(n) % k
    elif isinstance(labels, int):
        y = torch.full((n,), labels, dtype=torch.int64)
    else:
        y = torch.as_tensor(labels, dtype=torch.int64).flatten()
        if y.numel() != n:
            raise UsageError(f"got {y.numel()} labels for n={n} images: pass one label per image")
    if y.numel() and (y.min() < 0 or y.max() >= k):
        raise UsageError(f"labels must be in [0, {k - 1}] for this generator; got {y.unique().tolist()}")
    return y


def class_grid(
    generator: nn.Module,
    per_row: int,
    seed: int = 0,
    upscale: int = 1,
    rows: int | None = None,
    class_names: list[str] | None = None,
    title: str | None = None,
) -> Image.Image:
    """A grid of samples: one row per class, or ``rows`` rows (default ``per_row // 2``) if unconditional.
    With ``class_names`` (class-aware generators), each row is labelled; ``title`` goes above."""
    k = _num_classes(generator)
    if k:
        rows = k
    elif rows is None:
        rows = max(1, per_row // 2)
    check_grid_size(rows, per_row, generator.config.image_size, upscale)
    labels = torch.arange(rows).repeat_interleave(per_row) if k else None
    images = sample(generator, rows * per_row, labels=labels, seed=seed)
    grid = make_grid(images, rows=rows)
    if upscale > 1:
        grid = grid.resize((grid.width * upscale, grid.height * upscale), Image.Resampling.NEAREST)
    if (class_names and k) or title:
        grid = label_grid(grid, rows, class_names if k else None, title)
    return grid


# The largest grid written: PIL's own limit for opening an image (a bigger PNG is one nobody can view).
MAX_GRID_PIXELS = 89_478_485


def check_grid_size(rows: int, per_row: int, image_size: int, upscale: int = 1) -> None:
    """Refuse, before drawing anything, a grid larger than :data:`MAX_GRID_PIXELS`.

    Raises:
        GanAugmentError: Naming the grid's size and the largest count that fits.
    """
    cell = (image_size + 2) * upscale  # make_grid's 2-pixel padding
    pixels = rows * per_row * cell * cell
    if pixels > MAX_GRID_PIXELS:
        fits = MAX_GRID_PIXELS // (cell * cell) // rows * rows  # whole rows only
        smaller = (
            f"pass --n {fits} or less, or " if fits else f"even one image in each of its {rows} rows is too many: "
        )
        raise GanAugmentError(
            f"a grid of {rows * per_row} images of {image_size} px is {pixels:,} pixels, more than an image "
            f"viewer opens ({MAX_GRID_PIXELS:,}): {smaller}write the images as files with --per-class N --out-dir DIR"
        )


def check_empty_folder(out_dir: str | os.PathLike[str]) -> None:
    """Refuse a folder that already holds anything: synthetic images are never mixed into an existing set.

    Raises:
        GanAugmentError: If ``out_dir`` is a file, or a folder with entries.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GanAugmentError(
            f"{str(out)!r} already exists and is not an empty folder: pass a new or empty --out-dir "
            "(synthetic images are never mixed into a set already there)"
        )


def write_image_folder(
    generator: nn.Module,
    out_dir: str | os.PathLike[str],
    per_class: int,
    class_names: list[str],
    seed: int = 0,
) -> int:
    """Write ``per_class`` PNGs per class into ``out_dir/<class>/`` (an ImageFolder); returns the count.

    For an unconditional generator, ``per_class`` images go to ``out_dir/unlabeled/``. Class names
    become folder names through :func:`~gan_augment.data.safe_folder_names`, so no name read from a
    checkpoint can lead outside ``out_dir`` or onto the mapping file; when that changes a name,
    ``class_names.json`` maps each folder to the name in the run. ``out_dir`` must be new or empty
    (:func:`check_empty_folder`). The images are written into a hidden folder beside ``out_dir``
    (``.NAME.incomplete-XXXX``), which becomes ``out_dir`` only when every class is complete: an
    interrupted run never leaves a folder that loads as an ImageFolder with classes missing.
    """
    out = Path(out_dir)
    check_empty_folder(out)
    k = _num_classes(generator)
    reserved = (CLASS_NAMES_FILE, MARKER_NAME)
    names = safe_folder_names(class_names, reserved) if k else ["unlabeled"]  # names from a checkpoint: untrusted
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{incomplete_prefix(out)}", dir=out.parent))
    os.chmod(staging, 0o777 & ~UMASK)  # mkdtemp makes 0700; the set gets a folder's usual permissions
    mark(staging, SAMPLES)  # the hidden folder is the package's: a rerun removes it
    if k and names != list(class_names):  # the names as the run has them, beside the folders
        atomic_write_json(staging / CLASS_NAMES_FILE, dict(zip(names, map(str, class_names))))
    total = 0
    for c, name in enumerate(names):
        folder = staging / name
        folder.mkdir()
        i = 0
        for chunk in iter_samples(generator, per_class, labels=c if k else None, seed=seed + c):  # bounded memory
            for img in chunk:
                save_image_atomic(to_pil(img), folder / f"synthetic_{i:06d}.png")
                i += 1
        total += i
    os.rename(staging, out)  # atomic; onto a missing or empty folder
    return total


def incomplete_prefix(out: Path) -> str:
    """The name start of the hidden folder an ImageFolder of ``out`` is written into."""
    return f".{out.name}.incomplete-"


def remove_interrupted(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove the hidden, incomplete sets that interrupted runs into ``out_dir`` left beside it (only
    folders the package marked, and only its files in them); returns those removed."""
    out = Path(out_dir)
    if not out.parent.is_dir():
        return []
    removed = []
    for left in sorted(out.parent.glob(f"{glob.escape(incomplete_prefix(out))}*")):
        if left.is_dir() and not left.is_symlink() and is_marked(left, SAMPLES):
            remove_stale_temporaries(left, SAMPLES)
            remove_own(left, SAMPLES)
            (left / MARKER_NAME).unlink(missing_ok=True)
            try:
                left.rmdir()
            except OSError:  # something of the user's was put there: it stays
                continue
            removed.append(left)
    return removed
