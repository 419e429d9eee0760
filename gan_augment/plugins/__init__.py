"""The plugin layer: a run's generator and discriminator put to work in other people's code (torchvision
datasets and transforms, scikit-learn transformers)."""

from .bank import SyntheticBank, dataset_classes, dataset_targets, map_classes
from .dataset import GANAugmentedDataset
from .features import DiscriminatorFeatures, extract_features, feature_length, images_to_tensor
from .transforms import SyntheticSwap

__all__ = [
    "DiscriminatorFeatures",
    "GANAugmentedDataset",
    "SyntheticBank",
    "SyntheticSwap",
    "dataset_classes",
    "dataset_targets",
    "extract_features",
    "feature_length",
    "images_to_tensor",
    "map_classes",
]
