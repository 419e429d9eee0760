"""Decoding images: EXIF rotation, alpha over white, 16-bit scaled, resized and centre-cropped, gray or RGB."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, ImageOps

from ..config import TrainConfig, base_size, default
from ..errors import DataError
from ..io.images import rgb_to_gray
from .folders import check_dir, scan_folders, walk_images

# PIL modes that hold one gray channel (a palette image is gray when its palette is).
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P;L"}


class TooManyPixels(ValueError):
    """An image header claims more pixels than PIL's ``MAX_IMAGE_PIXELS`` (a decompression bomb)."""


# Memory one image may take to decode: its pixels as RGBA and a pointer per row, twice (decoded and
# converted). Every image within PIL's pixel limit and of a usual shape fits; what does not is an
# extreme shape, e.g. a few-KB PNG of 1×80,000,000 pixels (3 GiB, mostly row pointers).
DECODE_BUDGET_BYTES = 2**30


def decode_bytes(width: int, height: int) -> int:
    """Bytes that decoding a ``width``×``height`` image takes (see :data:`DECODE_BUDGET_BYTES`)."""
    return 2 * height * (width * 4 + 16)


class NotAFile(ValueError):
    """A FIFO, socket or device under an image name: never opened (reading a FIFO waits forever)."""


def _check_regular(path: Path) -> None:
    """Raise NotAFile unless ``path`` (through links) is a regular file; OSError if it cannot be reached."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device or folder"
        raise NotAFile(f"not a regular file ({kind})")


def decode_image(path: Path, image_size: int) -> tuple[np.ndarray, bool]:
    """Decode one image: EXIF rotation, RGB, shorter side resized to ``image_size``, centre crop.

    Returns:
        ``(array, is_gray)``: uint8 (image_size, image_size, 3) and whether the file was grayscale.
    """
    _check_regular(path)
    with Image.open(path) as im:
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and im.width * im.height > limit:  # checked before any pixel is decoded
            raise TooManyPixels(f"{im.width}×{im.height} pixels")
        need = decode_bytes(im.width, im.height)
        if need > DECODE_BUDGET_BYTES:
            raise TooManyPixels(f"{im.width}×{im.height} pixels would take {need / 2**30:.1f} GiB to decode")
        im.draft(None, (image_size, image_size))  # JPEG: decode at a reduced scale when that is enough
        im = ImageOps.exif_transpose(im)
        is_gray = im.mode in GRAY_MODES or (im.mode == "P" and _palette_is_gray(im))
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            arr = np.asarray(im, dtype=np.float64)
            peak = arr.max() if arr.max() > 255 else 255.0
            im = Image.fromarray(np.clip(arr / peak * 255.0, 0, 255).astype(np.uint8))
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        im = im.convert("RGB")
        # The centre square, resized straight to the target: never an image larger than the file's
        # (resizing the shorter side first made a 1×80,000,000 PNG of a few KB into 2.5 G pixels).
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) / 2, (h - side) / 2
        im = im.resize((image_size, image_size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
        return np.asarray(im, dtype=np.uint8), is_gray


def _palette_is_gray(im: Image.Image) -> bool:
    palette = im.getpalette() or []
    rgb = np.asarray(palette[: len(palette) // 3 * 3]).reshape(-1, 3)
    return bool((rgb == rgb[:, :1]).all())


def to_channels(rgb: np.ndarray, channels: int) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) → uint8 (N, C, H, W), gray by :func:`~gan_augment.io.images.rgb_to_gray` when
    ``channels == 1``."""
    if channels == 1:
        return rgb_to_gray(torch.from_numpy(rgb).permute(0, 3, 1, 2)).numpy()  # (N, 1, H, W)
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))  # (N, 3, H, W)


def decode_files(files: list[Path], image_size: int, workers: int | None = None) -> list[tuple[np.ndarray, bool] | str]:
    """Decode ``files`` in a thread pool: ``(array, is_gray)`` per file, or the reason it cannot be used."""

    def work(p: Path) -> tuple[np.ndarray, bool] | str:
        try:
            return decode_image(p, image_size)
        except TooManyPixels as exc:
            return f"too many pixels (possible decompression bomb): {exc}"
        except Image.DecompressionBombError:
            return "too many pixels (possible decompression bomb)"
        except NotAFile as exc:
            return str(exc)
        except OSError as exc:
            if exc.errno is not None:  # a dangling link, a file removed meanwhile, no permission, a link loop
                return f"cannot be read ({exc.strerror})"
            return f"cannot decode: {type(exc).__name__}: {exc}".splitlines()[0]
        except Exception as exc:  # PIL raises many types for bad files
            return f"cannot decode: {type(exc).__name__}: {exc}".splitlines()[0]

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(work, files))


