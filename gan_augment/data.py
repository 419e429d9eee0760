"""Folders → validated file list → images decoded once into a cached uint8 tensor."""

from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .checkpoint import atomic_torch_save
from .errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
CACHE_FORMAT = 1
MAX_CLASSES = 1000  # more class folders than this is almost always the wrong folder
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P;L"}


class TooManyPixels(ValueError):
    """An image header claims more pixels than PIL's ``MAX_IMAGE_PIXELS`` (a decompression bomb)."""


@dataclass
class ImageData:
    """Decoded training images and what they came from.

    Attributes:
        images: uint8 tensor (N, C, H, W).
        labels: int64 tensor (N,); -1 marks an unlabeled image.
        class_names: Class folder names, in label order.
        files: Source paths, in row order.
        skipped: ``(path, reason)`` of every file that could not be used.
        ignored: Number of non-image or hidden files passed over.
        from_cache: Whether the images were read from the decode cache.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    files: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0
    from_cache: bool = False

    @property
    def num_labeled(self) -> int:
        return int((self.labels >= 0).sum())

    @property
    def num_unlabeled(self) -> int:
        return int((self.labels < 0).sum())

    def fingerprint(self) -> dict[str, object]:
        """Count and hash of the file list, stored in checkpoints to tie a run to its data."""
        h = hashlib.sha256()
        for path, label in zip(self.files, self.labels.tolist()):
            h.update(f"{label}\t{path}\n".encode())
        return {
            "num_images": len(self.files),
            "num_labeled": self.num_labeled,
            "num_unlabeled": self.num_unlabeled,
            "files_sha256": h.hexdigest(),
        }


def _is_visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _walk_images(root: Path) -> tuple[list[Path], int]:
    """Return the image files under ``root`` (recursive, sorted, hidden skipped) and the number ignored."""
    found: list[Path] = []
    ignored = 0

    def unreadable(exc: OSError) -> None:
        raise DataError(f"folder {str(exc.filename)!r} cannot be listed ({exc.strerror}): check its permissions")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if _is_visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS:
                found.append(p)
            else:
                ignored += 1
    return found, ignored


def _check_dir(path: Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{what} folder {str(path)!r} does not exist: check the path")
    if not path.is_dir():
        raise DataError(f"{what} path {str(path)!r} is not a folder: pass a folder of images")
    if not os.access(path, os.R_OK | os.X_OK):
        raise DataError(f"{what} folder {str(path)!r} is not readable: check its permissions")
    return path


def scan_folders(
    labeled: str | os.PathLike[str], unlabeled: str | os.PathLike[str] | None = None
) -> tuple[list[Path], list[int], list[str], int]:
    """List the images of an ImageFolder and, optionally, of a folder of unlabeled images.

    Args:
        labeled: A folder with one sub-folder of images per class.
        unlabeled: Any folder of images (searched recursively), or None.

    Returns:
        ``(files, labels, class_names, ignored)``; unlabeled files get label -1.

    Raises:
        DataError: If a folder is missing, unreadable, has no classes or a class has no images.
    """
    root = _check_dir(Path(labeled), "labeled")
    try:
        class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and _is_visible(d))
    except OSError as exc:
        raise DataError(f"labeled folder {str(root)!r} cannot be listed ({exc.strerror}): check its permissions") from None
    if not class_dirs:
        raise DataError(
            f"labeled folder {str(root)!r} has no class folders: put each class's images in a "
            "sub-folder named after the class"
        )
    if len(class_dirs) > MAX_CLASSES:
        raise DataError(
            f"labeled folder {str(root)!r} has {len(class_dirs)} class folders, more than {MAX_CLASSES}: "
            "is it the folder that holds the class folders?"
        )
    by_case: dict[str, str] = {}
    for d in class_dirs:
        other = by_case.setdefault(d.name.casefold(), d.name)
        if other != d.name:
            raise DataError(
                f"class folders {other!r} and {d.name!r} in {str(root)!r} differ only in case (one class on "
                "Windows and macOS, two here): merge or rename them"
            )
    files: list[Path] = []
    labels: list[int] = []
    ignored = 0
    for idx, d in enumerate(class_dirs):
        found, n_ignored = _walk_images(d)
        ignored += n_ignored
        if not found:
            raise DataError(f"class folder {str(d)!r} has no images: add images or remove the folder")
        files += found
        labels += [idx] * len(found)
    if unlabeled is not None:
        uroot = _check_dir(Path(unlabeled), "unlabeled")
        found, n_ignored = _walk_images(uroot)
        ignored += n_ignored
        if not found:
            raise DataError(f"unlabeled folder {str(uroot)!r} has no images: add images or leave it out")
        files += found
        labels += [-1] * len(found)
    return files, labels, [d.name for d in class_dirs], ignored


def decode_image(path: Path, image_size: int) -> tuple[np.ndarray, bool]:
    """Decode one image: EXIF rotation, RGB, shorter side resized to ``image_size``, centre crop.

    Returns:
        ``(array, is_gray)``: uint8 (image_size, image_size, 3) and whether the file was grayscale.
    """
    with Image.open(path) as im:
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and im.width * im.height > limit:  # checked before any pixel is decoded
            raise TooManyPixels(f"{im.width}×{im.height} pixels")
        im = ImageOps.exif_transpose(im)
        is_gray = im.mode in _GRAY_MODES or (im.mode == "P" and _palette_is_gray(im))
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            arr = np.asarray(im, dtype=np.float64)
            peak = arr.max() if arr.max() > 255 else 255.0
            im = Image.fromarray(np.clip(arr / peak * 255.0, 0, 255).astype(np.uint8))
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        im = im.convert("RGB")
        w, h = im.size
        scale = image_size / min(w, h)
        nw, nh = max(image_size, round(w * scale)), max(image_size, round(h * scale))
        im = im.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = (nw - image_size) // 2, (nh - image_size) // 2
        im = im.crop((left, top, left + image_size, top + image_size))
        return np.asarray(im, dtype=np.uint8), is_gray


def _palette_is_gray(im: Image.Image) -> bool:
    palette = im.getpalette() or []
    rgb = np.asarray(palette[: len(palette) // 3 * 3]).reshape(-1, 3)
    return bool((rgb == rgb[:, :1]).all())


def to_channels(rgb: np.ndarray, channels: int) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) → uint8 (N, C, H, W), grayscale by ITU-R 601 luma when ``channels == 1``."""
    if channels == 1:
        gray = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)[:, None]  # (N, 1, H, W)
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))  # (N, 3, H, W)


