"""The secondary classifier's classic augmentation: the batched device path equals the albumentations one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda

from gan_augment.config import SSLConfig
from gan_augment.evaluate import (
    ArrayDataset,
    ClassifierConfig,
    classic_augmentation,
    crop_flip,
    crop_pad,
    device_augmentation,
    materialize,
    train_classifier,
)


@pytest.mark.parametrize("size,channels", [(16, 3), (28, 1), (32, 3)])
def test_crop_flip_matches_albumentations_window(size: int, channels: int) -> None:
    """For the same window and flip, the batched gather gives albumentations' pixels (reflect-101 padding)."""
    import albumentations as A
    import cv2

    rng = np.random.default_rng(size)
    images = rng.integers(0, 256, (6, size, size, channels), dtype=np.uint8)
    pad = crop_pad(size)
    top = torch.tensor(rng.integers(0, 2 * pad + 1, 6))
    left = torch.tensor(rng.integers(0, 2 * pad + 1, 6))
    flipped = torch.tensor([False, True, False, True, True, False])
    padded = F.pad(torch.from_numpy(images).permute(0, 3, 1, 2).float(), (pad,) * 4, mode="reflect")
    ours = crop_flip(padded, top, left, flipped, size)
    for i in range(6):
        t, lft = int(top[i]), int(left[i])
        ref = A.Compose(
            [
                A.PadIfNeeded(size + 2 * pad, size + 2 * pad, border_mode=cv2.BORDER_REFLECT_101),
                A.Crop(x_min=lft, y_min=t, x_max=lft + size, y_max=t + size),
                A.HorizontalFlip(p=1.0 if flipped[i] else 0.0),
            ]
        )(image=images[i])["image"]
        ref = ref if ref.ndim == 3 else ref[..., None]
        assert torch.equal(ours[i], torch.from_numpy(ref).permute(2, 0, 1).float()), i


def test_device_augmentation_draws_every_window_and_flip() -> None:
    """Every output is one of the (top, left, flip) windows; all of them occur; the scale is [-1, 1]."""
    size = 8
    pad = crop_pad(size)
    image = torch.arange(size * size, dtype=torch.uint8).view(1, 1, size, size)  # distinct pixels
    out = device_augmentation(image.expand(3000, -1, -1, -1), flip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3000, 1, size, size) and out.min() >= -1 and out.max() <= 1
    padded = F.pad(image.float(), (pad,) * 4, mode="reflect")
    windows = [(t, lft, f) for t in range(2 * pad + 1) for lft in range(2 * pad + 1) for f in (False, True)]
    cands = torch.cat(
        [crop_flip(padded, torch.tensor([t]), torch.tensor([lft]), torch.tensor([f]), size) for t, lft, f in windows]
    )
    cands = cands.div(127.5).sub(1).flatten(1)
    match = (out.flatten(1)[:, None, :] - cands[None]).abs().amax(-1) < 1e-6  # (3000, windows)
    assert bool(match.any(1).all())
    counts = match.float().argmax(1).bincount(minlength=len(windows))
    assert int(counts.min()) > 0.5 * 3000 / len(windows)  # roughly uniform over windows and flips
    no_flip = device_augmentation(image.expand(500, -1, -1, -1), flip=False, generator=torch.Generator().manual_seed(0))
    flipped_only = [
        i
        for i, w in enumerate(windows)
        if w[2] and not any(torch.equal(cands[i], cands[j]) for j, v in enumerate(windows) if not v[2])
    ]
    hits = (no_flip.flatten(1)[:, None, :] - cands[flipped_only][None]).abs().amax(-1) < 1e-6
    assert not bool(hits.any())


def test_materialize_reads_raw_items() -> None:
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 1, 1])
    ds = ArrayDataset(images, labels, ["a", "b"])
    x, y = materialize(ds)
    assert x is images and torch.equal(y, labels)

    class Items(torch.utils.data.Dataset):  # a generic dataset of HWC arrays and of grayscale HW arrays
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
            return images[i, 0].numpy(), int(labels[i])

    x, y = materialize(Items())
    assert x.shape == (5, 1, 8, 8) and torch.equal(x[:, 0], images[:, 0]) and torch.equal(y, labels)
    with pytest.raises(TypeError, match="raw uint8"):
        materialize(ArrayDataset(images, labels, ["a", "b"], transform=classic_augmentation(8, True)))


