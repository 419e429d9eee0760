"""The checkpoint format: one versioned dict of plain types, written atomically, loaded safely."""

from __future__ import annotations

import contextlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import torch
from torch import nn

from ..errors import CheckpointError, GanAugmentError, UsageError
from ..version import __version__
from .atomic import atomic_torch_save

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
CLASSIFIER_NAME = "classifier.pt"  # what `gan-augment classify` writes, in the same format
TEACHER_NAME = "teacher.pt"  # a run's teacher (the classifier `fit` trains beside its GANs)
TEACHER_TRAINING_NAME = "teacher-training.pt"  # the teacher while it trains: what resumes it


def strip_prefixes(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Remove the ``_orig_mod.`` (torch.compile) and ``module.`` (DDP) prefixes from keys."""
    out = {}
    for key, value in state_dict.items():
        for prefix in ("_orig_mod.", "module."):
            key = key.replace(prefix, "")
        out[key] = value
    return out


def check_weights(state: Any) -> dict[str, Any]:
    """``state`` if it is a model's weights as gan-augment writes them: a dict of real tensors
    (floating point, but BatchNorm's integer step counters); raises TypeError otherwise (inside
    :func:`reading`, one CheckpointError). ``load_state_dict`` alone would copy integer or complex
    values into the float weights without a word."""
    if not isinstance(state, dict):
        raise TypeError(f"model weights are a {type(state).__name__}, not a dict of tensors")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"weight {key!r} is a {type(value).__name__}, not a tensor")
        integer_counter = str(key).endswith("num_batches_tracked") and not value.dtype.is_floating_point
        if not (value.dtype.is_floating_point or integer_counter) or value.is_complex():
            raise TypeError(f"weight {key!r} is {value.dtype}, not floating point")
        if value.dtype.is_floating_point and not bool(torch.isfinite(value).all()):
            raise TypeError(f"weight {key!r} holds NaN or infinite values")
    return state


def materialize(build: Callable[[], nn.Module], state: dict[str, Any]) -> nn.Module:
    """The module ``build`` makes, holding the weights ``state`` (checked by :func:`check_weights`, prefixes
    stripped). It is built on the ``meta`` device first, so sizes read from a file (an image side, a width,
    a count of models) cost no memory until every weight's shape is checked against the file's own
    tensors: a crafted record that asks for gigabytes is refused before any is allocated.

    Raises:
        RuntimeError: If a weight is missing, unexpected or of another shape (inside :func:`reading`:
            one CheckpointError naming the file).
    """
    state = strip_prefixes(check_weights(state))
    with torch.device("meta"):
        module = build()
    module.load_state_dict(state, assign=True)  # strict: every shape checked; the file's tensors are used
    left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"no weights for {', '.join(left[:3])}")
    return module.float()


def run_file(run: str | os.PathLike[str], name: str) -> Path:
    """The file ``name`` of a run, given the run directory or a file inside it (its checkpoint.pt)."""
    path = Path(run).expanduser()
    return (path if path.is_dir() else path.parent) / name


def resolve_checkpoint_path(path_or_run_dir: str | os.PathLike[str]) -> Path:
    """Return the checkpoint file of a run directory, or ``path`` itself if it is a file.

    Raises:
        CheckpointError: If nothing is there.
    """
    path = Path(path_or_run_dir).expanduser()
    if path.is_dir():  # a run of `fit`, or a folder of `classify` (its classifier.pt)
        classifier = path / CLASSIFIER_NAME
        path = classifier if classifier.is_file() and not (path / CHECKPOINT_NAME).is_file() else path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {str(path)!r}: pass a run directory written by `gan-augment fit` or its checkpoint.pt"
        )
    return path


def save_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Stamp ``ckpt`` with the format and package versions and write it atomically."""
    ckpt = {"format_version": FORMAT_VERSION, "package_version": __version__, **ckpt}
    atomic_torch_save(ckpt, path)


def load_checkpoint(
    path_or_run_dir: str | os.PathLike[str], map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(..., weights_only=True)``: never runs code from the file.

    Args:
        path_or_run_dir: A ``checkpoint.pt`` or the run directory holding it.
        map_location: Where to put the tensors (default CPU, so GPU checkpoints load anywhere).

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: If the file is missing, untrusted, corrupt, or of a newer format.
    """
    path = resolve_checkpoint_path(path_or_run_dir)
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives; anything else is not unpickled at all
        raise CheckpointError(
            f"{str(path)!r} is not a readable checkpoint (not a torch.save archive): the file is corrupt, "
            "truncated or of another kind; use another checkpoint"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{str(path)!r} is not a trusted checkpoint (it holds objects that safe loading refuses): "
            "only load checkpoints written by gan-augment"
        ) from exc
    except Exception as exc:
        raise CheckpointError(
            f"{str(path)!r} is not a readable checkpoint ({type(exc).__name__}): the file is corrupt "
            "or truncated; use another checkpoint"
        ) from exc
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{str(path)!r} is not a gan-augment checkpoint: no format_version in it")
    if type(ckpt["format_version"]) is not int:
        raise CheckpointError(f"{str(path)!r} is not a gan-augment checkpoint: its format_version is not a number")
    if ckpt["format_version"] < 1:
        raise CheckpointError(f"{str(path)!r} is not a gan-augment checkpoint: format {ckpt['format_version']}")
    if ckpt["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format {ckpt['format_version']}, newer than this "
            f"gan-augment reads ({FORMAT_VERSION}): upgrade gan-augment"
        )
    return ckpt


@contextlib.contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[None]:
    """Interpret a checkpoint's contents inside this block: a checkpoint with the right keys but
    wrong contents (a missing entry, a tensor of another shape or dtype, a string for a number)
    raises one :class:`CheckpointError` naming the file, never a KeyError or a traceback.
    """
    try:
        yield
    except GanAugmentError as exc:
        if not isinstance(exc, UsageError):  # a value read from the file that a check refuses: the file's fault
            raise
        _broken(path, exc)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError, OverflowError) as exc:
        _broken(path, exc)


def _broken(path: str | os.PathLike[str], exc: BaseException) -> NoReturn:
    """The one error for a checkpoint whose contents do not make sense, naming it and what was wrong."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    detail = detail if len(detail) <= 200 else detail[:197] + "..."
    raise CheckpointError(
        f"{str(path)!r} is not a complete gan-augment checkpoint ({detail}): use another one"
    ) from None
