"""Folders → validated file list → images decoded once into a cached uint8 tensor."""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, WriteError
from ..io.atomic import atomic_torch_save
from .decode import decode_files, to_channels
from .folders import scan_folders
from .image_data import ImageData

# 2: the centre square resized directly (no oversized intermediate); 3: ctime and inode in the key;
# 4: RGB → gray by torchvision's weights (io.images.rgb_to_gray)
CACHE_FORMAT = 4
# The decode cache's size bound ($GAN_AUGMENT_CACHE_MAX_GB): past it, the least recently used entries go.
DEFAULT_CACHE_MAX_GB = 10.0
_ENTRY = re.compile(r"[0-9a-f]{32}\.pt", flags=re.ASCII)


# The entries live in a folder of their own inside the cache folder (which may be shared with other
# programs' files): nothing outside it is ever listed, counted or removed.
ENTRIES_FOLDER = "gan-augment-decode"


def _cache_dir() -> Path:
    """The folder of the decode cache's entries: ``ENTRIES_FOLDER`` inside ``$GAN_AUGMENT_CACHE``
    (or ``$XDG_CACHE_HOME/gan_augment``, ``~/.cache/gan_augment``)."""
    env = os.environ.get("GAN_AUGMENT_CACHE")
    if env:
        return Path(env) / ENTRIES_FOLDER
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gan_augment" / ENTRIES_FOLDER


# A file changed less than this long before it was listed may change again within the same tick of
# the file system's clock, leaving size, mtime and ctime as they were: its content goes into the key.
RACY_SECONDS = 3.0


def _cache_key(
    files: list[Path], labels: list[int], class_names: list[str], image_size: int, channels: int
) -> tuple[str, dict[str, str]]:
    """Key of a decode: the files as given and as they resolve, their sizes, inodes, modification and
    change times (``ctime`` moves on every write and cannot be set back, unlike ``mtime``), the
    class names (so the same files under other folder names never bring back the old names).

    Also returns a hash of the content of each file changed within :data:`RACY_SECONDS` ("racily
    clean", as git calls it): a rewrite within the same clock tick leaves every time as it was, so
    the cache entry keeps these hashes and is used only while they still hold."""
    h = hashlib.sha256(f"v{CACHE_FORMAT}|{image_size}|{channels}|{class_names!r}\n".encode(errors="surrogateescape"))
    now, racy = time.time_ns(), {}
    for p, label in zip(files, labels):
        try:
            st = p.stat()
            stamp = f"{st.st_size}\t{st.st_mtime_ns}\t{st.st_ctime_ns}\t{st.st_ino}"
            if now - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_SECONDS * 1e9 and stat.S_ISREG(st.st_mode):
                racy[str(p)] = file_digest(p)
        except OSError:  # a dangling link: decoding lists it as skipped
            stamp = "-1"
        h.update(f"{label}\t{p}\t{os.path.realpath(p)}\t{stamp}\n".encode(errors="surrogateescape"))
    return h.hexdigest()[:32], racy


def file_digest(path: Path) -> str:
    """A hash of a file's bytes, read a MiB at a time (``"unreadable"`` if it cannot be read)."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "unreadable"
    return digest.hexdigest()


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


def _read_cache(cache_file: Path, key: str, ignored: int, racy: dict[str, str]) -> ImageData | None:
    """The cached decode for ``key``, or None (a missing or corrupt entry is rebuilt, never trusted;
    so is one whose racily clean files no longer hash as they did when it was written)."""
    try:
        blob = torch.load(cache_file, map_location="cpu", weights_only=True)
        if blob.get("format") != CACHE_FORMAT or blob.get("key") != key:
            return None
        stored = dict(blob.get("racy", {}))  # hashes taken now where the scan took them, else read anew
        if any((racy.get(p) or file_digest(Path(p))) != h for p, h in stored.items()):
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


def _write_cache(cache_file: Path, key: str, data: ImageData, racy: dict[str, str]) -> None:
    try:
        atomic_torch_save(
            {
                "format": CACHE_FORMAT,
                "key": key,
                "racy": racy,
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
    notes: list[str] = []
    files, labels, class_names, ignored = scan_folders(labeled, unlabeled, notes)
    key, racy = _cache_key(files, labels, class_names, image_size, channels)
    cache_file = _cache_dir() / f"{key}.pt"
    cached = _read_cache(cache_file, key, ignored, racy) if use_cache and cache_file.is_file() else None
    if cached is not None:
        cached.notes = notes
        _touch(cache_file)  # recently used: the last to be evicted
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
        notes=notes,
    )
    if use_cache:
        _write_cache(cache_file, key, data, racy)
        evict(cache_file.parent, keep=cache_file)
    return data


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def cache_max_bytes() -> int:
    """The decode cache's bound in bytes: ``$GAN_AUGMENT_CACHE_MAX_GB`` (default 10)."""
    try:
        gb = float(os.environ.get("GAN_AUGMENT_CACHE_MAX_GB", DEFAULT_CACHE_MAX_GB))
    except ValueError:
        gb = DEFAULT_CACHE_MAX_GB
    return int(max(gb if math.isfinite(gb) else DEFAULT_CACHE_MAX_GB, 0.0) * 2**30)


def is_cache_entry(path: Path) -> bool:
    """Whether ``path`` is an entry the decode cache wrote: a torch archive whose ``key`` is its own
    file name and which holds a ``format``. Read with ``mmap`` (the images stay on disk); a file that
    only looks like an entry by its name is never taken for one."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a torch archive, unreadable, or not loadable safely: not ours
        return False
    return isinstance(blob, dict) and blob.get("key") == path.stem and isinstance(blob.get("format"), int)


def evict(folder: Path, keep: Path | None = None) -> list[Path]:
    """Remove the least recently used entries of the decode cache in ``folder`` until it fits
    :func:`cache_max_bytes` (``keep``, the entry just written, stays). Only plain files named by a
    32-hex-digit key are counted, and one is removed only once :func:`is_cache_entry` proves the
    cache wrote it; returns those removed."""
    entries = []
    for e in os.scandir(folder) if folder.is_dir() else []:
        if _ENTRY.fullmatch(e.name) and e.is_file(follow_symlinks=False):
            st = e.stat(follow_symlinks=False)
            entries.append((st.st_mtime_ns, st.st_size, Path(e.path)))
    total, bound, removed = sum(size for _, size, _ in entries), cache_max_bytes(), []
    for _, size, path in sorted(entries):  # oldest use first
        if total <= bound:
            break
        if (keep is not None and path == keep) or not is_cache_entry(path):
            continue
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        removed.append(path)
    return removed