def _cache_dir() -> Path:
    env = os.environ.get("GAN_AUGMENT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gan_augment"


def _cache_key(files: list[Path], labels: list[int], image_size: int, channels: int) -> str:
    h = hashlib.sha256(f"v{CACHE_FORMAT}|{image_size}|{channels}\n".encode())
    for p, label in zip(files, labels):
        st = p.stat()
        h.update(f"{label}\t{p.resolve()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
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
        raise DataError(f"image {path!r} cannot be used: {reason}{more}; fix or remove it, or drop --strict to skip such files")
    return data


def _load_image_data(
    labeled: str | os.PathLike[str],
    unlabeled: str | os.PathLike[str] | None,
    image_size: int,
    channels: int,
    use_cache: bool,
    workers: int | None,
) -> ImageData:
    files, labels, class_names, ignored = scan_folders(labeled, unlabeled)
    key = _cache_key(files, labels, image_size, channels)
    cache_file = _cache_dir() / f"{key}.pt"
    if use_cache and cache_file.is_file():
        try:
            blob = torch.load(cache_file, map_location="cpu", weights_only=True)
            if blob.get("format") == CACHE_FORMAT and blob.get("key") == key:
                return ImageData(
                    images=blob["images"],
                    labels=blob["labels"],
                    class_names=list(blob["class_names"]),
                    files=list(blob["files"]),
                    skipped=[tuple(s) for s in blob["skipped"]],  # type: ignore[misc]
                    ignored=ignored,
                    from_cache=True,
                )
        except Exception:  # a corrupt cache entry is rebuilt, never trusted
            pass

    def work(p: Path) -> tuple[np.ndarray, bool] | str:
        try:
            return decode_image(p, image_size)
        except (TooManyPixels, Image.DecompressionBombError):
            return "too many pixels (possible decompression bomb)"
        except Exception as exc:  # PIL raises many types for bad files
            return f"cannot decode: {type(exc).__name__}: {exc}".splitlines()[0]

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        results = list(pool.map(work, files))

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

    n_channels = channels or (1 if all(grays) else 3)
    stacked = to_channels(np.stack(arrays), n_channels)
    data = ImageData(
        images=torch.from_numpy(np.ascontiguousarray(stacked)),
        labels=torch.tensor(kept_labels, dtype=torch.int64),
        class_names=class_names,
        files=kept_files,
        skipped=skipped,
        ignored=ignored,
    )
    if use_cache:
        try:
            atomic_torch_save(
                {
                    "format": CACHE_FORMAT,
                    "key": key,
                    "images": data.images,
                    "labels": data.labels,
                    "class_names": class_names,
                    "files": kept_files,
                    "skipped": [list(s) for s in skipped],
                },
                cache_file,
            )
        except OSError as exc:  # an unwritable cache only costs speed
            warnings.warn(f"could not write the decode cache {str(cache_file)!r}: {exc}", stacklevel=2)
    return data


def summary(data: ImageData) -> str:
    """One line describing what was loaded, for the CLI."""
    counts = torch.bincount(data.labels[data.labels >= 0], minlength=len(data.class_names)).tolist()
    per_class = ", ".join(f"{n}: {c}" for n, c in zip(data.class_names, counts))
    parts = [f"{data.num_labeled} labeled images in {len(data.class_names)} classes ({per_class})"]
    if data.num_unlabeled:
        parts.append(f"{data.num_unlabeled} unlabeled")
    if data.skipped:
        parts.append(f"{len(data.skipped)} unreadable skipped")
    if data.ignored:
        parts.append(f"{data.ignored} non-image files ignored")
    single = [n for n, c in zip(data.class_names, counts) if c == 1]
    if single:
        parts.append(f"a single image in class(es) {', '.join(map(repr, single))}: their models can only copy it")
    parts.append(f"{tuple(data.images.shape[1:])} uint8" + (" (from cache)" if data.from_cache else ""))
    return "; ".join(parts)

