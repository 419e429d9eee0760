"""gan_augment: DCGANs trained on your labeled (and unlabeled) images, put to work for a classifier.

Layers, bottom up: ``config``/``errors``/``device``/``progress``; ``io`` (checkpoints, image forms);
``data``; ``models``; ``sampling``; ``train``; ``plugins`` (torchvision and scikit-learn adapters);
``evaluate``; ``classify``; ``cli``. This module only re-exports the public API.
"""

from __future__ import annotations

from .config import ModelConfig, TrainConfig
from .data import ImageData, load_image_data
from .errors import CheckpointError, DataError, GanAugmentError, RunDirError
from .io import GeneratorInfo, load_checkpoint, load_discriminator, load_generator, save_checkpoint
from .models import Discriminator, Generator, PerClassDiscriminator, PerClassGenerator
from .plugins import DiscriminatorFeatures, GANAugmentedDataset, SyntheticSwap, extract_features
from .sampling import sample
from .train import Trainer, fit, fit_data
from .version import __version__

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
    "fit_data",
    "load_checkpoint",
    "load_discriminator",
    "load_generator",
    "load_image_data",
    "sample",
    "save_checkpoint",
]
