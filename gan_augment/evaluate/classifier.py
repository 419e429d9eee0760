"""The secondary classifier's recipe and training loop, and its accuracy on held-out images."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import UsageError
from ..io.images import to_chw_uint8, to_hwc_numpy
from ..models import build_classifier
from ..seeds import keeps_callers_rng
from ..train.crop_flip import device_augmentation
from .augmentation import Augmented, classic_augmentation, seed_worker_augmentation
from .imbalance import logit_adjusted_loss

AUGMENT_MODES: tuple[str, ...] = ("auto", "albumentations", "device")


@dataclass(frozen=True)
class ClassifierConfig:
    """The secondary classifier's fixed recipe.

    Attributes:
        width: Channels of the first stage; the three stages have width, 2·width, 4·width.
        steps: Optimisation steps (the same for every arm).
        batch_size: Images per step.
        lr: Peak learning rate (SGD, Nesterov momentum 0.9), reached after ``warmup`` of the steps,
            then cosine decay to 0 (one cycle).
        weight_decay: L2 weight decay.
        label_smoothing: Cross-entropy label smoothing.
        warmup: Fraction of steps of linear warm-up.
        workers: DataLoader workers (the albumentations path).
        augment: Where the classic augmentation runs: ``"albumentations"`` (per image, in
            DataLoader workers), ``"device"`` (:func:`device_augmentation`, whole batches on the
            training device, the images resident there: no loader in the way of a fast GPU), or
            ``"auto"`` (``device`` on CUDA, ``albumentations`` elsewhere). Both apply the same
            augmentation to batches drawn the same way (a fresh permutation per epoch, last partial
            batch dropped).
        architecture: ``"small-resnet"`` (this module's :class:`SmallResNet`) or the name of a
            torchvision classification model (``"resnet18"``, ``"mobilenet_v3_small"``, ...),
            built untrained; ResNets get a 3×3 stride-1 stem without max-pool for small images.
        resample: At the start of every epoch after the first, call the dataset's ``resample(seed)``
            when it has one (``GANAugmentedDataset``): fresh synthetic images each epoch instead of
            one fixed bank, as docs/usage.md tells users to do.
    """

    width: int = 64
    steps: int = 2500
    batch_size: int = 256
    lr: float = 0.1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup: float = 0.15
    workers: int = 4
    architecture: str = "small-resnet"
    augment: str = "auto"
    resample: bool = False

    def __post_init__(self) -> None:
        if self.augment not in AUGMENT_MODES:
            raise UsageError(f"augment={self.augment!r}: use one of {', '.join(AUGMENT_MODES)}")

    def augment_on(self, device: torch.device) -> str:
        """The augmentation path this configuration takes on ``device``."""
        if self.augment == "auto":
            return "device" if device.type == "cuda" else "albumentations"
        return self.augment


@dataclass(frozen=True)
class Split:
    """One seed's data: labeled training images, the unlabeled pool, and the evaluation images."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    unlabeled: torch.Tensor | None
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str]


class ArrayDataset(Dataset):
    """uint8 images (N, C, H, W) served as numpy HWC arrays (albumentations' raw form) with labels;
    with ``soft`` (N, K), each item's target is its row of soft targets instead (``targets`` keeps the
    hard labels)."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: Sequence[str],
        transform: Callable[..., Any] | None = None,
        soft: torch.Tensor | None = None,
    ) -> None:
        self.images = images
        self.targets = [int(t) for t in labels]
        self.classes = list(classes)
        self.transform = transform
        self.soft = soft

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        img = to_hwc_numpy(self.images[i])  # (H, W, C)
        if self.transform is not None:
            img = self.transform(image=img)["image"]
        return img, self.targets[i] if self.soft is None else self.soft[i]


class UnitInput(nn.Module):
    """A secondary classifier as a teacher: it takes [0, 1] images, the classifier [-1, 1] ones."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x * 2 - 1).contiguous(memory_format=torch.channels_last))


