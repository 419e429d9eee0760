"""The arm registry: one list of arms that the CLI, evaluate and the benchmark read; no arm depends on
another having run first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lab_arms
import pytest
import torch
from conftest import tiny_config

from gan_augment.errors import UsageError
from gan_augment.evaluate import ARM_REGISTRY, ArmSettings, ClassifierConfig, SeedArms, Split, check_arms, get_arm
from gan_augment.evaluate.builtin_arms import PACKAGE_ARMS
from gan_augment.evaluate.registry import Arm, arm_names, register
from gan_augment.progress import Reporter


def test_the_package_keeps_the_arms_a_user_chooses_between() -> None:
    """At most ten arms in the package, each running itself; the experiments come from benchmarks/lab_arms.py
    (registered after them, in this process because the module was imported)."""
    assert len(PACKAGE_ARMS) <= 10 and arm_names()[: len(PACKAGE_ARMS)] == tuple(a.name for a in PACKAGE_ARMS)
    script = "from gan_augment.evaluate import arm_names; print(','.join(arm_names()))"
    alone = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert alone.strip().split(",") == [a.name for a in PACKAGE_ARMS]  # a user's process: the package's alone
    for arm in ARM_REGISTRY.values():
        assert type(arm).run is not Arm.run, arm.name  # every arm says how it runs
        assert set(arm.gans) <= {"per-class", "conditional", "unconditional", "default"}, arm.name
    assert arm_names()[0] == "baseline" and set(arm_names(pool=True)) == {
        "pseudo-label",
        "pseudo-soft",
        "gan-pretrained-soft",
        "teacher-unlabeled",
        "pseudo-balance",
        "pseudo-balance-la",
        "dataset-balance-la",
    }
    assert ("baseline", *arm_names(imbalance=True)) == lab_arms.LONG_TAILED_ARMS


def test_a_name_is_registered_once() -> None:
    register(get_arm("baseline"))  # the same arm again: nothing changes
    with pytest.raises(ValueError, match="'baseline' is registered already"):
        register(Arm("baseline", "another baseline"))
    assert get_arm("baseline") in PACKAGE_ARMS


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
    real_train = SeedArms.train
    monkeypatch.setattr(SeedArms, "train", lambda self, ds: trained.append(len(ds)) or real_train(self, ds))
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
    """docs/architecture.md's arm table says what the package's registry says, arm for arm."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    rows = {}
    for line in doc.split("## The arm registry", 1)[1].split("\n## ", 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1:4]
    expected = {
        a.name: [f"`{type(a).__name__}`", "yes" if a.needs_pool else "", ", ".join(a.gans)] for a in PACKAGE_ARMS
    }
    assert rows == expected
