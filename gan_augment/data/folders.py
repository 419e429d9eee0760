"""Folder scanning: an ImageFolder of classes (with torchvision's class list and extensions) and a pool of images."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS

from ..config import MAX_CLASSES
from ..errors import DataError
from ..io.outdir import is_output_folder

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
    root: Path,
    extensions: tuple[str, ...] = UNLABELED_EXTENSIONS,
    seen: set[tuple[int, int]] | None = None,
    outputs: list[Path] | None = None,
) -> tuple[list[Path], int]:
    """Return the image files under ``root`` (recursive, sorted, hidden skipped) and the number ignored.

    Linked folders are followed (as torchvision's ImageFolder does) but each real folder is walked
    once: a link loop, or a second path to a folder in ``seen`` (the walk adds to it), is ignored,
    so no image is listed twice or under another class. Special files (FIFOs, sockets, devices)
    and dangling links with image names are listed: decoding skips them with their reason. Folders
    the package wrote (a run, a set of samples: they hold its marker) are never read as images; they
    are added to ``outputs`` when it is given.
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
            if is_output_folder(Path(dirpath) / d):  # the package's own outputs are never training data
                if outputs is not None:
                    outputs.append(Path(dirpath) / d)
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
    outputs = [d for d in class_dirs if is_output_folder(d)]
    if outputs:
        raise DataError(
            f"class folder {str(outputs[0])!r} holds gan-augment's output (a run or a set of samples), not a class: "
            "move it out of the labeled folder"
        )
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
        other = by_case.setdefault(unicodedata.normalize("NFC", d.name).casefold(), d.name)
        if other != d.name:
            raise DataError(
                f"class folders {ascii(other)} and {ascii(d.name)} in {str(root)!r} differ only in case or in Unicode "
                "normalisation (one class on Windows and macOS, two here): merge or rename them"
            )
    return class_dirs


def normalisation_note(names: list[str], others: list[str]) -> str:
    """``''``, or a note that ``names`` and ``others`` differ only in Unicode normalisation (NFC vs NFD, as
    file names copied from macOS come), with their code points: printed, the two lists look alike."""
    nfc = sorted(unicodedata.normalize("NFC", n) for n in names)
    if not names or nfc != sorted(unicodedata.normalize("NFC", n) for n in others):
        return ""
    return (
        f" (they differ only in Unicode normalisation, NFC vs NFD, as names copied from macOS do: {ascii(names)} "
        f"vs {ascii(others)}; rename the folders with one normalisation)"
    )


def is_image_folder(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` looks like an ImageFolder: visible sub-folders and no image directly inside."""
    entries = list(check_dir(root, "images").iterdir())
    loose = any(e.is_file() and e.suffix.lower() in UNLABELED_EXTENSIONS for e in entries)
    return not loose and any(e.is_dir() and _is_visible(e.name) for e in entries)


def scan_folders(
    labeled: str | os.PathLike[str],
    unlabeled: str | os.PathLike[str] | None = None,
    notes: list[str] | None = None,
) -> tuple[list[Path], list[int], list[str], int]:
    """List the images of an ImageFolder and, optionally, of a folder of unlabeled images.

    The class list and each class's files are those torchvision's ``ImageFolder`` finds, so labels
    agree with ``ImageFolder(labeled).targets``.

    Args:
        labeled: A folder with one sub-folder of images per class.
        unlabeled: Any folder of images (searched recursively), or None.
        notes: Where to add what the user should hear of: output folders of the package's passed over,
            and labeled images that are also in the pool (the same files, or the labeled folder
            inside it), which are left out of the pool.

    Returns:
        ``(files, labels, class_names, ignored)``; unlabeled files get label -1.

    Raises:
        DataError: If a folder is missing, unreadable, has no classes or a class has no images.
    """
    root = check_dir(labeled, "labeled")
    class_dirs = find_classes(root)
    # One set for every class: a link to the labeled folder, to another class or to a folder that an
    # earlier class listed is not followed, so no image is listed twice or under two labels.
    seen = _distinct_classes(root, class_dirs)
    files, labels, ignored = _walk_classes(class_dirs, seen)
    notes = [] if notes is None else notes
    outputs: list[Path] = []
    if unlabeled is not None:
        found, n_ignored = _walk_pool(check_dir(unlabeled, "unlabeled"), root, seen, files, outputs, notes)
        ignored += n_ignored
        files += found
        labels += [-1] * len(found)
    if outputs:
        notes.append(
            f"{len(outputs)} output folder(s) of gan-augment's passed over, never read as images: {outputs[0]}"
        )
    return files, labels, [d.name for d in class_dirs], ignored


def _walk_classes(class_dirs: list[Path], seen: set[tuple[int, int]]) -> tuple[list[Path], list[int], int]:
    """Each class folder's images (``seen``: the folders listed so far), their labels and the files passed over;
    a DataError for a class folder without images."""
    files: list[Path] = []
    labels: list[int] = []
    ignored = 0
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
    return files, labels, ignored


# Bytes of a folder name made from a class name: file systems allow 255, and a clash suffix needs room.
MAX_NAME_BYTES = 200


def _distinct_classes(root: Path, class_dirs: list[Path]) -> set[tuple[int, int]]:
    """The identities of ``root`` and its class folders; two class folders that are one are refused."""
    identities = {d: _identity(d) for d in class_dirs}
    same: dict[tuple[int, int] | None, Path] = {}
    for d in class_dirs:
        other = same.setdefault(identities[d], d)
        if other != d:
            raise DataError(
                f"class folders {other.name!r} and {d.name!r} in {str(root)!r} are the same folder (one links "
                "to the other): its images would be listed under two classes; remove the link"
            )
    return {i for i in (_identity(root), *identities.values()) if i is not None}


def _walk_pool(
    uroot: Path,
    root: Path,
    seen: set[tuple[int, int]],
    labeled_files: list[Path],
    outputs: list[Path],
    notes: list[str],
) -> tuple[list[Path], int]:
    """The pool's images, without the labeled folders (already in ``seen``) or files of the labeled set."""
    pool, n_ignored = walk_images(uroot, seen=set(seen), outputs=outputs)
    if not pool:
        raise DataError(f"unlabeled folder {str(uroot)!r} has no images: add images or leave it out")
    labeled_ids = {i for i in map(_identity, labeled_files) if i is not None}
    found = [p for p in pool if (_identity(p) or (-1, -1)) not in labeled_ids]
    if len(found) < len(pool) or root.resolve().is_relative_to(uroot.resolve()):
        notes.append(
            f"the labeled images are not taken into the pool: {str(uroot)!r} holds the labeled folder or "
            f"{len(pool) - len(found)} of its files"
        )
    if not found:
        raise DataError(f"unlabeled folder {str(uroot)!r} has no images of its own: it only holds the labeled ones")
    return found, n_ignored


def safe_folder_names(names: list[str], reserved: tuple[str, ...] = ()) -> list[str]:
    """Folder names for class names read from a file (untrusted): one path component each, never
    ``.``, ``..``, empty or hidden, no separators or control characters, at most
    :data:`MAX_NAME_BYTES` bytes in UTF-8 (names read from disk keep their undecodable bytes), never
    one of ``reserved`` (the package's own files beside them), and distinct even where case is not
    (a clash after cleaning gets the class index appended). Names that are already safe are kept as
    they are."""
    out: list[str] = []
    taken = {r.casefold() for r in reserved}
    for i, name in enumerate(names):
        clean = "".join("_" if ch in "/\\" or ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 else ch for ch in str(name))
        clean = clean.strip()
        clean = clean.lstrip(".") if clean.strip(".") else ""
        clean = _cut_bytes(clean, MAX_NAME_BYTES) or f"class_{i}"
        while clean.casefold() in taken:
            clean = f"{_cut_bytes(clean, MAX_NAME_BYTES - 8)}_{i}"
        taken.add(clean.casefold())
        out.append(clean)
    return out


def _cut_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of its on-disk encoding, at a character boundary."""
    text = text[:limit]  # a character is at least one byte
    while len(text.encode(errors="surrogateescape")) > limit:
        text = text[:-1]
    return text.rstrip()
