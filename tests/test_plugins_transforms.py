from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from gan_augment import GanAugmentError, SyntheticSwap


class TestSyntheticSwap:
    @pytest.fixture
    def base(self, trained: dict[str, Path]) -> ImageFolder:
        return ImageFolder(trained["labeled"])

    def test_p0_is_identity_p1_always_swaps(self, trained: dict[str, Path], base: ImageFolder) -> None:
        never = SyntheticSwap(trained["black-white"], p=0.0, classes=base.classes, bank_per_class=4)
        always = SyntheticSwap(trained["black-white"], p=1.0, classes=base.classes, bank_per_class=4)
        for i in range(len(base)):
            img, label = base[i]
            same, same_label = never(img, label)
            assert same is img and same_label == label
            swapped, swapped_label = always(img, label)
            assert swapped_label == label and isinstance(swapped, Image.Image) and swapped.mode == img.mode
            assert float(np.asarray(swapped).mean()) == (0.0 if base.classes[label] == "dark" else 255.0)

    def test_probability(self, trained: dict[str, Path], base: ImageFolder) -> None:
        t = SyntheticSwap(trained["black-white"], p=0.3, classes=base.classes, bank_per_class=4)
        img = Image.new("RGB", (16, 16), (128, 128, 128))
        torch.manual_seed(0)
        swaps = sum(t(img, 1)[0] is not img for _ in range(2000))
        assert 500 < swaps < 700

    def test_in_a_v2_pipeline_with_tensors(self, trained: dict[str, Path], base: ImageFolder) -> None:
        pipeline = v2.Compose(
            [
                SyntheticSwap(trained["black-white"], p=1.0, classes=base.classes, bank_per_class=2),
                v2.ToImage(),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )
        x, y = pipeline(base[0])
        assert isinstance(x, tv_tensors.Image) and x.dtype == torch.float32 and y == 0 and float(x.max()) == 0.0
        t = SyntheticSwap(trained["black-white"], p=1.0, classes=base.classes, bank_per_class=2)
        out, _ = t(torch.zeros(3, 16, 16), 1)
        assert out.dtype == torch.float32 and float(out.min()) == 1.0

    def test_pickle_repr_validation(self, trained: dict[str, Path], base: ImageFolder) -> None:
        t = SyntheticSwap(trained["per-class"], p=0.5, classes=base.classes, bank_per_class=3, seed=1)
        copy = pickle.loads(pickle.dumps(t))
        assert torch.equal(copy.images, t.images)
        assert "p=0.5" in repr(t) and "bank_per_class=3" in repr(t)
        with pytest.raises(ValueError, match="p=1.5"):
            SyntheticSwap(trained["per-class"], p=1.5)
        with pytest.raises(ValueError, match=r"\(image, label\)"):
            t(Image.new("RGB", (16, 16)))
        with pytest.raises(GanAugmentError, match="not in the base dataset"):
            SyntheticSwap(trained["per-class"], classes=["cat", "dog"])

    def test_unknown_label_passes(self, trained: dict[str, Path]) -> None:
        t = SyntheticSwap(trained["black-white"], p=1.0, class_mapping={"dark": 0}, bank_per_class=2)
        img = Image.new("RGB", (16, 16), (9, 9, 9))
        assert t(img, 1)[0] is img and t(img, 0)[0] is not img


class TestConventions:
    """Issue 14, item 2: classes by name from the dataset, dict samples, a clear error on a batch,
    and the base dataset's own transform found through a Subset."""

    def test_classes_by_name_from_the_dataset(self, trained: dict[str, Path], tmp_path: Path) -> None:
        root = tmp_path / "labeled"
        for name in ("aaa-stray", "dark", "light"):  # a stray folder sorts first: positions shift
            (root / name).mkdir(parents=True)
            Image.new("RGB", (16, 16), (128, 128, 128)).save(root / name / "x.png")
        ds = ImageFolder(root)
        swap = SyntheticSwap(trained["black-white"], p=1.0, classes=ds, bank_per_class=2)
        img = Image.new("RGB", (16, 16), (128, 128, 128))
        assert float(np.asarray(swap(img, ds.class_to_idx["dark"])[0]).mean()) == 0.0
        assert float(np.asarray(swap(img, ds.class_to_idx["light"])[0]).mean()) == 255.0
        assert swap(img, ds.class_to_idx["aaa-stray"])[0] is img  # no synthetic class: unchanged
        subset = torch.utils.data.Subset(ds, [1, 2])
        assert float(np.asarray(SyntheticSwap(trained["black-white"], p=1.0, classes=subset)(img, 1)[0]).mean()) == 0
        with pytest.warns(UserWarning, match="pass classes=dataset"):
            SyntheticSwap(trained["black-white"], p=1.0, bank_per_class=2)

    def test_dict_samples_and_batches(self, trained: dict[str, Path]) -> None:
        swap = SyntheticSwap(trained["black-white"], p=1.0, classes=["dark", "light"], bank_per_class=2)
        image = tv_tensors.Image(torch.full((3, 16, 16), 128, dtype=torch.uint8))
        out = swap({"image": image, "label": 0, "path": "a.png"})
        assert out["path"] == "a.png" and out["label"] == 0 and int(out["image"].float().mean()) == 0
        assert isinstance(out["image"], tv_tensors.Image)
        with pytest.raises(ValueError, match="not a batch"):
            swap(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
        with pytest.raises(ValueError, match="needs an image and a label"):
            swap({"pixels": image})

    def test_a_subset_with_its_own_transform_is_refused(self, trained: dict[str, Path]) -> None:
        from gan_augment import GANAugmentedDataset

        inner = ImageFolder(trained["labeled"], transform=v2.PILToTensor())
        with pytest.raises(ValueError, match=r"base_ds\.dataset has its own transform"):
            GANAugmentedDataset(torch.utils.data.Subset(inner, [0, 1, 2]), trained["per-class"], synthetic_ratio=0.5)
