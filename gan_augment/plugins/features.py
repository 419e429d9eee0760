"""The discriminator as a feature extractor (the DCGAN paper's recipe), as a scikit-learn transformer."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..data.decode import GRAY_MODES
from ..device import resolve_device
from ..errors import CheckpointError, GanAugmentError, UsageError
from ..io.checkpoint import reading
from ..io.images import rgb_to_gray
from ..io.rebuild import load_discriminator
from ..models import PerClassDiscriminator
from ..train.teacher_status import finished_teacher

FEATURE_SOURCES = ("auto", "teacher", "discriminator")


def _block_indices(layers: str | Sequence[int], n_blocks: int) -> list[int]:
    if isinstance(layers, str):
        if layers != "all":
            raise UsageError(f"layers={layers!r} must be 'all' or a list of block indices")
        return list(range(n_blocks))
    idx = [int(i) for i in layers]
    bad = [i for i in idx if not -n_blocks <= i < n_blocks]
    if not idx or bad:
        raise UsageError(f"layers={list(layers)} must be block indices in [0, {n_blocks - 1}]")
    return sorted({i % n_blocks for i in idx})


def input_shape(discriminator: nn.Module) -> tuple[int, int]:
    """(image_size, channels) a discriminator takes: a DCGAN one's config, or an SSL one's attributes."""
    cfg = getattr(discriminator, "config", None)
    if cfg is not None:
        return cfg.image_size, cfg.channels
    return int(discriminator.image_size), int(discriminator.channels)


@torch.no_grad()
def _map_shapes(discriminator: nn.Module) -> list[tuple[int, ...]]:
    """The shape of one image's output of each ``forward_features`` entry: (C, H, W) maps or (F,) vectors."""
    size, channels = input_shape(discriminator)
    dev = next(discriminator.parameters()).device
    was_training = discriminator.training
    maps = discriminator.eval().forward_features(torch.zeros(1, channels, size, size, device=dev))
    discriminator.train(was_training)
    return [tuple(m.shape[1:]) for m in maps]


def _pooled(shape: tuple[int, ...], grid: int) -> tuple[int, ...]:
    return (shape[0], min(grid, shape[1]), min(grid, shape[2])) if len(shape) == 3 else shape


