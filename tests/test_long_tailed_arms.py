"""The arms for an imbalanced labeled set, the prior of a mixed dataset, and evaluate on an imbalanced folder."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from conftest import tiny_config, write_folder
from lab_arms import LONG_TAILED_ARMS, training_prior
from torchvision.datasets import ImageFolder

from gan_augment.evaluate import (
    ArmSettings,
    ClassifierConfig,
    SeedArms,
    Split,
    arm_names,
    evaluate_folders,
)
from gan_augment.evaluate.html import write_report
from gan_augment.plugins import GANAugmentedDataset
from gan_augment.progress import Reporter


def _long_tailed_split() -> Split:
    """Four classes of 12, 6, 4 and 2 labeled images (ratio 6), a pool of 30, a balanced test set of 40: the
    three rarest (b, c, d) are the rare classes, the common one (a) is not."""
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 12 + [1] * 6 + [2] * 4 + [3] * 2)
    shade = (labels * 60 + 20).view(-1, 1, 1, 1)
    images = (shade + torch.randint(0, 30, (24, 3, 16, 16), generator=g)).clamp(0, 255).to(torch.uint8)
    pool = torch.randint(0, 256, (30, 3, 16, 16), generator=g, dtype=torch.uint8)
    test_labels = torch.arange(40) % 4
    test = ((test_labels * 60 + 20).view(-1, 1, 1, 1) + torch.randint(0, 30, (40, 3, 16, 16), generator=g)).clamp(
        0, 255
    )
    return Split(images, labels, pool, test.to(torch.uint8), test_labels, ["a", "b", "c", "d"])


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    settings = ArmSettings(
        gan=tiny_config(steps=2), classifier=ClassifierConfig(steps=3, width=4, batch_size=8, workers=0)
    )
    arms = SeedArms(_long_tailed_split(), settings, 0, tmp_path_factory.mktemp("lt"), Reporter(quiet=True))
    return {arm: arms.run(arm) for arm in LONG_TAILED_ARMS}


def test_every_long_tailed_arm_records_balanced_accuracy_and_recall_per_class(records: dict[str, dict]) -> None:
    assert list(records) == ["baseline", *arm_names(imbalance=True)]
    for arm, r in records.items():
        recall = r["per_class_recall"]
        assert r["arm"] == arm and r["seed"] == 0, arm
        assert len(recall) == 4 and 0 <= r["balanced_accuracy"] <= 1, arm
        assert r["balanced_accuracy"] == pytest.approx(sum(recall) / 4, abs=1e-3), arm
        assert r["rare_recall"] == pytest.approx(sum(recall[1:]) / 3, abs=1e-3), arm  # the common class left out
    # and the check can tell: somewhere the common class's recall is not the rare classes' mean
    assert any(abs(r["per_class_recall"][0] - sum(r["per_class_recall"][1:]) / 3) > 0.01 for r in records.values())


def test_the_balancing_arms_add_what_each_class_lacks(records: dict[str, dict]) -> None:
    assert records["class-balanced"]["resampled"] == 48  # 4 classes × 12
    balancing = ("gan-balance", "gan-balance-soft", "gan-balance-soft+logit-adjust", "gan-balance-soft-la")
    for arm in (*balancing, "gan-balance-soft-la+logit-adjust", "pseudo-balance", "pseudo-balance-la",
                "dataset-balance-la"):  # fmt: skip
        assert records[arm]["synthetic"] == (12 - 6) + (12 - 4) + (12 - 2), arm
    prior = records["gan-balance-soft+logit-adjust"]["prior"]
    assert len(prior) == 4 and sum(prior) == pytest.approx(1, abs=1e-3)


def test_gan_balance_measures_memorisation_and_the_cas_of_the_rare_classes(records: dict[str, dict]) -> None:
    r = records["gan-balance"]
    assert len(r["nn_ratio_per_class"]) == len(r["copies_per_class"]) == len(r["cas_per_class"]) == 4
    assert all(v >= 0 for v in r["nn_ratio_per_class"]) and all(0 <= v <= 1 for v in r["copies_per_class"])
    assert r["cas_rare"] == pytest.approx(sum(r["cas_per_class"][1:]) / 3, abs=1e-3)  # b, c, d


def test_memorisation_sees_a_copy() -> None:
    from lab_arms import nearest_distances

    train = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    others = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    assert nearest_distances(train[[3, 1]], train).tolist() == [0.0, 0.0]  # copies: at distance 0
    assert bool((nearest_distances(others, train) > 0).all())


def test_the_class_prior_of_a_mixed_dataset(trained: dict[str, Path]) -> None:
    """Real counts plus the synthetic items: balance=True with the generator's labels is uniform; soft targets
    count as spread over their classes (here a teacher sure of class 0 for every image)."""
    base = ImageFolder(trained["labeled"])  # dark: 5, light: 7
    with pytest.warns(UserWarning, match="balance=True without a teacher labels the synthetic images"):
        ds = GANAugmentedDataset(base, trained["per-class"], balance=True)
    assert ds.class_prior().tolist() == pytest.approx([0.5, 0.5])
    assert training_prior(ds, 2).tolist() == pytest.approx([0.5, 0.5])

    class SureOfDark(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[20.0, -20.0]]).expand(len(x), 2)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a teacher given: no warning; nor with the generator's labels asked for
        ds = GANAugmentedDataset(base, trained["per-class"], balance=True, teacher=SureOfDark())
        assert ds.labels == "soft"
        GANAugmentedDataset(base, trained["per-class"], balance=True, labels="generator")
    ds = GANAugmentedDataset(base, trained["per-class"], per_class=4, teacher=SureOfDark(), labels="soft")
    assert ds.class_prior().tolist() == pytest.approx([(5 + 8) / 20, 7 / 20], abs=1e-4)


def test_evaluate_scores_an_imbalanced_folder_by_balanced_accuracy(tmp_path: Path) -> None:
    labeled = write_folder(tmp_path / "labeled", ["common", "rare"], [15, 4])
    settings = ArmSettings(gan=tiny_config(steps=2), classifier=ClassifierConfig(steps=2, width=4, workers=0))
    report = evaluate_folders(
        labeled, None, tmp_path / "eval", ["baseline", "d-features"], [0, 1], 0.3, settings,
        reporter=Reporter(quiet=True), imbalanced_arms=["logit-adjust", "pseudo-balance-la"],
    )  # fmt: skip
    assert report["metric"] == "balanced_accuracy" and report["class_counts"] == [11, 3]  # 30% held out
    arms = {"baseline", "d-features", "logit-adjust"}  # pseudo-balance-la needs a pool; a linear probe scores too
    assert {r["arm"] for r in report["runs"]} == arms == {r["arm"] for r in report["summary"]}
    assert set(report["per_class_recall"]) == arms
    assert report["verdicts"][0].startswith("LABELED is imbalanced (largest class 11 images, smallest 3)")
    assert all(r["metric"] == "balanced_accuracy" for r in report["summary"])
    md = (tmp_path / "eval" / "evaluation.md").read_text()
    assert "balanced accuracy (mean ± std)" in md and "| arm | common (11) | rare (3) |" in md
    page = write_report(tmp_path / "eval", tmp_path / "eval.html").read_text()  # gan-augment report
    assert "<th>balanced accuracy</th>" in page and "Recall per class (%)" in page and "class 1 (3)" in page


def test_evaluate_keeps_accuracy_and_its_arms_on_a_balanced_folder(tmp_path: Path) -> None:
    labeled = write_folder(tmp_path / "labeled", ["one", "two"], [6, 5])
    settings = ArmSettings(gan=tiny_config(steps=2), classifier=ClassifierConfig(steps=2, width=4, workers=0))
    report = evaluate_folders(
        labeled, None, tmp_path / "eval", ["baseline"], [0], 0.3, settings, reporter=Reporter(quiet=True),
        imbalanced_arms=["logit-adjust"],
    )  # fmt: skip
    assert report["metric"] == "accuracy" and {r["arm"] for r in report["runs"]} == {"baseline"}


def test_balance_with_unlabeled_images_keeps_those_that_fill_the_rare_classes(trained: dict[str, Path]) -> None:
    """balance=True, unlabeled=, fresh_passes=0: the pool is the unlabeled images the teacher rates likeliest
    for the classes short of the largest, as many as they lack (fill_classes); without balance, all of them."""
    base = ImageFolder(trained["labeled"])  # dark: 5, light: 7: dark lacks 2

    class Brightness(torch.nn.Module):  # dark for dark images, light for light ones
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = x.mean((1, 2, 3))
            return torch.stack([0.5 - m, m - 0.5], 1) * 20

    g = torch.Generator().manual_seed(0)
    pool = torch.cat(
        [torch.randint(0, 40, (3, 3, 16, 16), generator=g), torch.randint(215, 256, (5, 3, 16, 16), generator=g)]
    )
    pool = pool.to(torch.uint8)
    ds = GANAugmentedDataset(
        base, trained["per-class"], balance=True, teacher=Brightness(), unlabeled=pool, fresh_passes=0
    )
    assert ds.pool is not None and len(ds.pool) == 2 == len(ds) - ds.n_real
    assert ds.pool.hard.tolist() == [0, 0] and float(ds.pool.images.float().mean()) < 40  # two dark ones
    assert ds.class_prior().tolist() == pytest.approx([0.5, 0.5], abs=1e-3)
    every = GANAugmentedDataset(
        base, trained["per-class"], per_class=2, teacher=Brightness(), unlabeled=pool, fresh_passes=0
    )
    assert every.pool is not None and len(every.pool) == 8
