"""The arms of the limited-labels comparison, one registry: what each arm is, needs and runs.

``evaluate``, the CLI and ``benchmarks/limited_labels.py`` list, validate and order arms from
:data:`ARM_REGISTRY`; :class:`~gan_augment.evaluate.arms.SeedArms` runs an arm by its ``runner``.
No arm depends on another having run: the seed's baseline classifier, which the teacher arms use
as their teacher, is trained once, by whichever arm needs it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import UsageError


@dataclass(frozen=True)
class Arm:
    """One arm.

    Attributes:
        name: As given on the command line and written in every record.
        runner: The :class:`~gan_augment.evaluate.arms.SeedArms` method that trains and scores it.
        about: One line: what it trains on.
        needs_pool: It needs unlabeled images (an UNLABELED folder).
        needs_teacher: It uses the seed's baseline classifier as its teacher.
        gans: The GAN runs it trains (or takes from ``--run``): ``per-class``, ``conditional``,
            ``unconditional``, or ``default`` (the run ``fit`` writes with its defaults, its teacher included).
        synthetic: It adds images to the labeled ones, at a share (``synthetic_ratio``) a sweep can vary.
        quality: Generator quality (CAS, diversity) is measured beside it.
        imbalance: Made for an imbalanced labeled set (what ``evaluate`` adds when the folder is one).
    """

    name: str
    runner: str
    about: str
    needs_pool: bool = False
    needs_teacher: bool = False
    gans: tuple[str, ...] = ()
    synthetic: bool = False
    quality: bool = False
    imbalance: bool = False


def _sample(name: str, about: str, mode: str = "per-class", **kw: bool) -> Arm:
    return Arm(name, "gan_samples", about, gans=(mode,), synthetic=True, **kw)


def _run(name: str, about: str, **kw: bool) -> Arm:
    return Arm(name, "run_arm", about, gans=("default",), **kw)


def _real(name: str, about: str, **kw: bool) -> Arm:
    return Arm(name, "real_extra", about, needs_teacher=True, synthetic=True, **kw)


def _tail(name: str, runner: str, about: str, **kw: Any) -> Arm:
    return Arm(name, runner, about, imbalance=True, **kw)


_ARMS = (
    Arm("baseline", "baseline", "the labeled images alone, classic augmentation"),
    _run(
        "default",
        "GANAugmentedDataset(base, run): synthetic and unlabeled images, labelled by the run's teacher",
        synthetic=True,
    ),  # fmt: skip
    _run("default-synthetic", "the default without the unlabeled images (unlabeled=False)", synthetic=True),
    _run("teacher", "the run's teacher itself, scored as the classifier"),
    _run("teacher-unlabeled", "the default without synthetic images (the control)", needs_pool=True, synthetic=True),
    _run("teacher-features", "logistic regression on the teacher's hidden layers"),
    _sample("gan-per-class", "synthetic images of a per-class run, the generator's class", quality=True),
    _sample(
        "gan-conditional", "synthetic images of a conditional run, the generator's class", "conditional", quality=True
    ),  # fmt: skip
    _sample("gan-teacher", "synthetic images, the teacher's hard label where it is confident", needs_teacher=True),
    _sample("gan-soft", "synthetic images, the teacher's probabilities", needs_teacher=True),
    _sample("gan-agree", "synthetic images where the teacher agrees with the generator's class", needs_teacher=True),
    _sample(
        "gan-pretrain", "pre-training on teacher-labelled synthetic images, then the real ones", needs_teacher=True
    ),  # fmt: skip
    _sample(
        "gan-pretrained-soft",
        "the shared pre-trained generator's images, the teacher's probabilities",
        needs_teacher=True,
        needs_pool=True,
    ),  # fmt: skip
    _real("pseudo-label", "unlabeled images, the teacher's hard label where it is confident", needs_pool=True),
    _real("pseudo-soft", "unlabeled images, the teacher's probabilities", needs_pool=True),
    _real("distill-real", "the labeled images again, the teacher's probabilities"),
    Arm(
        "d-features",
        "d_features",
        "logistic regression on an unconditional GAN's discriminator features",
        gans=("unconditional",),
    ),  # fmt: skip
    Arm("ssl", "ssl", "the semi-supervised GAN's discriminator as the classifier"),
    # For an imbalanced labeled set: the methods without a GAN, balance=True, and its control.
    _tail("class-balanced", "rebalanced", "class-balanced re-sampling: every class repeated up to the largest"),
    _tail("reweight", "rebalanced", "cross-entropy weighted by inverse class frequency"),
    _tail(
        "logit-adjust",
        "rebalanced",
        "the logit-adjusted loss (Menon et al. 2021), the labels' prior, no label smoothing",
    ),
    _tail(
        "posthoc-adjust",
        "posthoc",
        "the baseline without label smoothing, its logits minus the log of the labels' prior",
    ),
    _tail(
        "gan-balance",
        "gan_balance",
        "balance=True: every class filled to the largest with a per-class run's images, the generator's class",
        gans=("per-class",),
        quality=True,
    ),  # fmt: skip
    _tail(
        "gan-balance-soft",
        "gan_balance",
        "balance=True, the teacher's probabilities",
        gans=("per-class",),
        needs_teacher=True,
    ),  # fmt: skip
    _tail(
        "gan-balance-soft+logit-adjust",
        "gan_balance",
        "gan-balance-soft with the logit-adjusted loss (the prior of its targets, synthetic ones included)",
        gans=("per-class",),
        needs_teacher=True,
    ),  # fmt: skip
    _tail(
        "gan-balance-soft-la",
        "gan_balance",
        "balance=True, the probabilities of the logit-adjusted classifier (a teacher that weighs classes alike)",
        gans=("per-class",),
    ),  # fmt: skip
    _tail(
        "gan-balance-soft-la+logit-adjust",
        "gan_balance",
        "gan-balance-soft-la with the logit-adjusted loss (the prior of its targets)",
        gans=("per-class",),
    ),  # fmt: skip
    _tail(
        "gan-per-class+logit-adjust",
        "gan_samples",
        "gan-per-class (evenly over the classes) with the logit-adjusted loss (the prior of its targets)",
        gans=("per-class",),
        synthetic=True,
    ),  # fmt: skip
    _tail(
        "pseudo-balance",
        "pseudo_balance",
        "the control of gan-balance-soft: the unlabeled images the teacher rates likeliest of each class",
        needs_pool=True,
        needs_teacher=True,
    ),  # fmt: skip
    _tail(
        "pseudo-balance-la",
        "pseudo_balance",
        "the control of gan-balance-soft-la: pseudo-balance with the logit-adjusted classifier as the teacher",
        needs_pool=True,
    ),  # fmt: skip
    _tail(
        "dataset-balance-la",
        "dataset_balance",
        "pseudo-balance-la in one call: GANAugmentedDataset(base, run, balance=True, teacher=, unlabeled=, "
        "fresh_passes=0)",
        gans=("per-class",),
        needs_pool=True,
    ),  # fmt: skip
)
ARM_REGISTRY: dict[str, Arm] = {a.name: a for a in _ARMS}

# Names by kind, in the registry's order (the order of every table).
ARMS: tuple[str, ...] = tuple(ARM_REGISTRY)
RUN_ARMS: tuple[str, ...] = tuple(a.name for a in _ARMS if a.runner == "run_arm")
SAMPLE_ARMS: tuple[str, ...] = tuple(a.name for a in _ARMS if a.runner in ("gan_samples", "gan_balance"))
REAL_CONTROL_ARMS: tuple[str, ...] = tuple(a.name for a in _ARMS if a.runner == "real_extra")
POOL_ARMS: tuple[str, ...] = tuple(a.name for a in _ARMS if a.needs_pool)
RATIO_ARMS: tuple[str, ...] = tuple(a.name for a in _ARMS if a.synthetic)  # a ratio sweep's choices
IMBALANCE_ARMS: tuple[str, ...] = tuple(a.name for a in _ARMS if a.imbalance)
# The long-tailed comparison: cross-entropy, the methods without a GAN, balance=True, the control.
LONG_TAILED_ARMS: tuple[str, ...] = ("baseline", *IMBALANCE_ARMS)


def get_arm(name: str) -> Arm:
    """The arm called ``name``; a UsageError naming the choices otherwise."""
    try:
        return ARM_REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown arm {name!r}: choose from {', '.join(ARMS)}") from None


def check_arms(names: Iterable[str], has_pool: bool) -> list[str]:
    """``names`` checked against the registry, in the order given; a UsageError names every unknown arm,
    or every arm that needs unlabeled images when there are none."""
    names = list(names)
    unknown = [n for n in names if n not in ARM_REGISTRY]
    if unknown:
        raise UsageError(f"unknown arm(s) {unknown}: choose from {', '.join(ARMS)}")
    need_pool = [n for n in names if ARM_REGISTRY[n].needs_pool]
    if need_pool and not has_pool:
        raise UsageError(f"the arms {need_pool} need unlabeled images: pass an UNLABELED folder, or drop them")
    return names


# evaluate's arms when none are named (the CLI's and Python's): the baseline and the routes the limited-labels
# benchmark found worth taking (docs/results_notes.md, "The run's teacher"); the pool's arm only with UNLABELED.
DEFAULT_ARMS = ("baseline", "default", "teacher", "teacher-unlabeled")
# Added to those when LABELED is imbalanced: what won the long-tailed benchmark (docs/results/long_tailed.md):
# logit adjustment, and with UNLABELED its classifier's labels on the pool filling the rare classes.
IMBALANCED_DEFAULT_ARMS = ("logit-adjust", "posthoc-adjust", "pseudo-balance-la")


def default_arms(has_pool: bool) -> list[str]:
    """:data:`DEFAULT_ARMS`, less those that need unlabeled images when there are none."""
    return [a for a in DEFAULT_ARMS if has_pool or not ARM_REGISTRY[a].needs_pool]
