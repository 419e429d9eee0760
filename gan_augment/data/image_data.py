"""``ImageData``: decoded images with their labels and sources, the unit every trainer takes."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import torch

from ..progress import printable


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
        notes: What the scan left out that the user should hear of (output folders, labeled images
            also in the pool).
        from_cache: Whether the images were read from the decode cache.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    files: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0
    notes: list[str] = field(default_factory=list)
    from_cache: bool = False

    @property
    def num_labeled(self) -> int:
        return int((self.labels >= 0).sum())

    @property
    def num_unlabeled(self) -> int:
        return int((self.labels < 0).sum())

    @property
    def class_counts(self) -> list[int]:
        """Labeled images per class, in class order."""
        return torch.bincount(self.labels[self.labels >= 0], minlength=len(self.class_names)).tolist()

    def fingerprint(self) -> dict[str, object]:
        """Count and hashes of the file list, stored in checkpoints to tie a run to its data.

        ``files_sha256`` hashes the paths as given; ``real_files_sha256`` the same files with their
        folders resolved, so the same folder spelled another way (relative, absolute, through a
        link) is the same data.
        """
        given, real = hashlib.sha256(), hashlib.sha256()
        folders: dict[str, str] = {}
        for path, label in zip(self.files, self.labels.tolist()):
            folder, name = os.path.split(path)
            if folder not in folders:
                folders[folder] = os.path.realpath(folder) if folder and os.path.isdir(folder) else folder
            given.update(f"{label}\t{path}\n".encode(errors="surrogateescape"))
            real.update(f"{label}\t{os.path.join(folders[folder], name)}\n".encode(errors="surrogateescape"))
        return {
            "num_images": len(self.files),
            "num_labeled": self.num_labeled,
            "num_unlabeled": self.num_unlabeled,
            "files_sha256": given.hexdigest(),
            "real_files_sha256": real.hexdigest(),
        }


def content_digest(
    images: torch.Tensor | None, labels: torch.Tensor | None = None, class_names: list[str] | None = None
) -> str | None:
    """A hash of decoded images (their pixels and shape) with their labels and class names: the same data
    however its folder is spelled, and other data whenever a pixel, a label or a class's name differs
    (swapped class folders, added images, a rewritten file). None for no images."""
    if images is None:
        return None
    digest = hashlib.blake2b(digest_size=20)
    digest.update(repr((tuple(images.shape), str(images.dtype), class_names)).encode(errors="surrogateescape"))
    digest.update(images.contiguous().numpy().tobytes())
    if labels is not None:
        digest.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def memory_data(
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    unlabeled: torch.Tensor | None = None,
    tag: str = "memory",
) -> ImageData:
    """An :class:`ImageData` from tensors (labeled uint8 (N, C, H, W), optional unlabeled), for ``fit_data``."""
    if unlabeled is not None and len(unlabeled):
        all_images = torch.cat([images, unlabeled])
        all_labels = torch.cat([labels.long(), torch.full((len(unlabeled),), -1, dtype=torch.int64)])
    else:
        all_images, all_labels = images, labels.long()
    return ImageData(
        all_images.contiguous(), all_labels, list(class_names), [f"{tag}:{i}" for i in range(len(all_labels))]
    )


def summary(data: ImageData) -> str:
    """One line describing what was loaded, for the CLI."""
    counts = data.class_counts
    per_class = ", ".join(f"{printable(n)}: {c}" for n, c in zip(data.class_names, counts))
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
    parts += data.notes
    return "; ".join(parts)
