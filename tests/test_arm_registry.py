"""The arm registry: one list of arms that the CLI, evaluate and the benchmark read; no arm depends on
another having run first."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from gan_augment.errors import UsageError
from gan_augment.evaluate import (
    ARM_REGISTRY,
    ARMS,
    POOL_ARMS,
    ArmSettings,
    ClassifierConfig,
    SeedArms,
    Split,
    check_arms,
    get_arm,
)
from gan_augment.progress import Reporter


def test_every_arm_has_a_runner_and_says_what_it_needs() -> None:
    for name, arm in ARM_REGISTRY.items():
        assert arm.name == name and callable(getattr(SeedArms, arm.runner)), name
        assert set(arm.gans) <= {"per-class", "conditional", "unconditional", "default"}, name
    assert ARMS[0] == "baseline" and set(POOL_ARMS) == {
        "pseudo-label",
        "pseudo-soft",
        "gan-pretrained-soft",
        "teacher-unlabeled",
        "pseudo-balance",
        "pseudo-balance-la",
        "dataset-balance-la",
    }
    assert get_arm("gan-soft").needs_teacher and not get_arm("gan-per-class").needs_teacher


def test_arms_are_checked_by_name_and_by_what_they_need() -> None:
    assert check_arms(["ssl", "baseline"], has_pool=False) == ["ssl", "baseline"]  # the order given
    with pytest.raises(UsageError, match=r"unknown arm\(s\) \['nope'\]"):
        check_arms(["baseline", "nope"], has_pool=True)
    with pytest.raises(UsageError, match="pseudo-label.*need unlabeled images"):
        check_arms(["baseline", "pseudo-label"], has_pool=False)
    with pytest.raises(UsageError, match="unknown arm 'nope'"):
        get_arm("nope")


def _split() -> Split:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 16, 16), generator=gen, dtype=torch.uint8)
    labels = torch.arange(16) % 2
    return Split(images[:10], labels[:10], None, images[10:], labels[10:], ["a", "b"])


def test_a_teacher_arm_before_the_baseline_gives_what_it_gives_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The teacher (the seed's baseline classifier) is trained once, whichever arm comes first: the records
    do not depend on the order (the CLI used to force the baseline first to hide that)."""
    settings = ArmSettings(gan=tiny_config(steps=1), classifier=ClassifierConfig(steps=3, width=4, workers=0))
    trained = []
    real_train = SeedArms._train
    monkeypatch.setattr(SeedArms, "_train", lambda self, ds: trained.append(len(ds)) or real_train(self, ds))
    split, quiet = _split(), Reporter(quiet=True)

    def records(order: list[str]) -> dict[str, float]:
        arms = SeedArms(split, settings, 0, tmp_path, quiet)
        return {arm: arms.run(arm)["accuracy"] for arm in order}

    first = records(["distill-real", "baseline"])
    assert trained == [10, 10 + 10]  # the baseline once (for the teacher), then distill-real's own
    trained.clear()
    second = records(["baseline", "distill-real"])
    assert trained == [10, 20] and first == second


def test_the_architecture_docs_list_the_registry_as_it_is() -> None:
    """docs/architecture.md's arm table says what the registry says, arm for arm."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    rows = {}
    for line in doc.split("## The arm registry", 1)[1].split("\n## ", 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1:5]
    expected = {
        a.name: [f"`{a.runner}`", "yes" if a.needs_pool else "", "yes" if a.needs_teacher else "", ", ".join(a.gans)]
        for a in ARM_REGISTRY.values()
    }
    assert rows == expected