def dark_and_bright() -> torch.Tensor:
    """16 dark then 16 bright random 16×16 RGB images (uint8)."""
    gen = torch.Generator().manual_seed(0)
    dark = torch.randint(0, 60, (16, 3, 16, 16), generator=gen, dtype=torch.uint8)
    bright = torch.randint(190, 256, (16, 3, 16, 16), generator=gen, dtype=torch.uint8)
    return torch.cat([dark, bright])


def predictions_on_dark_then_bright(ds: ArrayDataset, augment: str) -> list[int]:
    """Train the classifier on ``ds`` (40 steps) and predict 4 plain dark then 4 plain bright images."""
    cfg = ClassifierConfig(steps=40, width=4, batch_size=8, workers=0, augment=augment)
    model = train_classifier(ds, 3, 2, cfg, torch.device("cpu"), seed=0)
    test = torch.cat(
        [torch.full((4, 3, 16, 16), 20, dtype=torch.uint8), torch.full((4, 3, 16, 16), 230, dtype=torch.uint8)]
    )
    with torch.no_grad():
        return model(test.float().div(127.5).sub(1)).argmax(1).tolist()


@pytest.mark.parametrize("augment", ["device", "albumentations"])
def test_both_paths_learn_a_separable_task(augment: str) -> None:
    """Dark against bright images: either augmentation path trains a classifier that gets them all right."""
    ds = ArrayDataset(dark_and_bright(), torch.tensor([0] * 16 + [1] * 16), ["dark", "bright"])
    assert predictions_on_dark_then_bright(ds, augment) == [0] * 4 + [1] * 4


@pytest.mark.parametrize("augment", ["device", "albumentations"])
def test_soft_targets_drive_training(augment: str) -> None:
    """Soft targets (as GANAugmentedDataset(labels="soft") gives them) are what the classifier learns: targets
    that call dark images "bright" with 0.9 teach it exactly that, whatever the hard labels say."""
    hard = torch.tensor([0] * 16 + [1] * 16)
    soft = torch.tensor([[0.1, 0.9]] * 16 + [[0.9, 0.1]] * 16)
    ds = ArrayDataset(dark_and_bright(), hard, ["dark", "bright"], soft=soft)
    images, targets = materialize(ds)
    assert targets.dtype == torch.float32 and torch.equal(targets, soft)
    assert predictions_on_dark_then_bright(ds, augment) == [1] * 4 + [0] * 4


