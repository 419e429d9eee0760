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
from .dataset import GANAugmentedDataset
from .errors import CheckpointError, DataError, GanAugmentError, RunDirError
from .features import DiscriminatorFeatures, extract_features
from .models import Discriminator, Generator, PerClassDiscriminator, PerClassGenerator
from .sampling import GeneratorInfo, load_discriminator, load_generator, sample
from .transforms import SyntheticSwap
from .training import Trainer, fit

__all__ = [
    "CheckpointError",
    "DataError",
    "Discriminator",
    "DiscriminatorFeatures",
    "GANAugmentedDataset",
    "GanAugmentError",
    "Generator",
    "GeneratorInfo",
    "ImageData",
    "ModelConfig",
    "PerClassDiscriminator",
    "PerClassGenerator",
    "RunDirError",
    "SyntheticSwap",
    "TrainConfig",
    "Trainer",
    "__version__",
    "extract_features",
    "fit",
    "load_checkpoint",
    "load_discriminator",
    "load_generator",
    "load_image_data",
    "sample",
    "save_checkpoint",
]
