"""Folders → validated file list → images decoded once into a cached uint8 tensor."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, WriteError
from ..io.atomic import atomic_torch_save
from .decode import decode_files, to_channels
from .folders import scan_folders
from .image_data import ImageData

CACHE_FORMAT = 2  # 2: the centre square resized directly (no oversized intermediate)


def _cache_dir() -> Path:
    env = os.environ.get("GAN_AUGMENT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gan_augment"


def _cache_key(files: list[Path], labels: list[int], class_names: list[str], image_size: int, channels: int) -> str:
    """Key of a decode: the files as given and as they resolve, their sizes and times, the class
    names (so the same files under other folder names never bring back the old names)."""
    h = hashlib.sha256(f"v{CACHE_FORMAT}|{image_size}|{channels}|{class_names!r}\n".encode(errors="surrogateescape"))
    for p, label in zip(files, labels):
        try:
            st = p.stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:  # a dangling link: decoding lists it as skipped
            size, mtime = -1, -1
        h.update(f"{label}\t{p}\t{os.path.realpath(p)}\t{size}\t{mtime}\n".encode(errors="surrogateescape"))
    return h.hexdigest()[:32]


def load_image_data(
    labeled: str | os.PathLike[str],
    unlabeled: str | os.PathLike[str] | None = None,
    image_size: int = 32,
    channels: int = 0,
    use_cache: bool = True,
    workers: int | None = None,
    strict: bool = False,
) -> ImageData:
    """Scan, decode (in parallel) and cache the training images.

    The cache (``$GAN_AUGMENT_CACHE`` or ``~/.cache/gan_augment``) is keyed by the file list,
    sizes and modification times, the image size and the channel setting, so a changed, added or
    removed file makes a new entry.

    Args:
        labeled: ImageFolder-style folder (one sub-folder per class).
        unlabeled: Optional folder of unlabeled images (recursive).
        image_size: Output side in pixels.
        channels: 1, 3, or 0 for auto (1 when every image is grayscale).
        use_cache: Read and write the decode cache.
        workers: Decoding threads (default: the number of CPU cores).
        strict: Raise on the first file that cannot be decoded instead of skipping and listing it.

    Returns:
        The decoded images and their labels.

    Raises:
        DataError: On a missing or empty folder, when no image could be decoded, or (``strict``)
            when any could not.
    """
    data = _load_image_data(labeled, unlabeled, image_size, channels, use_cache, workers)
    if strict and data.skipped:
        path, reason = data.skipped[0]
        more = f" (and {len(data.skipped) - 1} more)" if len(data.skipped) > 1 else ""
        raise DataError(
            f"image {path!r} cannot be used: {reason}{more}; fix or remove it, or drop --strict to skip such files"
        )
    return data


def _read_cache(cache_file: Path, key: str, ignored: int) -> ImageData | None:
    """The cached decode for ``key``, or None (a missing or corrupt entry is rebuilt, never trusted)."""
    try:
        blob = torch.load(cache_file, map_location="cpu", weights_only=True)
        if blob.get("format") != CACHE_FORMAT or blob.get("key") != key:
            return None
        return ImageData(
            images=blob["images"],
            labels=blob["labels"],
            class_names=list(blob["class_names"]),
            files=list(blob["files"]),
            skipped=[tuple(s) for s in blob["skipped"]],  # type: ignore[misc]
            ignored=ignored,
            from_cache=True,
        )
    except Exception:
        return None


def _write_cache(cache_file: Path, key: str, data: ImageData) -> None:
    try:
        atomic_torch_save(
            {
                "format": CACHE_FORMAT,
                "key": key,
                "images": data.images,
                "labels": data.labels,
                "class_names": data.class_names,
                "files": data.files,
                "skipped": [list(s) for s in data.skipped],
            },
            cache_file,
        )
    except WriteError as exc:  # a full disk or an unwritable cache only costs speed
        warnings.warn(
            f"could not write the decode cache {str(cache_file)!r} ({exc.reason}): the images are decoded again "
            "next time; free disk space there or set GAN_AUGMENT_CACHE to another folder",
            stacklevel=3,
        )


def _load_image_data(
    labeled: str | os.PathLike[str],
    unlabeled: str | os.PathLike[str] | None,
    image_size: int,
    channels: int,
    use_cache: bool,
    workers: int | None,
) -> ImageData:
    files, labels, class_names, ignored = scan_folders(labeled, unlabeled)
    key = _cache_key(files, labels, class_names, image_size, channels)
    cache_file = _cache_dir() / f"{key}.pt"
    cached = _read_cache(cache_file, key, ignored) if use_cache and cache_file.is_file() else None
    if cached is not None:
        return cached
    results = decode_files(files, image_size, workers)
    arrays, kept_files, kept_labels, grays = [], [], [], []
    skipped: list[tuple[str, str]] = []
    for p, label, r in zip(files, labels, results):
        if isinstance(r, str):
            skipped.append((str(p), r))
            continue
        arrays.append(r[0])
        grays.append(r[1])
        kept_files.append(str(p))
        kept_labels.append(label)
    if not arrays:
        raise DataError(f"no image under {str(labeled)!r} could be decoded: {skipped[0][1]}")
    for idx, name in enumerate(class_names):
        if idx not in kept_labels:
            raise DataError(f"class {name!r} has no image that could be decoded: check its files")
    stacked = to_channels(np.stack(arrays), channels or (1 if all(grays) else 3))
    data = ImageData(
        images=torch.from_numpy(np.ascontiguousarray(stacked)),
        labels=torch.tensor(kept_labels, dtype=torch.int64),
        class_names=class_names,
        files=kept_files,
        skipped=skipped,
        ignored=ignored,
    )
    if use_cache:
        _write_cache(cache_file, key, data)
    return data
