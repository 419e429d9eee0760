"""Folder scanning: an ImageFolder of classes (with torchvision's class list and extensions) and a pool of images."""

from __future__ import annotations

import os
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS

from ..config import MAX_CLASSES
from ..errors import DataError

# Class folders hold what torchvision's ImageFolder reads, so labels agree with ImageFolder.targets.
LABELED_EXTENSIONS: tuple[str, ...] = tuple(IMG_EXTENSIONS)
# An unlabeled pool has no ImageFolder counterpart: GIFs are read there too.
UNLABELED_EXTENSIONS: tuple[str, ...] = (*LABELED_EXTENSIONS, ".gif")


def _is_visible(name: str) -> bool:
    return not name.startswith(".")


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The folder's (device, inode) through links, or None if it cannot be reached."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def walk_images(
    root: Path, extensions: tuple[str, ...] = UNLABELED_EXTENSIONS, seen: set[tuple[int, int]] | None = None
) -> tuple[list[Path], int]:
    """Return the image files under ``root`` (recursive, sorted, hidden skipped) and the number ignored.

    Linked folders are followed (as torchvision's ImageFolder does) but each real folder is walked
    once: a link loop, or a second path to a folder in ``seen`` (the walk adds to it), is ignored,
    so no image is listed twice or under another class. Special files (FIFOs, sockets, devices)
    and dangling links with image names are listed: decoding skips them with their reason.
    """
    found: list[Path] = []
    ignored = 0
    seen = set() if seen is None else seen
    seen.add(_identity(root) or (-1, -1))

    def unreadable(exc: OSError) -> None:
        raise DataError(f"folder {str(exc.filename)!r} cannot be listed ({exc.strerror}): check its permissions")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        keep = []
        for d in sorted(d for d in dirnames if _is_visible(d)):
            identity = _identity(os.path.join(dirpath, d))
            if identity is None or identity in seen:  # a dangling link, a loop, or a folder listed already
                ignored += 1
                continue
            seen.add(identity)
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if _is_visible(name) and p.suffix.lower() in extensions:
                found.append(p)
            else:
                ignored += 1
    return found, ignored


def check_dir(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path, or a DataError naming it if it is missing, not a folder or unreadable."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{what} folder {str(path)!r} does not exist: check the path")
    if not path.is_dir():
        raise DataError(f"{what} path {str(path)!r} is not a folder: pass a folder of images")
    if not os.access(path, os.R_OK | os.X_OK):
        raise DataError(f"{what} folder {str(path)!r} is not readable: check its permissions")
    return path


def find_classes(root: Path) -> list[Path]:
    """The class folders of an ImageFolder, sorted, exactly as torchvision's ``find_classes`` lists them.

    Raises:
        DataError: If there are none or too many, if one is hidden (ImageFolder would make it a
            class), or if two differ only in case.
    """
    try:
        class_dirs = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.name)
    except OSError as exc:
        raise DataError(
            f"labeled folder {str(root)!r} cannot be listed ({exc.strerror}): check its permissions"
        ) from None
    hidden = [d.name for d in class_dirs if not _is_visible(d.name)]
    if hidden:
        raise DataError(
            f"labeled folder {str(root)!r} holds the hidden folder {hidden[0]!r}, which torchvision's ImageFolder "
            "would count as a class: move it out of the labeled folder"
        )
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
    return class_dirs


def is_image_folder(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` looks like an ImageFolder: visible sub-folders and no image directly inside."""
    entries = list(check_dir(root, "images").iterdir())
    loose = any(e.is_file() and e.suffix.lower() in UNLABELED_EXTENSIONS for e in entries)
    return not loose and any(e.is_dir() and _is_visible(e.name) for e in entries)


def scan_folders(
    labeled: str | os.PathLike[str], unlabeled: str | os.PathLike[str] | None = None
) -> tuple[list[Path], list[int], list[str], int]:
    """List the images of an ImageFolder and, optionally, of a folder of unlabeled images.

    The class list and each class's files are those torchvision's ``ImageFolder`` finds, so labels
    agree with ``ImageFolder(labeled).targets``.

    Args:
        labeled: A folder with one sub-folder of images per class.
        unlabeled: Any folder of images (searched recursively), or None.

    Returns:
        ``(files, labels, class_names, ignored)``; unlabeled files get label -1.

    Raises:
        DataError: If a folder is missing, unreadable, has no classes or a class has no images.
    """
    root = check_dir(labeled, "labeled")
    class_dirs = find_classes(root)
    files: list[Path] = []
    labels: list[int] = []
    ignored = 0
    # One set for every class: a link to the labeled folder, to another class or to a folder that an
    # earlier class listed is not followed, so no image is listed twice or under two labels.
    identities = {d: _identity(d) for d in class_dirs}
    seen = {i for i in (_identity(root), *identities.values()) if i is not None}
    same: dict[tuple[int, int] | None, Path] = {}
    for d in class_dirs:
        other = same.setdefault(identities[d], d)
        if other != d:
            raise DataError(
                f"class folders {other.name!r} and {d.name!r} in {str(root)!r} are the same folder (one links "
                "to the other): its images would be listed under two classes; remove the link"
            )
    for idx, d in enumerate(class_dirs):
        found, n_ignored = walk_images(d, LABELED_EXTENSIONS, seen=seen)
        ignored += n_ignored
        if not found:
            raise DataError(
                f"class folder {str(d)!r} has no images ({', '.join(LABELED_EXTENSIONS)}): "
                "add images or remove the folder"
            )
        files += found
        labels += [idx] * len(found)
    if unlabeled is not None:
        uroot = check_dir(unlabeled, "unlabeled")
        found, n_ignored = walk_images(uroot)
        ignored += n_ignored
        if not found:
            raise DataError(f"unlabeled folder {str(uroot)!r} has no images: add images or leave it out")
        files += found
        labels += [-1] * len(found)
    return files, labels, [d.name for d in class_dirs], ignored


def safe_folder_names(names: list[str]) -> list[str]:
    """Folder names for class names read from a file (untrusted): one path component each, never
    ``.``, ``..``, empty or hidden, no separators or control characters, and distinct (a clash after
    cleaning gets the class index appended). Names that are already safe are kept as they are."""
    out: list[str] = []
    for i, name in enumerate(names):
        clean = "".join("_" if ch in "/\\" or ord(ch) < 32 or ch == "\x7f" else ch for ch in str(name)).strip()
        clean = clean.lstrip(".") if clean.strip(".") else ""
        clean = clean[:100] or f"class_{i}"
        while clean in out:
            clean = f"{clean}_{i}"
        out.append(clean)
    return out
