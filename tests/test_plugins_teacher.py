"""GANAugmentedDataset's teacher options: labels from a classifier, agreement filtering, soft targets."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from gan_augment import GANAugmentedDataset, GanAugmentError, load_generator, sample
from gan_augment.errors import CheckpointError
from gan_augment.plugins.dataset import DEFAULT_SYNTHETIC_RATIO, DEFAULT_TEACHER_RATIO
from gan_augment.plugins.teacher import label_synthetic


class Brightness(nn.Module):
    """A teacher that reads brightness: "dark" (label 0) below mid-grey, "light" (1) above.

    ``bias`` shifts every logit toward "dark", so it can be made to reject light images."""

    def __init__(self, bias: float = 0.0, slope: float = 20.0) -> None:
        super().__init__()
        self.bias, self.slope = bias, slope
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        assert x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
        m = x.mean(dim=(1, 2, 3)) - 0.5
        return torch.stack([-self.slope * m + self.bias, self.slope * m], dim=1)


def always_dark(x: torch.Tensor) -> torch.Tensor:
    """A plain function as a teacher: "dark" with probability sigmoid(2) ≈ 0.88 on every image."""
    return torch.tensor([[2.0, 0.0]]).repeat(len(x), 1)


def coin(x: torch.Tensor) -> torch.Tensor:
    """A teacher sure of "dark" on some images and of "light" on others, by a hash of the pixels."""
    u = (x.flatten(1).sum(1) * 997).frac()
    return torch.stack([10 * (u - 0.5), 10 * (0.5 - u)], dim=1)


def brightness(img: torch.Tensor) -> float:
    return float(img.float().mean())


class TestTeacherLabels:
    def test_teacher_labels_replace_the_generators_class(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])  # classes ["dark", "light"]; the run draws black / white
        kw = {"per_class": 4, "seed": 3, "output_format": "tensor"}
        plain = GANAugmentedDataset(base, trained["black-white"], **kw)
        taught = GANAugmentedDataset(
            base, trained["black-white"], labels="teacher", teacher=always_dark, fresh=False, **kw
        )
        assert torch.equal(taught.synthetic_images, plain.synthetic_images)  # the same images, relabelled
        assert plain.synthetic_targets.tolist() == [0] * 4 + [1] * 4
        assert taught.synthetic_targets.tolist() == [0] * 8  # the white "light" images the teacher calls dark
        assert [taught[i][1] for i in range(taught.n_real, len(taught))] == [0] * 8
        assert "Synthetic labels: teacher" in repr(taught)

    def test_teacher_labels_follow_the_image_on_ambiguous_samples(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        teacher = Brightness()
        ds = GANAugmentedDataset(
            base, trained["per-class"], per_class=30, labels="teacher", teacher=teacher, output_format="tensor",
            fresh=False,
        )  # fmt: skip
        gen = GANAugmentedDataset(base, trained["per-class"], per_class=30, output_format="tensor")
        assert torch.equal(ds.synthetic_images, gen.synthetic_images)
        expected = torch.tensor([int(brightness(img) > 127.5) for img in ds.synthetic_images])
        assert torch.equal(ds.synthetic_targets, expected)
        # an untrained generator draws grey noise: the teacher disagrees with its class on some images
        assert bool((ds.synthetic_targets != gen.synthetic_targets).any())
        assert teacher.calls and all(shape[1:] == (3, 16, 16) for shape in teacher.calls)

    def test_soft_targets_are_the_teachers_probabilities(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        ds = GANAugmentedDataset(
            base, trained["black-white"], per_class=2, labels="soft", teacher=always_dark, temperature=2.0
        )
        expected = torch.tensor([1.0, 0.0]).softmax(0)  # logits (2, 0) at temperature 2
        for i in range(ds.n_real, len(ds)):
            assert torch.allclose(ds[i][1], expected)
        real_target = ds[0][1]
        assert (
            real_target.dtype == torch.float32
            and real_target.tolist() == F.one_hot(torch.tensor(base[0][1]), 2).float().tolist()
        )
        loader = DataLoader(ds, batch_size=len(ds), collate_fn=lambda b: torch.stack([t for _, t in b]))
        targets = next(iter(loader))
        assert targets.shape == (len(ds), 2)
        assert torch.isfinite(F.cross_entropy(torch.zeros(len(ds), 2), targets))


class TestAgreementFilter:
    def test_filter_drops_what_the_teacher_rejects(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        with pytest.warns(UserWarning, match=r"\{'light': 3\} fewer than asked"):
            ds = GANAugmentedDataset(
                base,
                trained["black-white"],
                per_class=3,
                labels="generator",
                teacher=always_dark,
                min_confidence=0.8,
                output_format="tensor",
            )
        # the teacher gives "light" 0.12 on white images: all rejected; the black "dark" ones pass
        assert ds.synthetic_targets.tolist() == [0, 0, 0]
        assert all(brightness(img) == 0.0 for img in ds.synthetic_images)

    def test_filter_keeps_what_the_teacher_accepts(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        ds = GANAugmentedDataset(
            base,
            trained["black-white"],
            per_class=3,
            labels="generator",
            teacher=Brightness(),
            min_confidence=0.99,
            output_format="tensor",
        )
        assert ds.synthetic_targets.tolist() == [0, 0, 0, 1, 1, 1]

    def test_filter_draws_more_candidates_to_fill_each_class(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        calls: list[int] = []

        def teacher(x: torch.Tensor) -> torch.Tensor:
            calls.append(len(x))
            return coin(x)

        ds = GANAugmentedDataset(
            base,
            trained["per-class"],
            per_class=10,
            labels="generator",
            teacher=teacher,
            min_confidence=0.9,
            output_format="tensor",
        )
        probs = coin(ds.synthetic_images.float() / 255).softmax(1)
        conf = probs.gather(1, ds.synthetic_targets[:, None]).squeeze(1)
        assert bool((conf >= 0.9).all())
        assert ds.synthetic_targets.bincount().tolist() == [10, 10]
        assert sum(calls) > 20  # candidates beyond the 20 asked for


class TestOptions:
    def test_a_teacher_given_alone_gives_soft_labels(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        ds = GANAugmentedDataset(base, trained["black-white"], per_class=2, teacher=always_dark)
        assert ds.labels == "soft" and ds.synthetic_soft is not None
        assert torch.allclose(ds[len(ds) - 1][1], torch.tensor([2.0, 0.0]).softmax(0))

    def test_two_argument_form_uses_the_default_ratio(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])  # 12 images
        ds = GANAugmentedDataset(base, trained["per-class"])
        expected = round(DEFAULT_SYNTHETIC_RATIO * 12 / (1 - DEFAULT_SYNTHETIC_RATIO))
        assert len(ds) - ds.n_real == expected > 0 and ds.teacher is None  # a run without a teacher
        taught = GANAugmentedDataset(base, trained["taught"])  # a run with its teacher: the teacher's ratio
        expected = round(DEFAULT_TEACHER_RATIO * 12 / (1 - DEFAULT_TEACHER_RATIO))
        assert DEFAULT_TEACHER_RATIO != DEFAULT_SYNTHETIC_RATIO and len(taught) - taught.n_real == expected
        assert taught.teacher is not None and taught.labels == "soft"

    def test_bad_options_are_refused(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        run = trained["black-white"]
        with pytest.raises(ValueError, match="labels='teacher' needs teacher="):
            GANAugmentedDataset(base, run, per_class=1, labels="teacher")
        with pytest.raises(ValueError, match="min_confidence=0.5 needs teacher="):
            GANAugmentedDataset(base, run, per_class=1, min_confidence=0.5)
        with pytest.raises(ValueError, match="labels='pseudo'"):
            GANAugmentedDataset(base, run, per_class=1, labels="pseudo", teacher=always_dark)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="min_confidence=1.5"):
            GANAugmentedDataset(base, run, per_class=1, teacher=always_dark, min_confidence=1.5)
        with pytest.raises(ValueError, match="temperature=0"):
            GANAugmentedDataset(base, run, per_class=1, labels="soft", teacher=always_dark, temperature=0)
        with pytest.raises(GanAugmentError, match="returned 1 logits per image"):
            GANAugmentedDataset(base, run, per_class=1, labels="teacher", teacher=lambda x: torch.zeros(len(x), 1))
        with pytest.raises(GanAugmentError, match=r"returned \(2,\)"):
            GANAugmentedDataset(base, run, per_class=1, labels="teacher", teacher=lambda x: torch.zeros(2))

    def test_pickled_copies_carry_no_teacher(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        ds = GANAugmentedDataset(
            base, trained["black-white"], per_class=2, labels="teacher", teacher=Brightness(), fresh=False
        )
        copy = pickle.loads(pickle.dumps(ds))
        assert copy.teacher is None and copy[len(copy) - 1][1] == ds[len(ds) - 1][1]


def test_label_synthetic_reads_confidence_at_temperature_one() -> None:
    logits = torch.tensor([[3.0, 0.0], [0.0, 0.2]])
    keep, hard, soft = label_synthetic(logits, torch.tensor([1, 1]), "soft", min_confidence=0.9, temperature=10.0)
    assert keep.tolist() == [True, False] and hard.tolist() == [0, 1]
    assert soft is not None and torch.allclose(soft, (logits / 10).softmax(1))
    keep, hard, _ = label_synthetic(logits, torch.tensor([1, 1]), "generator", min_confidence=0.5)
    assert keep.tolist() == [False, True] and hard.tolist() == [1, 1]


class TestPretrainedGenerator:
    def test_pretrained_generator_labelled_by_the_teacher(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])  # 12 images
        ds = GANAugmentedDataset(
            base, trained["with-pool"], per_class=3, labels="teacher", teacher=Brightness(), pretrained=True,
            output_format="tensor", seed=4, fresh=False,
        )  # fmt: skip
        gen, info = load_generator(trained["with-pool"], device="cpu", pretrained=True)
        assert info.class_names == [] and info.step == 2  # unconditional, from the end of pre-training
        assert torch.equal(ds.synthetic_images, sample(gen, 6, seed=4))  # the same total: 3 per class, 2 classes
        expected = [int(brightness(img) > 127.5) for img in ds.synthetic_images]
        assert ds.synthetic_targets.tolist() == expected
        trained_gen, _ = load_generator(trained["with-pool"], device="cpu")
        assert not torch.equal(sample(trained_gen, 6, labels=0, seed=4), ds.synthetic_images)

    def test_pretrained_generator_needs_a_teacher_and_a_run_that_kept_it(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        with pytest.raises(GanAugmentError, match="draws no class: its images need a teacher"):
            GANAugmentedDataset(base, trained["with-pool"], per_class=1, pretrained=True)
        with pytest.raises(ValueError, match="balance needs a generator of classes"):
            GANAugmentedDataset(
                base, trained["with-pool"], balance=True, pretrained=True, labels="soft", teacher=Brightness()
            )
        with pytest.raises(CheckpointError, match="holds no pre-trained models"):
            GANAugmentedDataset(
                base, trained["per-class"], per_class=1, pretrained=True, labels="soft", teacher=Brightness()
            )

    def test_unconditional_run_labelled_by_the_teacher(self, trained: dict[str, Path]) -> None:
        base = ImageFolder(trained["labeled"])
        ds = GANAugmentedDataset(
            base, trained["unconditional"], per_class=2, labels="teacher", teacher=always_dark, fresh=False
        )
        assert len(ds) - ds.n_real == 4 and ds.synthetic_targets.tolist() == [0, 0, 0, 0]
