"""gan_augment: DCGANs trained on your labeled (and unlabeled) images, put to work for a classifier.

Layers, bottom up: ``config``/``errors``/``device``/``progress``/``version``; ``models``; ``io``
(checkpoints, image forms); ``data``; ``sampling``; ``train``; ``plugins`` (torchvision and scikit-learn
adapters); ``evaluate``; ``classify``; ``cli``. This module re-exports what a user calls: the
configurations and errors, ``fit``, ``sample``, the loaders, the three plugins, ``classify`` /
``Predictor`` / ``evaluate_folders``, and logit adjustment for an imbalanced labeled set
(``logit_adjusted_loss``, ``class_prior``, ``fill_classes``). Internals stay importable from their modules
(``gan_augment.train.Trainer``, ``gan_augment.io.load_checkpoint``, ``gan_augment.models.Generator``).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from .classify import Predictor, classify
from .config import ModelConfig, SSLConfig, TrainConfig
from .data import ImageData, fill_classes, load_image_data
from .errors import CheckpointError, DataError, GanAugmentError, RunDirError, UsageError, WriteError
from .evaluate import ClassifierConfig, evaluate_folders
from .evaluate.imbalance import class_prior, logit_adjusted_loss
from .io import GeneratorInfo, load_discriminator, load_generator
from .plugins import DiscriminatorFeatures, GANAugmentedDataset, SyntheticSwap, extract_features
from .sampling import sample
from .train import fit, fit_data
from .version import __version__

__all__ = [
    "CheckpointError",
    "ClassifierConfig",
    "DataError",
    "DiscriminatorFeatures",
    "GANAugmentedDataset",
    "GanAugmentError",
    "GeneratorInfo",
    "ImageData",
    "ModelConfig",
    "Predictor",
    "RunDirError",
    "SSLConfig",
    "SyntheticSwap",
    "TrainConfig",
    "UsageError",
    "WriteError",
    "__version__",
    "class_prior",
    "classify",
    "evaluate_folders",
    "extract_features",
    "fill_classes",
    "fit",
    "fit_data",
    "load_discriminator",
    "load_generator",
    "load_image_data",
    "logit_adjusted_loss",
    "sample",
]

# Names the top level exported before its API was chosen (issue 21): still importable from here for one
# release, with a DeprecationWarning that names their home.
MOVED = {
    "Trainer": "gan_augment.train",
    "save_checkpoint": "gan_augment.io",
    "load_checkpoint": "gan_augment.io",
    "Generator": "gan_augment.models",
    "Discriminator": "gan_augment.models",
    "PerClassGenerator": "gan_augment.models",
    "PerClassDiscriminator": "gan_augment.models",
}


def __getattr__(name: str) -> Any:
    if name in MOVED:
        warnings.warn(
            f"gan_augment.{name} is deprecated and will be removed in the next release: import it from "
            f"{MOVED[name]} (from {MOVED[name]} import {name})",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(MOVED[name]), name)
    raise AttributeError(f"module 'gan_augment' has no attribute {name!r}")
