"""gan_augment: DCGANs trained on your labeled (and unlabeled) images, put to work for a classifier."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gan-augment")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ModelConfig, TrainConfig
from .data import ImageData, load_image_data
from .errors import CheckpointError, DataError, GanAugmentError, RunDirError
from .models import Discriminator, Generator, PerClassGenerator
from .sampling import GeneratorInfo, load_generator, sample
from .training import Trainer, fit

__all__ = [
    "CheckpointError",
    "DataError",
    "Discriminator",
    "GanAugmentError",
    "Generator",
    "GeneratorInfo",
    "ImageData",
    "ModelConfig",
    "PerClassGenerator",
    "RunDirError",
    "TrainConfig",
    "Trainer",
    "__version__",
    "fit",
    "load_checkpoint",
    "load_generator",
    "load_image_data",
    "sample",
    "save_checkpoint",
]
