"""The evidence: does a GAN raise a secondary classifier's accuracy? Classic augmentation, the classifier,
generator quality, the arm registry and the arms, paired statistics, reports, and ``evaluate_folders``."""

from ..models import build_classifier, check_classifier_name, classifier_names
from ..train.crop_flip import crop_flip, crop_pad, device_augmentation
from ..train.metrics import accuracy
from .arms import ArmSettings, SeedArms, run_seed, with_gan
from .augmentation import classic_augmentation
from .builtin_arms import GanSamples, PseudoBalance, RunDataset  # the package's arms, registered on import
from .classifier import (
    AUGMENT_MODES,
    ArrayDataset,
    ClassifierConfig,
    Split,
    materialize,
    train_classifier,
)
from .folders import evaluate_folders
from .quality import diversity_ratio, generator_quality
from .registry import ARM_REGISTRY, Arm, arm_names, check_arms, get_arm, register
from .report import markdown_table, plot_accuracy, settings_dict
from .stats import paired_gain, samples_verdict, summarize, verdict

__all__ = [
    "ARM_REGISTRY",
    "AUGMENT_MODES",
    "Arm",
    "ArmSettings",
    "ArrayDataset",
    "ClassifierConfig",
    "GanSamples",
    "PseudoBalance",
    "RunDataset",
    "SeedArms",
    "Split",
    "build_classifier",
    "check_arms",
    "check_classifier_name",
    "classic_augmentation",
    "accuracy",
    "arm_names",
    "classifier_names",
    "crop_flip",
    "crop_pad",
    "device_augmentation",
    "diversity_ratio",
    "evaluate_folders",
    "generator_quality",
    "get_arm",
    "markdown_table",
    "materialize",
    "paired_gain",
    "plot_accuracy",
    "register",
    "run_seed",
    "samples_verdict",
    "settings_dict",
    "summarize",
    "train_classifier",
    "verdict",
    "with_gan",
]
