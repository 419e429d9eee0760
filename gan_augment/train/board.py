"""TensorBoard logs, optional (``pip install gan-augment[tensorboard]``): a run's losses, D(x), sample
grids and its teacher's curves, an evaluation's accuracies, under ``<folder>/tensorboard``;
``tensorboard --logdir runs/`` shows them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import UsageError

BOARD_DIR = "tensorboard"


def require_tensorboard() -> None:
    """Refuse ``--tensorboard`` before any work when the extra is not installed."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise UsageError(
            "--tensorboard needs the tensorboard package: pip install 'gan-augment[tensorboard]' (or leave it out)"
        ) from None


class Board:
    """One TensorBoard event file in ``folder/tensorboard`` (a new one per process that writes there)."""

    def __init__(self, folder: str | Path) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(folder) / BOARD_DIR
        self.writer = SummaryWriter(log_dir=str(self.dir))

    def scalars(self, prefix: str, row: dict[str, Any], step: int) -> None:
        """Every number of ``row`` as ``prefix/name`` at ``step`` (``step`` and text left out)."""
        for name, value in row.items():
            if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{prefix}/{name}", float(value), step)
        self.writer.flush()

    def image(self, tag: str, path: Path, step: int) -> None:
        """A PNG written by the package (a sample grid), as an image at ``step``."""
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        self.writer.add_image(tag, pixels, step, dataformats="HWC")
        self.writer.flush()

    def arm_record(self, record: dict[str, Any]) -> None:
        """An evaluation's (arm, seed) result: its accuracy at step = seed, and its learning curve if any."""
        arm, seed = str(record["arm"]), int(record["seed"])
        self.writer.add_scalar(f"accuracy/{arm}", float(record["accuracy"]), seed)
        for point in record.get("curve") or []:
            self.writer.add_scalar(f"curve/{arm}/seed{seed}", float(point["accuracy"]), int(point["step"]))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
