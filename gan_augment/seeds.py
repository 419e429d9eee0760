"""Every seed the package derives from a user's seed, in one place: each purpose gets its own stream, so
changing how one is drawn never moves another (the values are those the measured runs used); and
:func:`keeps_callers_rng`, which keeps the training's seeding of the global random state from the caller."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import torch

# BatchNorm recalibration of the EMA generator (at each save, and of the pre-trained shared model): its noise.
BATCHNORM_RECALIBRATION = 7919
# A bank's per-class sampling streams: class c draws with seed + BANK_CLASS_STRIDE * (c + 1).
BANK_CLASS_STRIDE = 7919
# GANAugmentedDataset's teacher-labelling rounds: round r draws with seed + DATASET_ROUND_STRIDE * r.
DATASET_ROUND_STRIDE = 104_729
# The evaluation's generator-quality samples (CAS, diversity): seed + QUALITY_SAMPLES.
QUALITY_SAMPLES = 10_000


F = TypeVar("F", bound=Callable[..., Any])


def keeps_callers_rng(fn: F) -> F:
    """Run ``fn`` on a fork of the global random states (CPU and every CUDA device), restored when it
    returns or raises: the training inside seeds and draws from them as it always did (so its results
    are unchanged), and the caller's own random stream is where it was."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
