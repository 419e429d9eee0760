"""The classifier files the package writes, typed and read in one place.

A run's ``teacher.pt`` and ``classify --method ssl``'s ``classifier.pt`` hold a network
(:class:`NetworkRecord`: the semi-supervised discriminator, a supervised one, or the self-trained
ResNet); ``classify``'s default ``classifier.pt`` holds a linear model on a run's discriminator
features (:class:`FeaturesRecord`). :func:`classifier_record` is the one place a file's ``kind`` is
read; every reader takes the record it returns, whose fields are checked as they are read (nothing in
a file is trusted).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import MAX_IMAGE_SIZE, MAX_WIDTH
from ..errors import CheckpointError
from ..models import build_classifier
from ..models.ssl import build_ssl_discriminator
from .checkpoint import load_checkpoint, materialize, reading
from .record import check_class_names

# The kinds of network file: a run's teachers (ssl, supervised, self-training) and classify --method ssl's (ssl).
NETWORK_KINDS = ("ssl", "supervised", "self-training")
FEATURES_KIND = "features"


def _shape(state: dict[str, Any]) -> tuple[list[str], int, int]:
    names = check_class_names(state["class_names"])
    size, channels = int(state["image_size"]), int(state["channels"])
    if not (8 <= size <= MAX_IMAGE_SIZE and channels in (1, 3)):
        raise ValueError(f"image size {size} or {channels} channels out of range")
    return names, size, channels


@dataclass(frozen=True)
class NetworkRecord:
    """A classifier network and what rebuilds it.

    Attributes:
        kind: ``ssl``, ``supervised`` or ``self-training``.
        class_names: Its classes, in the order of its outputs.
        image_size, channels: What it was trained at.
        architecture: ``small-resnet`` (self-trained), or the semi-supervised discriminator's.
        width: Its width.
        weights: Its (averaged) weights.
        metrics: What was measured of it (a run's teacher: ``heldout`` and the rest).
        state: The file's dict as read (for the fields only its writer reads).
    """

    kind: str
    class_names: list[str]
    image_size: int
    channels: int
    architecture: str
    width: int
    weights: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> NetworkRecord:
        """The record of a network's dict (as written, or as a training returns it).

        Raises:
            CheckpointError: For the earlier ssl format (a DCGAN discriminator with a head).
            KeyError, TypeError, ValueError: For a missing or wrong field (inside :func:`reading`: one line).
        """
        if "architecture" not in state:
            raise CheckpointError(
                "this ssl classifier was written by an earlier gan-augment (a DCGAN discriminator with BatchNorm): "
                "train it again with `gan-augment classify --method ssl`"
            )
        names, size, channels = _shape(state)
        width = int(dict(state.get("ssl_config") or {}).get("width", 96))  # classifiers from before it: the paper's
        if not 1 <= width <= MAX_WIDTH:
            raise ValueError(f"width {width} out of range")
        metrics = state.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise TypeError(f"metrics is a {type(metrics).__name__}, not a dict")
        kind, arch = str(state["kind"]), str(state["architecture"])
        return cls(kind, names, size, channels, arch, width, state["d"], dict(metrics), state)

    def build(self) -> nn.Module:
        """The network with its weights, in eval mode (on the CPU)."""
        k, arch = len(self.class_names), self.architecture
        if arch == "small-resnet":  # a run's self-trained teacher (or its labels-only network)
            net = materialize(lambda: build_classifier(arch, self.channels, k, self.width), self.weights)
            net.image_size, net.channels = self.image_size, self.channels  # what it was trained at (it takes any)
            return net.to(memory_format=torch.channels_last).eval()
        build = lambda: build_ssl_discriminator(arch, self.image_size, self.channels, k, self.width)  # noqa: E731
        return materialize(build, self.weights).eval()


@dataclass(frozen=True)
class FeaturesRecord:
    """``classify``'s linear model on a run's discriminator features: the discriminator (``gan``: its model
    configuration, phase and weights), the pooled layers and grid, the scaler and the logistic regression."""

    class_names: list[str]
    image_size: int
    channels: int
    gan: dict[str, Any]
    layers: Any
    grid: int
    scaler_mean: torch.Tensor
    scaler_scale: torch.Tensor
    coef: torch.Tensor
    intercept: torch.Tensor
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> FeaturesRecord:
        names, size, channels = _shape(state)
        tensors = [state[k] for k in ("scaler_mean", "scaler_scale", "coef", "intercept")]
        if not all(isinstance(t, torch.Tensor) for t in tensors):
            raise TypeError("the linear model's weights are not tensors")
        gan = state["gan"]
        if not isinstance(gan, dict):
            raise TypeError(f"gan is a {type(gan).__name__}, not a dict")
        metrics = dict(state.get("metrics") or {})
        return cls(names, size, channels, gan, state["layers"], int(state["grid"]), *tensors, metrics=metrics)


ClassifierRecord = NetworkRecord | FeaturesRecord


def classifier_record(state: dict[str, Any], where: str | os.PathLike[str]) -> ClassifierRecord:
    """The typed record of a classifier file's dict (``where``: the file, for the message).

    Raises:
        CheckpointError: If the dict is no classifier the package wrote (a run's checkpoint, say), or a field
            is missing or wrong (one line naming the file).
    """
    kind = state.get("kind")
    if kind not in (*NETWORK_KINDS, FEATURES_KIND):
        what = "a GAN checkpoint" if kind is None else f"of kind {kind!r}"
        raise CheckpointError(f"{str(where)!r} is {what}, not a classifier: use `gan-augment classify`")
    with reading(where):
        return FeaturesRecord.from_dict(state) if kind == FEATURES_KIND else NetworkRecord.from_dict(state)


def load_classifier_record(path: str | os.PathLike[str]) -> ClassifierRecord:
    """The classifier record in ``path`` (a ``teacher.pt`` or ``classifier.pt``)."""
    return classifier_record(load_checkpoint(path, map_location="cpu"), path)


def build_network(state: dict[str, Any]) -> nn.Module:
    """The network of a network dict (as written, or as a training returns it), in eval mode."""
    return NetworkRecord.from_dict(state).build()


def load_network_record(path: str | os.PathLike[str]) -> NetworkRecord:
    """The network record in ``path`` (a run's ``teacher.pt``); a CheckpointError for any other file."""
    record = load_classifier_record(path)
    if not isinstance(record, NetworkRecord):
        raise CheckpointError(f"{str(path)!r} holds a features classifier, not a network")
    return record
