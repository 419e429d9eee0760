from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from gan_augment import GANAugmentedDataset, GanAugmentError, load_discriminator


class ListDataset(Dataset):
    """A user's own dataset: PIL images, its own class order, no ``targets``."""

    def __init__(self, classes: list[str], items: list[tuple[Image.Image, int]]) -> None:
        self.classes = classes
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def brightness(img) -> float:
    return float(np.asarray(img, dtype=np.float32).mean())


class TestGANAugmentedDataset:
    def test_labels_match_generated_class(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])  # classes ["dark", "light"]
        ds = GANAugmentedDataset(base, trained["black-white"], per_class=4)
        for i in range(ds.n_real, len(ds)):
            img, label = ds[i]
            assert brightness(img) == (0.0 if base.classes[label] == "dark" else 255.0)

    def test_remapping_by_name(self, trained: dict[str, Path]) -> None:
        black, white = Image.new("RGB", (16, 16)), Image.new("RGB", (16, 16), (255, 255, 255))
        base = ListDataset(["light", "dark"], [(white, 0), (black, 1)])  # reversed class order
        ds = GANAugmentedDataset(base, trained["black-white"], per_class=3)
        labels = [ds[i][1] for i in range(2, len(ds))]
        assert sorted(labels) == [0, 0, 0, 1, 1, 1]
        for i in range(2, len(ds)):
            img, label = ds[i]
            assert brightness(img) == (255.0 if label == 0 else 0.0)

    def test_targets_and_repr_never_index_the_base_again(self, trained: dict[str, Path]) -> None:
        """A base without ``targets`` is read once for its labels; ``targets`` and ``repr()`` do not decode
        every image again (they did, each time)."""
        black, white = Image.new("RGB", (16, 16)), Image.new("RGB", (16, 16), (255, 255, 255))
        base = ListDataset(["dark", "light"], [(black, 0), (white, 1), (black, 0)])
        reads: list[int] = []
        base.__class__ = type("Counting", (ListDataset,), {"__getitem__": lambda s, i: reads.append(i) or s.items[i]})
        ds = GANAugmentedDataset(base, trained["black-white"], per_class=2)
        reads.clear()
        assert ds.targets[:3] == [0, 1, 0] and "Real: 3" in repr(ds)
        assert reads == []

    def test_explicit_mapping_and_missing_classes(self, trained: dict[str, Path]) -> None:
        img = Image.new("RGB", (16, 16))
        base = ListDataset(["cat", "dog"], [(img, 0), (img, 1)])
        with pytest.raises(GanAugmentError, match=r"\['dark', 'light'\] are not in the base dataset"):
            GANAugmentedDataset(base, trained["black-white"], per_class=1)
        ds = GANAugmentedDataset(base, trained["black-white"], per_class=2, class_mapping={"dark": 1, "light": 0})
        assert [ds[i][1] for i in range(2, 6)] == [1, 1, 0, 0]
        assert brightness(ds[2][0]) == 0.0 and brightness(ds[4][0]) == 255.0

    @pytest.mark.parametrize(("ratio", "expected"), [(0.5, 12), (0.2, 3), (0.0, 0)])
    def test_ratio_is_exact(self, trained: dict[str, Path], ratio: float, expected: int) -> None:
        ds = GANAugmentedDataset(ImageFolder(trained["labeled"]), trained["per-class"], synthetic_ratio=ratio)
        assert ds.n_real == 12 and len(ds) - ds.n_real == expected
        assert int(ds.extra_mask.sum()) == expected == ds.n_extra == ds.n_synthetic  # no unlabeled image: all synthetic
        with pytest.warns(DeprecationWarning, match="synthetic_mask is extra_mask"):
            assert torch.equal(ds.synthetic_mask, ds.extra_mask)

    def test_per_class_balance_and_class_subset(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])  # dark: 5, light: 7
        ds = GANAugmentedDataset(base, trained["per-class"], per_class=3)
        assert torch.bincount(ds.synthetic_targets).tolist() == [3, 3]
        ds = GANAugmentedDataset(base, trained["per-class"], balance=True, labels="generator")
        assert torch.bincount(ds.synthetic_targets, minlength=2).tolist() == [2, 0]
        ds = GANAugmentedDataset(base, trained["per-class"], per_class=4, classes=["light"])
        assert ds.synthetic_targets.tolist() == [1, 1, 1, 1]
        assert ds.is_extra(12) and not ds.is_extra(11) and ds.is_extra(-1)
        with pytest.warns(DeprecationWarning, match="is_synthetic\\(\\) is is_extra\\(\\)"):
            assert ds.is_synthetic(12)

    def test_subset_and_conditional(self, trained: dict[str, Path]) -> None:
        base = torch.utils.data.Subset(ImageFolder(trained["labeled"]), [0, 1, 6, 7, 8])
        ds = GANAugmentedDataset(base, trained["conditional"], balance=True, labels="generator")
        assert ds.n_real == 5 and ds.synthetic_targets.tolist() == [0]

    def test_synthetic_images_match_base_form_and_size(self, trained: dict[str, Path], tmp_path: Path) -> None:
        base = ImageFolder(trained["labeled"])
        ds = GANAugmentedDataset(base, trained["per-class"], per_class=1)
        img = ds[len(ds) - 1][0]
        assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == base[0][0].size
        ds = GANAugmentedDataset(base, trained["per-class"], per_class=1, output_format="tensor")
        x = ds[len(ds) - 1][0]
        assert isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and x.shape == (3, 16, 16)

    def test_same_seed_same_samples(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        a = GANAugmentedDataset(base, trained["per-class"], per_class=3, seed=5)
        b = GANAugmentedDataset(base, trained["per-class"], per_class=3, seed=5)
        assert torch.equal(a.synthetic_images, b.synthetic_images)
        a.resample(6)
        assert not torch.equal(a.synthetic_images, b.synthetic_images)
        assert a.synthetic_targets.tolist() == b.synthetic_targets.tolist()

    def test_torchvision_v2_pipeline(self, trained: dict[str, Path]) -> None:
        t = v2.Compose([v2.PILToTensor(), v2.RandomHorizontalFlip(p=1.0), v2.ToDtype(torch.float32, scale=True)])
        base = ImageFolder(trained["labeled"])
        plain = GANAugmentedDataset(base, trained["per-class"], per_class=2)
        ds = GANAugmentedDataset(base, trained["per-class"], per_class=2, transform=t)
        for i in (0, len(ds) - 1):
            x = ds[i][0]
            assert x.dtype == torch.float32 and x.shape == (3, 16, 16)
            raw = torch.from_numpy(np.array(plain[i][0])).permute(2, 0, 1).float() / 255
            assert torch.allclose(x, raw.flip(-1))

    def test_albumentations_pipeline(self, trained: dict[str, Path]) -> None:
        t = A.Compose([A.HorizontalFlip(p=1.0)])
        base = ImageFolder(trained["labeled"])
        plain = GANAugmentedDataset(base, trained["per-class"], per_class=2)
        ds = GANAugmentedDataset(base, trained["per-class"], per_class=2, transform=t)
        for i in (0, len(ds) - 1):
            x = ds[i][0]
            assert isinstance(x, np.ndarray) and x.shape == (16, 16, 3)
            assert np.array_equal(x, np.asarray(plain[i][0])[:, ::-1])

    def test_dataloader_workers_and_pickle(self, trained: dict[str, Path]) -> None:
        t = v2.Compose([v2.PILToTensor()])
        ds = GANAugmentedDataset(ImageFolder(trained["labeled"]), trained["per-class"], per_class=3, transform=t)
        serial = [(x, y) for x, y in DataLoader(ds, batch_size=4, num_workers=0)]
        parallel = [(x, y) for x, y in DataLoader(ds, batch_size=4, num_workers=2)]
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(serial, parallel))
        copy = pickle.loads(pickle.dumps(ds))
        assert len(copy) == len(ds) and all(torch.equal(copy[i][0], ds[i][0]) for i in range(len(ds)))
        assert len(pickle.dumps(ds)) < 200_000  # images and settings, no generator
        with pytest.raises(RuntimeError, match="without its generator"):
            copy.resample(1)

    def test_filter_keeps_higher_scoring_samples(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        plain = GANAugmentedDataset(base, trained["conditional"], per_class=20, seed=0, output_format="tensor")
        kept = GANAugmentedDataset(
            base, trained["conditional"], per_class=20, seed=0, filter_top=0.25, output_format="tensor"
        )
        assert len(kept) == len(plain)
        d = load_discriminator(trained["conditional"], device="cpu")

        def score(ds: GANAugmentedDataset) -> float:
            x = ds.synthetic_images.float() / 127.5 - 1
            with torch.no_grad():
                return float(d(x, ds.synthetic_targets).mean())

        assert score(kept) > score(plain)

    def test_repr_and_validation(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        ds = GANAugmentedDataset(base, trained["per-class"], per_class=1)
        text = repr(ds)
        assert "Number of datapoints: 14" in text and "dark: 5 + 1" in text and "light: 7 + 1" in text
        with pytest.raises(ValueError, match="at most one of"):
            GANAugmentedDataset(base, trained["per-class"], per_class=1, balance=True)
        with pytest.raises(ValueError, match="synthetic_ratio=1.5"):
            GANAugmentedDataset(base, trained["per-class"], synthetic_ratio=1.5)
        with pytest.raises(GanAugmentError, match="unconditional generator"):
            GANAugmentedDataset(base, trained["unconditional"], per_class=1)
        # Issue 22: refused with the fix, not warned about (real and synthetic items would differ).
        with pytest.raises(GanAugmentError, match=r"own transform \(PILToTensor\(\)\).*pass transform="):
            GANAugmentedDataset(
                ImageFolder(trained["labeled"], transform=v2.PILToTensor()), trained["per-class"], per_class=1
            )
        with pytest.raises(GanAugmentError, match="own target_transform.*pass target_transform="):
            GANAugmentedDataset(
                ImageFolder(trained["labeled"], target_transform=int), trained["per-class"], per_class=1
            )


class TestRefusedAtConstruction:
    """Issue 13, item 10: what would fail later (in a DataLoader's collate, in the loss) is refused or
    matched when the dataset is built."""

    @pytest.mark.parametrize("form", ["tensor", "numpy"])
    def test_channels_are_matched_or_refused(self, trained: dict[str, Path], form: str) -> None:
        run = trained["per-class"]  # RGB

        def items(shape: tuple[int, ...]) -> ListDataset:
            image = np.zeros(shape, dtype=np.uint8) if form == "numpy" else torch.zeros(shape, dtype=torch.uint8)
            return ListDataset(["dark", "light"], [(image, label) for label in (0, 1, 0, 1)])

        gray = (16, 16, 1) if form == "numpy" else (1, 16, 16)
        for shape in (gray, (16, 16)):  # one channel, or plain (H, W) items: synthetic items alike
            ds = GANAugmentedDataset(items(shape), run, synthetic_ratio=0.5)
            batch = next(iter(DataLoader(ds, batch_size=len(ds))))  # collates real and synthetic together
            assert tuple(batch[0].shape[1:]) == shape
        four = (16, 16, 4) if form == "numpy" else (4, 16, 16)
        with pytest.raises(ValueError, match="4 channels and the run's 3"):
            GANAugmentedDataset(items(four), run, synthetic_ratio=0.5)

    @pytest.mark.parametrize("label", [2, -1, "1", True, 1.0])
    def test_class_mapping_outside_the_labels_is_refused(self, trained: dict[str, Path], label: object) -> None:
        base = ListDataset(["x", "y"], [(torch.zeros(3, 16, 16, dtype=torch.uint8), label) for label in (0, 1, 0, 1)])
        with pytest.raises(GanAugmentError, match=r"class_mapping\['dark'\] = .* is not a label of the base dataset"):
            GANAugmentedDataset(base, trained["per-class"], synthetic_ratio=0.5, class_mapping={"dark": label})


class TestTorchvisionConventions:
    """Issue 14, item 2: the attributes ImageFolder users reach for, and resample() never silently
    missing a DataLoader's persistent workers."""

    def test_classes_class_to_idx_and_targets(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        ds = GANAugmentedDataset(base, trained["with-pool"])  # the two-argument form, a default run
        assert ds.classes == base.classes == ["dark", "light"]
        assert ds.class_to_idx == base.class_to_idx
        assert len(ds.targets) == len(ds) and ds.targets[: len(base)] == base.targets
        assert ds.targets[len(base) :] == [ds[i][1] for i in range(len(base), len(ds))]

    def test_resample_never_misses_persistent_workers(self, trained: dict[str, Path]) -> None:
        base = ListDataset(["dark", "light"], [(torch.zeros(3, 16, 16, dtype=torch.uint8), c) for c in (0, 1) * 4])
        ds = GANAugmentedDataset(base, trained["per-class"], synthetic_ratio=0.5)
        fresh = DataLoader(ds, batch_size=len(ds), num_workers=1)
        first = next(iter(fresh))[0]
        ds.resample(seed=7)
        second = next(iter(fresh))[0]  # workers started anew: the new images
        assert torch.equal(second[: ds.n_real], first[: ds.n_real]) and not torch.equal(second, first)
        kept = DataLoader(ds, batch_size=len(ds), num_workers=1, persistent_workers=True)
        assert torch.equal(next(iter(kept))[0], second)
        ds.resample(seed=8)
        with pytest.raises(RuntimeError, match="persistent_workers=False"):
            next(iter(kept))


def test_the_signature_and_the_documented_arguments_agree() -> None:
    """GANAugmentedDataset's Args section lists its parameters in the signature's order; all but the first
    three are keywords."""
    import inspect
    import re

    params = list(inspect.signature(GANAugmentedDataset.__init__).parameters.values())[1:]
    doc = GANAugmentedDataset.__doc__ or ""
    documented = re.findall(r"^        (\w+): ", doc.split("Args:", 1)[1], flags=re.M)
    assert documented == [p.name for p in params]
    assert [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY] == [
        "base_ds",
        "generator_ckpt",
        "synthetic_ratio",
    ]


@pytest.mark.parametrize("run", ["per-class", "taught"])
def test_the_runs_checkpoint_is_read_once(trained: dict[str, Path], run: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One read of checkpoint.pt gives the generator, the folders it names, the teacher's plan and (filter_top)
    the discriminator; a run with a teacher reads its teacher.pt too, once."""
    reads: list[str] = []
    real_load = torch.load

    def counting(f: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(Path(getattr(f, "name", f)).name)
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    base = ImageFolder(trained["labeled"])
    kw = {"filter_top": 0.5} if run == "per-class" else {}
    GANAugmentedDataset(base, trained[run], per_class=2, device="cpu", **kw)
    assert reads.count("checkpoint.pt") == 1
    assert reads.count("teacher.pt") == (run == "taught")
