"""Training: losses, DiffAugment, the model pair, the trainer (models, step, state), its checkpointer
and loop, health, run directories, several processes, the SSL GAN's trainer, and the public ``fit`` / ``fit_data``."""

from ..io.record import TrainState
from .checkpointer import Checkpointer
from .distributed import DistContext, from_environment, shard
from .fit import fit, fit_data
from .health import TrainingStopped
from .metrics import accuracy
from .pair import AdamSettings, GanPair, check_compile, compile_pair, pack_optimizer, unpack_optimizer
from .rundir import check_run_dir, prepare_run_dir
from .trainer import Trainer

__all__ = [
    "AdamSettings",
    "Checkpointer",
    "DistContext",
    "GanPair",
    "TrainState",
    "Trainer",
    "TrainingStopped",
    "accuracy",
    "check_compile",
    "check_run_dir",
    "compile_pair",
    "fit",
    "fit_data",
    "from_environment",
    "pack_optimizer",
    "prepare_run_dir",
    "shard",
    "unpack_optimizer",
]