class Resampling(torch.utils.data.Dataset):
    """A dataset that records the seeds of its resample() calls and changes its images on each."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.seeds: list[int] = []
        self.served: set[int] = set()

    def resample(self, seed: int) -> None:
        self.seeds.append(seed)
        self.images = torch.full_like(self.images, len(self.seeds))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        self.served.add(int(self.images[i].flatten()[0]))
        return self.images[i], int(self.labels[i])


@pytest.mark.parametrize("augment", ["device", "albumentations"])
@pytest.mark.parametrize("resample", [True, False])
def test_resample_each_epoch(augment: str, resample: bool) -> None:
    """ClassifierConfig(resample=True) draws a fresh bank before every epoch after the first (8 images at
    batch 4: two steps an epoch, so 6 steps are 3 epochs); off, the dataset is never asked."""
    ds = Resampling(torch.zeros(8, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1] * 4))
    cfg = ClassifierConfig(steps=6, width=4, batch_size=4, workers=0, augment=augment, resample=resample)
    train_classifier(ds, 1, 2, cfg, torch.device("cpu"), seed=3)
    assert len(ds.seeds) == (2 if resample else 0) and len(set(ds.seeds)) == len(ds.seeds)
    assert ds.served == ({0, 1, 2} if resample else {0})  # every epoch trained on the images drawn for it


def test_augment_setting() -> None:
    assert ClassifierConfig().augment_on(torch.device("cpu")) == "albumentations"
    assert ClassifierConfig().augment_on(torch.device("cuda")) == "device"
    assert ClassifierConfig(augment="device").augment_on(torch.device("cpu")) == "device"
    with pytest.raises(ValueError, match="augment='gpu'"):
        ClassifierConfig(augment="gpu")


@requires_cuda
def test_device_augmentation_on_cuda_matches_cpu() -> None:
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    cpu = device_augmentation(images, True, torch.Generator().manual_seed(3))
    gpu = device_augmentation(images.cuda(), True, torch.Generator().manual_seed(3))
    assert torch.equal(cpu, gpu.cpu())


def test_gan_arm_with_device_augmentation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A GANAugmentedDataset arm on the device path: its real and synthetic items are materialised and trained on."""
    from conftest import tiny_config

    from gan_augment.evaluate import ArmSettings, Split, run_seed
    from gan_augment.progress import Reporter

    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (12, 3, 16, 16), generator=gen, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2] * 4)
    split = Split(images[:9], labels[:9], None, images[9:], labels[9:], ["a", "b", "c"])
    settings = ArmSettings(
        gan=tiny_config(steps=2),
        classifier=ClassifierConfig(steps=3, width=4, batch_size=4, workers=0, augment="device"),
    )
    records = run_seed(split, ["baseline", "gan-per-class"], settings, 0, tmp_path, Reporter(quiet=True))
    assert [r["arm"] for r in records] == ["baseline", "gan-per-class"]
    for value in (records[0]["accuracy"], records[1]["accuracy"], records[1]["cas"]):  # counts of the 3 test images
        assert value * 3 == pytest.approx(round(value * 3))
    assert records[1]["synthetic_ratio"] == settings.synthetic_ratio


@pytest.mark.parametrize("augment,workers", [("albumentations", 0), ("albumentations", 2), ("device", 0)])
def test_classifier_training_is_reproducible(augment: str, workers: int) -> None:
    """The same seed gives the same classifier on either path (albumentations' own random state is seeded,
    per loader worker too), and another seed a different one."""
    gen = torch.Generator().manual_seed(0)
    ds = ArrayDataset(
        torch.randint(0, 256, (24, 3, 16, 16), generator=gen, dtype=torch.uint8), torch.arange(24) % 3, ["a", "b", "c"]
    )
    cfg = ClassifierConfig(steps=6, width=4, batch_size=8, workers=workers, augment=augment)

    def weights(seed: int) -> torch.Tensor:
        model = train_classifier(ds, 3, 3, cfg, torch.device("cpu"), seed=seed)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    first = weights(0)
    assert torch.equal(first, weights(0))
    assert not torch.equal(first, weights(1))


@requires_cuda
def test_every_arm_runs_on_cuda(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The benchmark's arms end to end on a GPU (bf16 classifier, device augmentation, bank on the GPU, SSL)."""
    import lab_arms  # noqa: F401  (the experiments' arms too)
    from conftest import tiny_config

    from gan_augment.evaluate import ArmSettings, Split, arm_names, run_seed
    from gan_augment.progress import Reporter

    gen = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (30, 3, 16, 16), generator=gen, dtype=torch.uint8)
    labels = torch.arange(30) % 3
    split = Split(images[:18], labels[:18], images[18:24], images[24:], labels[24:], ["a", "b", "c"])
    settings = ArmSettings(
        gan=tiny_config(steps=3),
        classifier=ClassifierConfig(steps=4, width=4, batch_size=6, workers=0),
        device=torch.device("cuda"),
        ssl=SSLConfig(steps=3, batch_size=8),
    )
    assert settings.classifier.augment_on(settings.device) == "device"
    records = run_seed(split, list(arm_names()), settings, 0, tmp_path, Reporter(quiet=True))
    assert [r["arm"] for r in records] == list(arm_names())
    assert all(r["accuracy"] * 6 == pytest.approx(round(r["accuracy"] * 6)) for r in records)  # counts of 6 images