def materialize(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (raw image, label) item of ``dataset`` as uint8 images (N, C, H, W) and int64 labels
    (float (N, K) when the items carry soft targets)."""
    if isinstance(dataset, ArrayDataset) and dataset.transform is None:
        labels = torch.as_tensor(dataset.targets, dtype=torch.int64) if dataset.soft is None else dataset.soft.float()
        return dataset.images, labels
    items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
    images = torch.stack([to_chw_uint8(x) for x, _ in items])
    if items and isinstance(items[0][1], torch.Tensor) and items[0][1].ndim == 1:  # soft targets (K,)
        return images, torch.stack([y.float() for _, y in items])
    return images, torch.as_tensor([int(y) for _, y in items], dtype=torch.int64)


def _batches(
    dataset: Dataset, config: ClassifierConfig, device: torch.device, flip: bool, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless augmented training batches on ``device``.

    Each epoch is a fresh permutation; the last partial batch is dropped. With ``config.resample``,
    a dataset that has ``resample`` draws fresh synthetic images before every epoch after the first.
    """
    g = torch.Generator().manual_seed(seed)
    batch = min(config.batch_size, len(dataset))  # type: ignore[arg-type]
    resample = getattr(dataset, "resample", None) if config.resample else None
    for epoch in itertools.count():
        if resample is not None and epoch > 0:
            resample(seed * 100_003 + epoch)
        if config.augment_on(device) == "device":
            if epoch == 0 or resample is not None:
                images, labels = materialize(dataset)
                images, labels = images.to(device), labels.to(device)  # resident: nothing crosses the bus per step
            perm = torch.randperm(len(labels), generator=g)
            for i in range(0, len(perm) - batch + 1, batch):
                idx = perm[i : i + batch].to(device)
                yield device_augmentation(images[idx], flip, g), labels[idx]
            continue
        if epoch == 0:
            x0, _ = dataset[0]
            aug = classic_augmentation(int(to_chw_uint8(x0).shape[-1]), flip)
            aug.set_random_seed(seed)  # albumentations keeps its own random state: seed it, or runs differ
        if epoch == 0 or resample is not None:  # workers that persist would keep the old images
            loader = _loader(dataset, aug, config, device, g, batch, persistent=resample is None)
        for x, y in loader:
            yield x.to(device, non_blocking=True), torch.as_tensor(y).to(device, non_blocking=True)


def _loader(
    dataset: Dataset,
    aug: Any,
    config: ClassifierConfig,
    device: torch.device,
    g: torch.Generator,
    batch: int,
    persistent: bool,
) -> DataLoader:
    """The albumentations path's loader: per-image augmentation ``aug`` in (seeded) workers."""
    return DataLoader(
        Augmented(dataset, aug),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        generator=g,
        num_workers=config.workers,
        persistent_workers=persistent and config.workers > 0,
        pin_memory=device.type == "cuda",
        worker_init_fn=seed_worker_augmentation,
    )


def _loss(
    config: ClassifierConfig, device: torch.device, prior: torch.Tensor | None, class_weight: torch.Tensor | None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss: cross-entropy with label smoothing, weighted by ``class_weight``, logit-adjusted
    by ``prior`` (see :func:`train_classifier`). Logit adjustment goes without label smoothing, as Menon et
    al. train it: smoothing ε caps the margin a class can win by at log((1 − ε + ε/K) / (ε/K)), 4.5 nats at
    ε = 0.1 and 10 classes, and the prior's shift between the largest and smallest class is log(ratio), 4.6
    nats at ratio 100: the largest class could never win (measured: its recall fell to 21% on MNIST-LT)."""
    ce: dict[str, Any] = {"label_smoothing": config.label_smoothing if prior is None else 0.0}
    if class_weight is not None:
        ce["weight"] = class_weight.to(device).float()
    if prior is None:
        return lambda logits, y: F.cross_entropy(logits, y, **ce)
    adjust = prior.to(device).float()
    return lambda logits, y: logit_adjusted_loss(logits.float(), y, adjust, **ce)


def _sgd(model: nn.Module, config: ClassifierConfig) -> torch.optim.SGD:
    """SGD with Nesterov momentum, weight decay on the weights (not on biases and norms)."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        momentum=0.9,
        nesterov=True,
    )


def _one_cycle(config: ClassifierConfig) -> Callable[[int], float]:
    """The learning rate at each step: a linear warm-up over ``config.warmup`` of the steps, then cosine to 0."""
    warm = max(1, int(config.steps * config.warmup))

    def lr_at(step: int) -> float:
        if step < warm:
            return config.lr * (step + 1) / warm
        t = (step - warm) / max(1, config.steps - warm)
        return config.lr * 0.5 * (1 + np.cos(np.pi * t))

    return lr_at


@keeps_callers_rng
def train_classifier(
    dataset: Dataset,
    channels: int,
    num_classes: int,
    config: ClassifierConfig,
    device: torch.device,
    seed: int,
    flip: bool = True,
    init: nn.Module | None = None,
    prior: torch.Tensor | None = None,
    class_weight: torch.Tensor | None = None,
) -> nn.Module:
    """Train the secondary classifier for exactly ``config.steps`` steps (``init``: go on training that
    model, with a fresh optimiser and learning-rate cycle, instead of a new one).

    The loss is cross-entropy with ``config.label_smoothing``; logit-adjusted (tau 1, no smoothing) with
    ``prior`` (K class frequencies); with ``class_weight`` (K), each image weighs its class (re-weighting).

    ``dataset`` yields raw (image, label) items: uint8 HWC arrays (as :class:`ArrayDataset` and a
    :class:`GANAugmentedDataset` over it without a transform give them), CHW uint8 tensors or PIL
    images; a label may be a soft target (a float vector over the classes, as
    ``GANAugmentedDataset(labels="soft")`` gives them). The classic augmentation (padded random
    crop, horizontal flip when ``flip``) is applied here, where ``config.augment`` says.
    """
    torch.manual_seed(seed)
    model = init if init is not None else build_classifier(config.architecture, channels, num_classes, config.width)
    model = model.to(device).to(memory_format=torch.channels_last)
    opt, lr_at = _sgd(model, config), _one_cycle(config)
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    loss_of = _loss(config, device, prior, class_weight)
    model.train()
    batches = _batches(dataset, config, device, flip, seed)
    for step in range(config.steps):
        x, y = next(batches)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        with amp:
            loss = loss_of(model(x.contiguous(memory_format=torch.channels_last)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    batches.close()  # ends the loader's workers
    return model.eval()
