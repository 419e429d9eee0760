"""The demo data: scikit-learn's bundled handwritten digits written out as image folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UsageError
from ..io.atomic import atomic_write_text
from ..io.images import save_image_atomic


def write_digits_folders(root: str | os.PathLike[str], labels_per_class: int = 20, seed: int = 0) -> tuple[Path, Path]:
    """Write ``load_digits`` (1,797 8×8 digits) as PNGs: a few labeled per class, the rest unlabeled.

    Args:
        root: Folder to write ``labeled/<digit>/`` and ``unlabeled/`` into.
        labels_per_class: Labeled images per class; the other images go to ``unlabeled/``.
        seed: Seed of the choice of labeled images.

    Returns:
        ``(labeled_dir, unlabeled_dir)``.
    """
    from sklearn.datasets import load_digits

    if labels_per_class < 1:
        raise UsageError(f"labels_per_class={labels_per_class} must be >= 1")
    digits = load_digits()
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)  # (1797, 8, 8)
    rng = np.random.default_rng(seed)
    root = Path(root)
    labeled, unlabeled = root / "labeled", root / "unlabeled"
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(digits.target == c))
        for j, i in enumerate(idx):
            folder = labeled / str(c) if j < labels_per_class else unlabeled
            save_image_atomic(Image.fromarray(images[i], mode="L"), folder / f"digit_{i:04d}.png")  # never via a link
    atomic_write_text(
        root / "README.txt",
        f"scikit-learn load_digits: {labels_per_class} labeled images per class, the rest unlabeled (seed {seed}).\n",
    )
    return labeled, unlabeled
