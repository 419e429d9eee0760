"""The evidence: does GAN augmentation raise a secondary classifier's accuracy? Arms, classifier, statistics."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, get_worker_info

from .checkpoint import atomic_write
from .config import ModelConfig, TrainConfig
from .data import ImageData
from .dataset import GANAugmentedDataset
from .features import DiscriminatorFeatures
from .progress import Reporter
from .sampling import load_generator, sample
from .training import fit_data

ARMS: tuple[str, ...] = ("baseline", "gan-per-class", "gan-conditional", "d-features", "ssl")
AUGMENT_MODES: tuple[str, ...] = ("auto", "albumentations", "device")


# ----------------------------------------------------------------------------- data
def memory_data(
    images: torch.Tensor, labels: torch.Tensor, class_names: list[str], unlabeled: torch.Tensor | None = None, tag: str = "memory"
) -> ImageData:
    """An :class:`ImageData` from tensors (labeled uint8 (N, C, H, W), optional unlabeled), for ``fit_data``."""
    if unlabeled is not None and len(unlabeled):
        all_images = torch.cat([images, unlabeled])
        all_labels = torch.cat([labels.long(), torch.full((len(unlabeled),), -1, dtype=torch.int64)])
    else:
        all_images, all_labels = images, labels.long()
    return ImageData(all_images.contiguous(), all_labels, list(class_names), [f"{tag}:{i}" for i in range(len(all_labels))])


class ArrayDataset(Dataset):
    """uint8 images (N, C, H, W) served as numpy HWC arrays (albumentations' raw form) with labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], transform: Callable[..., Any] | None = None) -> None:
        self.images = images
        self.targets = [int(t) for t in labels]
        self.classes = list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img = self.images[i].permute(1, 2, 0).numpy()  # (H, W, C)
        if self.transform is not None:
            img = self.transform(image=img)["image"]
        return img, self.targets[i]


def classic_augmentation(image_size: int, flip: bool) -> Any:
    """The baseline's augmentation (albumentations): reflect-pad by 1/8, random crop, horizontal flip.

    :func:`device_augmentation` is the same augmentation done on a whole batch on the training device.
    """
    import albumentations as A
    import cv2
    from albumentations.pytorch import ToTensorV2

    pad = image_size + 2 * max(1, image_size // 8)
    return A.Compose(
        [
            A.PadIfNeeded(pad, pad, border_mode=cv2.BORDER_REFLECT_101),
            A.RandomCrop(image_size, image_size),
            A.HorizontalFlip(p=0.5 if flip else 0.0),
            A.Normalize(mean=0.5, std=0.5, max_pixel_value=255.0),
            ToTensorV2(),
        ]
    )


def crop_pad(image_size: int) -> int:
    """Padding on each side before the random crop: 1/8 of the image size (at least 1 pixel)."""
    return max(1, image_size // 8)


def crop_flip(padded: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flipped: torch.Tensor, size: int) -> torch.Tensor:
    """Crop ``size``×``size`` windows at (``top``, ``left``) from each padded image (B, C, H', W'), mirrored
    where ``flipped``; one gather for the whole batch. Returns (B, C, size, size)."""
    b = padded.shape[0]
    dev = padded.device
    ar = torch.arange(size, device=dev)
    rows = top.to(dev)[:, None] + ar  # (B, size)
    cols = left.to(dev)[:, None] + torch.where(flipped.to(dev)[:, None], size - 1 - ar, ar)
    out = padded[torch.arange(b, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B, size, size, C)
    return out.permute(0, 3, 1, 2)


def device_augmentation(images: torch.Tensor, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """:func:`classic_augmentation` for a uint8 batch (B, C, H, W) on any device, in one pass.

    Reflect-pads by :func:`crop_pad` (OpenCV's BORDER_REFLECT_101, as the albumentations pipeline),
    crops a random window of the original size, flips half the images horizontally when ``flip``,
    and scales to [-1, 1]. Random draws come from ``generator`` (a CPU generator).
    """
    b, _, h, w = images.shape
    if h != w:
        raise ValueError(f"device augmentation needs square images, got {h}×{w}")
    pad = crop_pad(h)
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="reflect")
    top = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    flipped = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    return crop_flip(padded, top, left, flipped, h).div_(127.5).sub_(1)


# ----------------------------------------------------------------------------- the secondary classifier
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

    def __post_init__(self) -> None:
        if self.augment not in AUGMENT_MODES:
            raise ValueError(f"augment={self.augment!r}: use one of {', '.join(AUGMENT_MODES)}")

    def augment_on(self, device: torch.device) -> str:
        """The augmentation path this configuration takes on ``device``."""
        if self.augment == "auto":
            return "device" if device.type == "cuda" else "albumentations"
        return self.augment


def classifier_names() -> list[str]:
    """The accepted ``architecture`` values: ``small-resnet`` and torchvision's classification models."""
    import torchvision

    return ["small-resnet", *sorted(torchvision.models.list_models(module=torchvision.models))]


def check_classifier_name(architecture: str) -> None:
    """Raise ValueError (naming close matches) unless ``architecture`` is in :func:`classifier_names`."""
    names = classifier_names()
    if architecture not in names:
        close = [n for n in names if architecture.lower()[:4] in n][:6]
        hint = f" (did you mean {', '.join(close)}?)" if close else ": see torchvision.models.list_models()"
        raise ValueError(f"unknown classifier {architecture!r}: use small-resnet or a torchvision model name{hint}")


def build_classifier(architecture: str, channels: int, num_classes: int, width: int = 64) -> nn.Module:
    """An untrained classifier for (N, channels, H, W) images in [-1, 1] (no weights are downloaded).

    Raises:
        ValueError: ``architecture`` is neither ``small-resnet`` nor a torchvision classification model.
    """
    check_classifier_name(architecture)
    if architecture == "small-resnet":
        return SmallResNet(channels, num_classes, width)
    import torchvision

    model = torchvision.models.get_model(architecture, weights=None, num_classes=num_classes)
    if isinstance(model, torchvision.models.ResNet):
        # The CIFAR-style stem: 3×3 stride 1, no max-pool (a 7×7/2 stem + pool loses 32×32 images' detail).
        model.conv1 = nn.Conv2d(channels, model.conv1.out_channels, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif channels != 3:
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        if first.in_channels != 3:
            raise ValueError(f"classifier {architecture!r}: cannot adapt its first layer to {channels}-channel images")
        model = nn.Sequential(nn.Conv2d(channels, 3, 1), model)  # learnable channel lift for grayscale input
    return model


class _Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class SmallResNet(nn.Module):
    """A ResNet for small images: stem, three stages (conv → BN → ReLU → max-pool → residual block), linear head."""

    def __init__(self, channels: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width]
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        c_in = width
        for c in widths:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2), _Residual(c)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))  # (B, K)


def _to_chw_uint8(image: Any) -> torch.Tensor:
    """One raw item (HWC or HW numpy array, CHW uint8 tensor, or PIL image) as a uint8 (C, H, W) tensor."""
    if isinstance(image, torch.Tensor):
        t = image if image.ndim == 3 else image[None]
    else:
        arr = np.asarray(image)
        t = torch.from_numpy(np.ascontiguousarray(arr if arr.ndim == 3 else arr[..., None])).permute(2, 0, 1)
    if t.dtype != torch.uint8:
        raise TypeError(f"the classifier expects raw uint8 images, got {t.dtype}: build the dataset without a transform")
    return t


def materialize(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (raw image, label) item of ``dataset`` as uint8 images (N, C, H, W) and int64 labels."""
    if isinstance(dataset, ArrayDataset) and dataset.transform is None:
        return dataset.images, torch.as_tensor(dataset.targets, dtype=torch.int64)
    items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
    return torch.stack([_to_chw_uint8(x) for x, _ in items]), torch.as_tensor([int(y) for _, y in items], dtype=torch.int64)


class _Augmented(Dataset):
    """A raw dataset with the albumentations pipeline applied to each item (the loader path)."""

    def __init__(self, dataset: Dataset, transform: Any) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, int]:
        x, y = self.dataset[i]
        arr = _to_chw_uint8(x).permute(1, 2, 0).numpy()
        return self.transform(image=arr)["image"], int(y)


def _seed_worker_augmentation(worker_id: int) -> None:
    """Give each loader worker's copy of the albumentations pipeline its own seed (from the loader's
    seeded generator), so workers neither repeat each other's draws nor differ between runs."""
    info = get_worker_info()
    if info is not None:
        info.dataset.transform.set_random_seed(info.seed % 2**32)


def _batches(dataset: Dataset, config: ClassifierConfig, device: torch.device, flip: bool, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless augmented training batches on ``device``: each epoch a fresh permutation, the last partial batch dropped."""
    g = torch.Generator().manual_seed(seed)
    batch = min(config.batch_size, len(dataset))  # type: ignore[arg-type]
    if config.augment_on(device) == "device":
        images, labels = materialize(dataset)
        images, labels = images.to(device), labels.to(device)  # resident: nothing crosses the bus per step
        while True:
            perm = torch.randperm(len(labels), generator=g)
            for i in range(0, len(perm) - batch + 1, batch):
                idx = perm[i : i + batch].to(device)
                yield device_augmentation(images[idx], flip, g), labels[idx]
    x0, _ = dataset[0]
    aug = classic_augmentation(int(_to_chw_uint8(x0).shape[-1]), flip)
    aug.set_random_seed(seed)  # albumentations keeps its own random state: seed it, or runs differ
    loader = DataLoader(
        _Augmented(dataset, aug), batch_size=batch, shuffle=True, drop_last=True, generator=g,
        num_workers=config.workers, persistent_workers=config.workers > 0, pin_memory=device.type == "cuda",
        worker_init_fn=_seed_worker_augmentation,
    )
    while True:
        for x, y in loader:
            yield x.to(device, non_blocking=True), torch.as_tensor(y).to(device, non_blocking=True)


def train_classifier(
    dataset: Dataset, channels: int, num_classes: int, config: ClassifierConfig, device: torch.device, seed: int,
    flip: bool = True,
) -> nn.Module:
    """Train the secondary classifier for exactly ``config.steps`` steps.

    ``dataset`` yields raw (image, label) items: uint8 HWC arrays (as :class:`ArrayDataset` and a
    :class:`GANAugmentedDataset` over it without a transform give them), CHW uint8 tensors or PIL
    images. The classic augmentation (padded random crop, horizontal flip when ``flip``) is applied
    here, where ``config.augment`` says.
    """
    torch.manual_seed(seed)
    model = build_classifier(config.architecture, channels, num_classes, config.width)
    model = model.to(device).to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, momentum=0.9, nesterov=True,
    )
    warm = max(1, int(config.steps * config.warmup))

    def lr_at(step: int) -> float:
        if step < warm:
            return config.lr * (step + 1) / warm
        t = (step - warm) / max(1, config.steps - warm)
        return config.lr * 0.5 * (1 + np.cos(np.pi * t))

    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    model.train()
    batches = _batches(dataset, config, device, flip, seed)
    for step in range(config.steps):
        x, y = next(batches)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        with amp:
            loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y, label_smoothing=config.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    batches.close()  # ends the loader's workers
    return model.eval()


@torch.no_grad()
def classifier_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    """Top-1 accuracy of ``model`` on uint8 images (N, C, H, W), normalised as in training."""
    correct = 0
    for i in range(0, len(images), 1024):
        x = images[i : i + 1024].to(device).float().div(127.5).sub(1).to(memory_format=torch.channels_last)
        correct += int((model(x).argmax(1).cpu() == labels[i : i + 1024]).sum())
    return correct / max(1, len(images))


# ----------------------------------------------------------------------------- generator quality
def diversity_ratio(synthetic: torch.Tensor, real: torch.Tensor, max_n: int = 200) -> float:
    """Mean pairwise L2 distance among synthetic images over that among real ones (≈1 good; ≪1 collapse)."""

    def mean_dist(x: torch.Tensor) -> float:
        x = x[:max_n].flatten(1).float() / 255
        if len(x) < 2:
            return float("nan")
        d = torch.cdist(x, x)
        return float(d.sum() / (len(x) * (len(x) - 1)))

    return mean_dist(synthetic) / mean_dist(real)


# ----------------------------------------------------------------------------- arms
@dataclass
class Split:
    """One seed's data: labeled training images, the unlabeled pool, and the evaluation images."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    unlabeled: torch.Tensor | None
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str]


@dataclass
class ArmSettings:
    """What the arms share: GAN and classifier recipes, the synthetic ratio, flips, the device."""

    gan: TrainConfig
    classifier: ClassifierConfig
    synthetic_ratio: float = 0.5
    flip: bool = True
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    quality: bool = True  # CAS, real-classifier accuracy on samples, diversity


def run_seed(
    split: Split,
    arms: Sequence[str],
    settings: ArmSettings,
    seed: int,
    work: Path,
    reporter: Reporter,
    runs: dict[str, Path] | None = None,
) -> list[dict[str, Any]]:
    """Train and score every arm for one seed; returns one record per arm (plus generator quality).

    ``runs`` maps a GAN mode (``per-class``, ``conditional``, ``unconditional``) to an existing run
    to use instead of training one.
    """
    runs = runs or {}
    dev = settings.device
    k = len(split.class_names)
    channels = int(split.train_images.shape[1])
    size = int(split.train_images.shape[-1])
    base = ArrayDataset(split.train_images, split.train_labels, split.class_names)
    records: list[dict[str, Any]] = []
    baseline_model: nn.Module | None = None
    gan_cfg = settings.gan.replace(seed=seed, image_size=size, channels=channels, model=settings.gan.model)
    unl = split.unlabeled

    cached: list[ImageData] = []

    def gan_data() -> ImageData:
        """The seed's labeled + unlabeled images for fit_data, concatenated once for every GAN arm."""
        if not cached:
            cached.append(memory_data(split.train_images, split.train_labels, split.class_names, unl, tag=f"seed{seed}"))
        return cached[0]

    def record(arm: str, acc: float, t0: float, **extra: Any) -> None:
        rec = {"arm": arm, "seed": seed, "accuracy": acc, "seconds": round(time.perf_counter() - t0, 2), **extra}
        records.append(rec)
        reporter.message(f"  seed {seed} {arm}: accuracy {acc:.4f} ({rec['seconds']:.0f} s)")

    for arm in arms:
        t0 = time.perf_counter()
        if arm == "baseline":
            baseline_model = train_classifier(base, channels, k, settings.classifier, dev, seed, settings.flip)
            record(arm, classifier_accuracy(baseline_model, split.test_images, split.test_labels, dev), t0)
        elif arm in ("gan-per-class", "gan-conditional"):
            mode = arm.split("-", 1)[1]
            run = runs.get(mode) or work / f"{arm}-seed{seed}"
            if mode not in runs:
                data = gan_data()
                fit_data(data, run, gan_cfg.replace(mode=mode), device=dev, overwrite=True, reporter=Reporter(quiet=True))
            ds = GANAugmentedDataset(base, run, synthetic_ratio=settings.synthetic_ratio, device=dev, seed=seed)
            model = train_classifier(ds, channels, k, settings.classifier, dev, seed, settings.flip)
            extra: dict[str, Any] = {"synthetic_ratio": settings.synthetic_ratio}
            if settings.quality:
                extra.update(generator_quality(run, split, baseline_model, settings, seed))
            record(arm, classifier_accuracy(model, split.test_images, split.test_labels, dev), t0, **extra)
        elif arm == "d-features":
            run = runs.get("unconditional") or work / f"unconditional-seed{seed}"
            if "unconditional" not in runs:
                data = gan_data()
                fit_data(data, run, gan_cfg.replace(mode="unconditional"), device=dev, overwrite=True, reporter=Reporter(quiet=True))
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            pipe = make_pipeline(DiscriminatorFeatures(run, device=str(dev)), StandardScaler(), LogisticRegression(max_iter=2000))
            pipe.fit(split.train_images, split.train_labels.numpy())
            acc = float((pipe.predict(split.test_images) == split.test_labels.numpy()).mean())
            record(arm, acc, t0)
        elif arm == "ssl":
            from .classify import train_ssl

            data = gan_data()
            result = train_ssl(data, gan_cfg, dev, 0.0, Reporter(quiet=True))
            from .ssl import SSLDiscriminator

            d = SSLDiscriminator(ModelConfig.from_dict(result["state"]["model_config"]), k)
            d.load_state_dict(result["state"]["d"])
            d = d.to(dev).eval()
            with torch.no_grad():
                pred = torch.cat([d(split.test_images[i : i + 1024].to(dev).float().div(127.5).sub(1)).argmax(1).cpu() for i in range(0, len(split.test_images), 1024)])
            record(arm, float((pred == split.test_labels).float().mean()), t0)
        else:
            raise ValueError(f"unknown arm {arm!r}: choose from {', '.join(ARMS)}")
    return records


def ratio_sweep(
    split: Split, run: Path, ratios: Sequence[float], settings: ArmSettings, seed: int, reporter: Reporter,
    filter_top: float | None = None,
) -> list[dict[str, Any]]:
    """The secondary classifier trained with ``run``'s synthetic images at each ratio (the GAN reused).

    ``filter_top`` keeps only that top fraction of the generator's candidates by discriminator
    score (``GANAugmentedDataset(filter_top=...)``); records then carry it.
    """
    dev = settings.device
    base = ArrayDataset(split.train_images, split.train_labels, split.class_names)
    out = []
    for r in ratios:
        t0 = time.perf_counter()
        ds = GANAugmentedDataset(base, run, synthetic_ratio=r, device=dev, seed=seed, filter_top=filter_top)
        model = train_classifier(ds, int(split.train_images.shape[1]), len(split.class_names), settings.classifier, dev, seed, settings.flip)
        acc = classifier_accuracy(model, split.test_images, split.test_labels, dev)
        rec = {"arm": "gan-per-class", "seed": seed, "accuracy": acc, "synthetic_ratio": r, "seconds": round(time.perf_counter() - t0, 2)}
        out.append({**rec, "filter_top": filter_top} if filter_top is not None else rec)
        reporter.message(f"  seed {seed} gan-per-class at ratio {r}{f', D-filtered top {filter_top}' if filter_top else ''}: accuracy {acc:.4f}")
    return out


def generator_quality(
    run: Path, split: Split, real_model: nn.Module | None, settings: ArmSettings, seed: int
) -> dict[str, float]:
    """Classification accuracy score (train on synthetic only, test on real), the real-data classifier's
    accuracy on synthetic images, and the mean per-class diversity ratio (min over classes too)."""
    dev = settings.device
    k = len(split.class_names)
    gen, _ = load_generator(run, device=dev)
    n_per_class = max(1, int(np.bincount(split.train_labels.numpy(), minlength=k).max()))
    n_per_class = max(n_per_class, 100)
    labels = torch.arange(k).repeat_interleave(n_per_class)
    synth = sample(gen, len(labels), labels=labels, seed=10_000 + seed)
    out: dict[str, float] = {}
    syn_ds = ArrayDataset(synth.cpu(), labels, split.class_names)
    cas_model = train_classifier(syn_ds, synth.shape[1], k, settings.classifier, dev, seed, settings.flip)
    out["cas"] = classifier_accuracy(cas_model, split.test_images, split.test_labels, dev)
    if real_model is not None:
        out["real_clf_on_synthetic"] = classifier_accuracy(real_model, synth, labels, dev)
    ratios = [
        diversity_ratio(synth[labels == c], split.test_images[split.test_labels == c]) for c in range(k)
    ]
    valid = [r for r in ratios if not np.isnan(r)]  # a class with < 2 evaluation images has no ratio
    out["diversity"] = float(np.mean(valid)) if valid else float("nan")
    out["diversity_min"] = float(np.min(valid)) if valid else float("nan")
    return out


# ----------------------------------------------------------------------------- statistics
def _paired_gain(accs: dict[int, float], base: dict[int, float]) -> tuple[float, float] | None:
    """Mean gain of ``accs`` over ``base`` on the seeds both have, and its 95% t-interval half-width
    (nan with one seed); None when no seed is shared."""
    from scipy import stats

    d = np.array([accs[s] - base[s] for s in accs if s in base])
    if not len(d):
        return None
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return float(d.mean()), half


def summarize(records: list[dict[str, Any]], group: Sequence[str] = ("dataset", "labels_per_class")) -> list[dict[str, Any]]:
    """Mean ± std per arm (and group), and each arm's gain over ``baseline`` with a paired 95% t-interval."""
    keys = sorted({tuple(r.get(g) for g in group) for r in records}, key=str)
    rows = []
    for key in keys:
        sub = [r for r in records if tuple(r.get(g) for g in group) == key]
        base = {r["seed"]: r["accuracy"] for r in sub if r["arm"] == "baseline"}
        for arm in [a for a in ARMS if any(r["arm"] == a for r in sub)]:
            accs = {r["seed"]: r["accuracy"] for r in sub if r["arm"] == arm}
            a = np.array(list(accs.values()))
            row: dict[str, Any] = dict(zip(group, key))
            row.update({"arm": arm, "n": len(a), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0})
            paired = _paired_gain(accs, base) if arm != "baseline" else None
            if paired is not None:
                row.update({"gain": paired[0], "gain_ci95": paired[1]})
            for q in ("cas", "real_clf_on_synthetic", "diversity", "diversity_min"):
                vals = [r[q] for r in sub if r["arm"] == arm and q in r]
                if vals:
                    row[q] = float(np.mean(vals))
            rows.append(row)
    return rows


def ratio_table(records: list[dict[str, Any]]) -> str:
    """Markdown table of a synthetic-ratio sweep: accuracy and paired gain over the baseline per ratio."""
    lines = ["| dataset | labels_per_class | synthetic ratio | D filter (top) | seeds | accuracy (mean ± std) | gain vs baseline (95% CI) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    keys = sorted({(r["dataset"], r["labels_per_class"]) for r in records}, key=str)
    for ds, n in keys:
        sub = [r for r in records if r["dataset"] == ds and r["labels_per_class"] == n]
        base = {r["seed"]: r["accuracy"] for r in sub if r["arm"] == "baseline"}
        variants = {(r["synthetic_ratio"], r.get("filter_top") or 0.0) for r in sub if r["arm"] != "baseline"}
        for ratio, top in sorted(variants):
            accs = {r["seed"]: r["accuracy"] for r in sub
                    if r["arm"] != "baseline" and r["synthetic_ratio"] == ratio and (r.get("filter_top") or 0.0) == top}
            a = np.array(list(accs.values()))
            paired = _paired_gain(accs, base)
            std = a.std(ddof=1) if len(a) > 1 else 0.0
            gain = f"{100 * paired[0]:+.1f} ± {100 * paired[1]:.1f} pts" if paired else ""
            lines.append(f"| {ds} | {n} | {ratio} | {top or '–'} | {len(a)} | {a.mean():.4f} ± {std:.4f} | {gain} |")
    return "\n".join(lines)


def verdict(row: dict[str, Any]) -> str:
    """A plain sentence about one arm's gain over the baseline."""
    gain, half = row.get("gain"), row.get("gain_ci95")
    if gain is None:
        return ""
    pts, h = 100 * gain, 100 * half if half == half else float("nan")
    if h == h and gain - half > 0:
        return f"{row['arm']} raised accuracy by {pts:.1f} ± {h:.1f} points"
    if h == h and gain + half < 0:
        return f"{row['arm']} lowered accuracy by {-pts:.1f} ± {h:.1f} points: do not use it for this data"
    return f"{row['arm']}: no measurable gain ({pts:+.1f} ± {h:.1f} points): do not use it for this data"


def markdown_table(rows: list[dict[str, Any]], group: Sequence[str] = ("dataset", "labels_per_class")) -> str:
    """The summary as a Markdown table."""
    head = [*group, "arm", "seeds", "accuracy (mean ± std)", "gain vs baseline (95% CI)", "CAS", "real clf on synth.", "diversity"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        gain = f"{100 * r['gain']:+.1f} ± {100 * r['gain_ci95']:.1f} pts" if "gain" in r else ""
        q = [f"{r[k]:.3f}" if k in r else "" for k in ("cas", "real_clf_on_synthetic", "diversity")]
        lines.append("| " + " | ".join([*(str(r[g]) for g in group), r["arm"], str(r["n"]), f"{r['mean']:.4f} ± {r['std']:.4f}", gain, *q]) + " |")
    return "\n".join(lines)


def plot_accuracy(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Accuracy against label budget, one line per arm (error bars: std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm in ARMS:
        pts = sorted((r["labels_per_class"], r["mean"], r["std"]) for r in rows if r["arm"] == arm)
        if pts:
            x, m, s = zip(*pts)
            ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=arm)
    ax.set_xscale("log")
    ax.set_xlabel("labels per class")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    plt.close(fig)


def settings_dict(settings: ArmSettings) -> dict[str, Any]:
    """The protocol's settings as plain data for the JSON report."""
    return {
        "gan": settings.gan.to_dict(),
        "classifier": {**asdict(settings.classifier), "augment_path": settings.classifier.augment_on(settings.device)},
        "synthetic_ratio": settings.synthetic_ratio,
        "flip": settings.flip,
        "device": str(settings.device),
    }


def stratified_holdout(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) indices with ``fraction`` of each class held out (at least one image each side)."""
    rng = np.random.default_rng(seed)
    lab = labels.numpy()
    train, test = [], []
    for c in np.unique(lab):
        idx = rng.permutation(np.flatnonzero(lab == c))
        if len(idx) < 2:
            raise ValueError(f"class {c} has {len(idx)} image: evaluation needs at least 2 per class")
        n_test = min(len(idx) - 1, max(1, int(round(len(idx) * fraction))))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return torch.from_numpy(np.sort(np.concatenate(train))), torch.from_numpy(np.sort(np.concatenate(test)))


def evaluate_folders(
    labeled: str | Path,
    unlabeled: str | Path | None,
    out: str | Path,
    arms: Sequence[str] = ("baseline", "gan-per-class"),
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.3,
    settings: ArmSettings | None = None,
    run: str | Path | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """The limited-labels A/B on a user's own folders: held-out split per seed, arms, table, plot.

    With ``run``, that run serves the arm of its mode instead of a GAN trained per seed (faster,
    but the run has seen the held-out images if it was trained on the same folder: optimistic).

    Returns:
        The report written to ``out/evaluation.json`` (summary rows, runs, verdicts).
    """
    from .checkpoint import atomic_write_json, atomic_write_text
    from .data import load_image_data
    from .sampling import load_generator as _load

    reporter = reporter or Reporter()
    settings = settings or ArmSettings(gan=TrainConfig(), classifier=ClassifierConfig())
    out_dir = Path(out)
    runs: dict[str, Path] = {}
    image_size, channels = settings.gan.image_size, settings.gan.channels
    if run is not None:
        _, info = _load(run, device="cpu")
        image_size, channels = info.image_size, info.channels
        runs[info.mode] = Path(run)
        reporter.message(f"using {run} ({info.mode}) for its arm; it may have seen the held-out images: gains are optimistic")
    labeled_data = load_image_data(labeled, None, image_size=image_size, channels=channels)
    unlabeled_images = None
    if unlabeled is not None:
        from .classify import decode_folder

        _, unlabeled_images, _ = decode_folder(unlabeled, image_size, int(labeled_data.images.shape[1]))
    reporter.message(f"{len(labeled_data.labels)} labeled images in {len(labeled_data.class_names)} classes; "
                     f"{0 if unlabeled_images is None else len(unlabeled_images)} unlabeled; arms: {', '.join(arms)}")
    settings.gan = settings.gan.replace(image_size=image_size)
    records = []
    for seed in seeds:
        tr, te = stratified_holdout(labeled_data.labels, test_fraction, seed)
        split = Split(labeled_data.images[tr], labeled_data.labels[tr], unlabeled_images,
                      labeled_data.images[te], labeled_data.labels[te], labeled_data.class_names)
        for rec in run_seed(split, arms, settings, seed, out_dir / "runs", reporter, runs):
            records.append({"dataset": Path(labeled).name, "labels_per_class": int(np.bincount(split.train_labels.numpy()).min()), **rec})
    rows = summarize(records)
    verdicts = [v for v in (verdict(r) for r in rows) if v]
    report = {"settings": settings_dict(settings), "seeds": list(seeds), "test_fraction": test_fraction,
              "summary": rows, "runs": records, "verdicts": verdicts}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "evaluation.json", report)
    atomic_write_text(out_dir / "evaluation.md", markdown_table(rows) + "\n\n" + "\n".join(f"- {v}" for v in verdicts) + "\n")
    plot_accuracy(rows, out_dir / "evaluation.png", f"{Path(labeled).name}: accuracy by arm")
    return report