# ``fit`` without an image size trains at the labeled images' own side when all are squares of one side
# from 16 to 32 px that the models support (MNIST's 28: no resampling, a quarter fewer pixels than 32).
NATIVE_SIDES = range(16, 33)


def native_image_size(labeled: str | os.PathLike[str]) -> int:
    """The image size ``fit`` trains ``labeled`` at when none is given: the images' own side
    (:func:`labeled_side`) when it is in :data:`NATIVE_SIDES` and supported, else :class:`TrainConfig`'s
    default (32).

    Raises:
        DataError: For a missing or empty folder (:func:`~gan_augment.data.folders.scan_folders`).
    """
    side, fallback = labeled_side(labeled), int(default(TrainConfig, "image_size"))
    try:
        return side if side in NATIVE_SIDES and base_size(side) else fallback
    except ValueError:  # a side the models do not support (``base_size``)
        return fallback


def labeled_side(labeled: str | os.PathLike[str]) -> int | None:
    """The side of the labeled folder's images when every one that opens is a square of one size
    (after its EXIF rotation, which keeps a square square), else None. Reads headers only.

    Raises:
        DataError: As :func:`~gan_augment.data.folders.scan_folders` for a missing or empty folder.
    """
    files, _, _, _ = scan_folders(labeled)
    sides: set[tuple[int, int]] = set()
    for path in files:
        try:
            _check_regular(path)
            with Image.open(path) as im:
                sides.add(im.size)
        except Exception:  # noqa: BLE001 - a file that does not open is left to the decoder to report
            continue
        if len(sides) > 1:
            return None
    if len(sides) != 1:
        return None
    ((w, h),) = sides
    return w if w == h else None


# Images decoded at a time when a folder is streamed: memory stays bounded whatever the folder holds.
STREAM_CHUNK = 1024


def iter_decoded(
    folder: str | os.PathLike[str], image_size: int, channels: int, chunk: int | None = None
) -> Iterator[tuple[list[str], torch.Tensor, list[tuple[str, str]]]]:
    """Decode every image under ``folder`` (recursive), ``chunk`` files at a time: yields the files,
    uint8 images (n, C, H, W) and the unreadable ``(path, reason)`` of each chunk, in bounded memory.

    Raises:
        DataError: If the folder is missing or holds no readable image.
    """
    root = check_dir(folder, "images")
    files, _ = walk_images(root)
    yield from iter_decoded_files(files, image_size, channels, chunk, f"under {str(root)!r}")


def iter_decoded_files(
    files: list[Path], image_size: int, channels: int, chunk: int | None = None, where: str = ""
) -> Iterator[tuple[list[str], torch.Tensor, list[tuple[str, str]]]]:
    """:func:`iter_decoded` over a list of files (``where`` names them in the error)."""
    any_read, chunk = False, chunk or STREAM_CHUNK
    for start in range(0, len(files), chunk):
        part = files[start : start + chunk]
        arrays, kept, skipped = [], [], []
        for p, result in zip(part, decode_files(part, image_size)):
            if isinstance(result, str):  # unreadable images are listed, not fatal
                skipped.append((str(p), result))
                continue
            arrays.append(result[0])
            kept.append(str(p))
        any_read = any_read or bool(arrays)
        images = (
            torch.from_numpy(to_channels(np.stack(arrays), channels))
            if arrays
            else torch.empty(0, channels or 3, image_size, image_size, dtype=torch.uint8)
        )
        yield kept, images, skipped
    if not any_read:
        raise DataError(f"no readable image {where}".rstrip())


def decode_folder(
    folder: str | os.PathLike[str], image_size: int, channels: int
) -> tuple[list[str], torch.Tensor, list[tuple[str, str]]]:
    """Decode every image under ``folder`` (recursive) to uint8 (N, C, H, W); returns files, images, skipped.

    Raises:
        DataError: If the folder is missing or holds no readable image.
    """
    files: list[str] = []
    images: list[torch.Tensor] = []
    skipped: list[tuple[str, str]] = []
    for kept, chunk, bad in iter_decoded(folder, image_size, channels):
        files += kept
        images += [chunk] if len(chunk) else []
        skipped += bad
    return files, torch.cat(images), skipped