@torch.no_grad()
def extract_features(
    discriminator: nn.Module,
    images: torch.Tensor,
    layers: str | Sequence[int] = "all",
    grid: int = 4,
    batch_size: int = 256,
) -> torch.Tensor:
    """Max-pool every chosen discriminator block's map to ``grid``×``grid``, flatten and concatenate.

    Args:
        discriminator: A DCGAN discriminator (unconditional or conditional) or an SSL one, in eval
            mode; the SSL MLP's hidden layers are vectors, taken as they are.
        images: float (N, C, H, W) in [-1, 1] at the discriminator's image size.
        layers: ``"all"`` or block indices.
        grid: Side of the pooled map (a map smaller than ``grid`` is pooled to its own size).
        batch_size: Images per forward pass.

    Returns:
        float32 (N, F) on the CPU.
    """
    blocks = _block_indices(layers, len(_map_shapes(discriminator)))
    dev = next(discriminator.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        maps = discriminator.forward_features(images[start : start + batch_size].to(dev))
        pooled = [
            maps[i] if maps[i].ndim == 2 else F.adaptive_max_pool2d(maps[i], _pooled(maps[i].shape[1:], grid)[1:])
            for i in blocks
        ]
        out.append(torch.cat([p.flatten(1) for p in pooled], dim=1).float().cpu())  # (b, F)
    if not out:
        return torch.empty(0, feature_length(discriminator, layers, grid))
    return torch.cat(out)


def feature_length(discriminator: nn.Module, layers: str | Sequence[int] = "all", grid: int = 4) -> int:
    """Length of :func:`extract_features`' vectors: Σ over chosen blocks of channels × min(grid, side)²."""
    return sum(int(np.prod(s)) for s in _block_shapes(discriminator, layers, grid))


def _block_shapes(discriminator: nn.Module, layers: str | Sequence[int], grid: int) -> list[tuple[int, ...]]:
    shapes = _map_shapes(discriminator)
    return [_pooled(shapes[i], grid) for i in _block_indices(layers, len(shapes))]


def _as_array_or_tensor(X: Any, image_size: int, channels: int) -> np.ndarray | torch.Tensor:
    """Lists of PIL images or tensors, datasets and array-likes as one numpy array or tensor."""
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError("sparse input is not supported: pass dense images")
    if hasattr(X, "__array__") and not isinstance(X, (np.ndarray, torch.Tensor)):
        X = np.asarray(X)
    if (
        hasattr(X, "__getitem__")
        and hasattr(X, "__len__")
        and not isinstance(X, (np.ndarray, torch.Tensor, list, tuple))
    ):
        X = [X[i][0] if isinstance(X[i], tuple) else X[i] for i in range(len(X))]
    if isinstance(X, (list, tuple)):
        if len(X) and isinstance(X[0], Image.Image):
            return _pil_images(X, image_size)
        if len(X) and isinstance(X[0], torch.Tensor):
            return torch.stack(list(X))
        return np.asarray(X)
    if isinstance(X, (np.ndarray, torch.Tensor)):
        return X
    raise UsageError(f"cannot read images from {type(X).__name__}")


def _pil_images(images: Sequence[Image.Image], image_size: int) -> np.ndarray | torch.Tensor:
    """PIL images as their pixels, L when all are grayscale and RGB otherwise, so that they go through the
    one resize and the one grayscale conversion of :func:`images_to_tensor` as the same pixels in an array
    or a tensor would: a uint8 array when all have one size, else each resized alone, a float tensor in [0, 1]."""
    gray = all(im.mode in GRAY_MODES for im in images)
    arrays = [np.asarray(im.convert("L" if gray else "RGB")) for im in images]
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    resized = [images_to_tensor(a[None], image_size, 1 if gray else 3) for a in arrays]
    return torch.cat(resized).add(1).div(2)  # back to [0, 1], where images_to_tensor takes them


def _array_to_nchw(X: np.ndarray, image_size: int, channels: int, layout: str = "auto") -> torch.Tensor:
    """(N, H, W), (N, H, W, C) or flattened arrays as an (N, C, H, W) tensor. Flattened rows of
    several channels need ``layout``: ``"chw"`` (torchvision's order) or ``"hwc"`` (numpy's, PIL's)."""
    if X.dtype == object:
        X = X.astype(np.float64)
    if not X.flags.writeable:  # e.g. np.asarray of a PIL image: torch.from_numpy would warn (it cannot guard it)
        X = X.copy()
    if np.iscomplexobj(X):
        raise UsageError("Complex data not supported: pass real-valued images")
    if X.ndim < 2:
        raise UsageError(
            f"Expected 2D array, got {X.ndim}D array instead: images must be (N, H, W), (N, H, W, C) "
            "or (N, C·H·W). Reshape your data"
        )
    if X.ndim == 2:  # flattened images
        side = image_size
        if X.shape[1] != channels * side * side:
            raise UsageError(
                f"2-D input has {X.shape[1]} features per row; flattened images for this discriminator "
                f"need {channels}×{side}×{side} = {channels * side * side}"
            )
        if layout not in ("auto", "chw", "hwc"):
            raise UsageError(f"layout={layout!r} is not one of auto, chw, hwc")
        if channels > 1 and layout == "auto":
            raise UsageError(
                f"flattened rows of {channels}×{side}×{side} values can be C×H×W (torchvision's order) or "
                "H×W×C (numpy's and PIL's), which give different images: pass layout='chw' or layout='hwc'"
            )
        if layout == "hwc":
            return torch.from_numpy(np.ascontiguousarray(X.reshape(len(X), side, side, channels))).permute(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(X.reshape(len(X), channels, side, side)))
    if X.ndim == 3:
        if X.shape[-1] in (3, 4) and X.shape[-2] > X.shape[-1]:  # (H, W, C): one colour image, not H gray ones
            raise UsageError(
                f"a 3-D array of shape {X.shape} is one colour image (H, W, C), not {X.shape[0]} gray images of "
                f"{X.shape[1]}×{X.shape[2]} pixels: pass a batch of one, X[None]"
            )
        return torch.from_numpy(np.ascontiguousarray(X))[:, None]  # (N, 1, H, W)
    if X.ndim == 4:
        return torch.from_numpy(np.ascontiguousarray(X)).permute(0, 3, 1, 2)  # (N, C, H, W)
    raise UsageError(f"images must be (N, H, W), (N, H, W, C) or (N, C·H·W); got shape {X.shape}")


def images_to_tensor(X: Any, image_size: int, channels: int, layout: str = "auto") -> torch.Tensor:
    """Turn images in any accepted form into float (N, C, image_size, image_size) in [-1, 1].

    Accepted: uint8 arrays (N, H, W) or (N, H, W, C); float arrays in [0, 1] of those shapes;
    2-D arrays (N, C·H·W) of flattened images; tensors (N, C, H, W) (uint8, or float in [0, 1]);
    lists of PIL images; a dataset of ``(image, label)`` or of images.
    """
    X = _as_array_or_tensor(X, image_size, channels)
    if isinstance(X, np.ndarray):
        t = _array_to_nchw(X, image_size, channels, layout)
    else:
        t = X if X.ndim == 4 else X[:, None]
    if t.dtype == torch.uint8:
        t = t.float().div(255)
    t = t.float()
    if not torch.isfinite(t).all():
        raise UsageError("images contain NaN or infinity")
    if t.numel() and (t.min() < 0 or t.max() > 1):
        raise UsageError(
            f"float images must be in [0, 1]; these are in [{float(t.min()):.3g}, {float(t.max()):.3g}]: divide "
            "0-255 values by 255, undo a normalization, or pass uint8 images"
        )
    if t.shape[1] != channels:
        if t.shape[1] == 1:
            t = t.expand(-1, channels, -1, -1)
        elif t.shape[1] == 3 and channels == 1:
            t = rgb_to_gray(t)
        else:
            raise UsageError(f"images have {t.shape[1]} channels; the discriminator takes {channels}")
    if t.shape[-2:] != (image_size, image_size):
        t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return t.mul(2).sub(1)  # [-1, 1]


class DiscriminatorFeatures(TransformerMixin, BaseEstimator):
    """Features from a trained discriminator (Radford et al. 2015, section 5.1) for scikit-learn.

    Every chosen discriminator block's feature map is max-pooled to ``grid``×``grid``,
    flattened, and the results are concatenated. ``fit`` only loads the discriminator; nothing is
    learned from ``X``.

    Args:
        generator_ckpt: Run directory or ``checkpoint.pt`` of any run: an unconditional or
            conditional run's discriminator, or a per-class run's shared discriminator,
            pre-trained on every labeled and unlabeled image (the default ``gan-augment fit
            LABELED UNLABELED``).
        layers: ``"all"`` or a list of block indices.
        grid: Side of each pooled map.
        device: Where to run (default CUDA when available).
        batch_size: Images per forward pass.
        layout: The order of flattened rows (N, C·H·W) of a run with 3 channels: ``"chw"``
            (torchvision's) or ``"hwc"`` (numpy's and PIL's); ``"auto"`` refuses them, since either
            reading gives an image. Other inputs carry their layout in their shape.
        source: Whose features: ``"teacher"`` (the run's teacher, ``teacher.pt``: every hidden layer
            of the semi-supervised discriminator), ``"discriminator"`` (the DCGAN's), or ``"auto"``:
            the teacher when the run kept one (its features measured better: docs/results_notes.md).
    """

    def __init__(
        self,
        generator_ckpt: str | os.PathLike[str] | None = None,
        layers: str | Sequence[int] = "all",
        grid: int = 4,
        device: str | None = None,
        batch_size: int = 256,
        layout: str = "auto",
        source: str = "auto",
    ) -> None:
        self.generator_ckpt = generator_ckpt
        self.layers = layers
        self.grid = grid
        self.device = device
        self.batch_size = batch_size
        self.layout = layout
        self.source = source

    def fit(self, X: Any = None, y: Any = None) -> DiscriminatorFeatures:
        """Load the discriminator (and check ``X``, when given, is readable images); returns self."""
        if self.generator_ckpt is None:
            raise UsageError("generator_ckpt is None: pass a run directory or checkpoint.pt")
        if int(self.grid) < 1:
            raise UsageError(f"grid={self.grid} must be >= 1")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(f"batch_size={self.batch_size!r} must be a positive integer")
        d = self._teacher() or load_discriminator(self.generator_ckpt, device="cpu")
        if isinstance(d, PerClassDiscriminator):  # its shared discriminator, pre-trained on every image
            try:
                d = load_discriminator(self.generator_ckpt, device="cpu", pretrained=True)
            except CheckpointError:
                raise GanAugmentError(
                    f"{str(self.generator_ckpt)!r} holds one discriminator per class and no shared pre-trained "
                    "one (it had no pre-training: no UNLABELED folder, or --pretrain-steps 0, or an older "
                    "gan-augment): run `gan-augment fit LABELED UNLABELED --out RUN` (it pre-trains one "
                    "discriminator on every image), or `--mode unconditional`"
                ) from None
        _block_shapes(d, self.layers, int(self.grid))  # checks ``layers``
        self.discriminator_: nn.Module = d
        self.image_size_, self.channels_ = input_shape(d)
        self.n_features_out_ = feature_length(d, self.layers, self.grid)
        if X is not None:
            n = len(images_to_tensor(X, self.image_size_, self.channels_, self.layout))
            if n == 0:
                raise UsageError("0 sample(s) given to fit: pass at least one image")
        return self

    def _teacher(self) -> nn.Module | None:
        """The run's teacher network when ``source`` asks for it (or ``auto`` finds one), else None."""
        if self.source not in FEATURE_SOURCES:
            raise UsageError(f"source={self.source!r} is not one of {', '.join(FEATURE_SOURCES)}")
        if self.source == "discriminator":
            return None
        # An interrupted, missing or unreadable teacher stops here: "auto" never switches features silently.
        found = finished_teacher(self.generator_ckpt, "pass source='discriminator'")  # type: ignore[arg-type]
        if found is None and self.source == "auto":
            return None
        if found is None:
            raise GanAugmentError(
                f"{str(self.generator_ckpt)!r} kept no teacher (trained with --teacher none): "
                "pass source='discriminator'"
            )
        path, record = found
        with reading(path):
            return record.build()

    def transform(self, X: Any) -> np.ndarray:
        """Features of images ``X`` as float32 (N, n_features_out_)."""
        check_is_fitted(self, "discriminator_")
        images = images_to_tensor(X, self.image_size_, self.channels_, self.layout)
        dev = resolve_device(self.device)
        d = self.discriminator_.to(dev).eval()
        feats = extract_features(d, images, self.layers, int(self.grid), int(self.batch_size))
        return feats.numpy().astype(np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names ``block{i}_c{channel}_y{row}_x{col}`` of the output columns."""
        check_is_fitted(self, "discriminator_")
        names = []
        blocks = _block_indices(self.layers, len(_map_shapes(self.discriminator_)))
        for b, shape in zip(blocks, _block_shapes(self.discriminator_, self.layers, int(self.grid))):
            if len(shape) == 1:  # a vector (the SSL MLP's hidden layers)
                names += [f"block{b}_f{i}" for i in range(shape[0])]
                continue
            c, s = shape[0], shape[1]
            names += [f"block{b}_c{ch}_y{i}_x{j}" for ch in range(c) for i in range(s) for j in range(s)]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.input_tags.two_d_array = True
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags
