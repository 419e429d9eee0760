"""The arms of the limited-labels comparison, one registry: each arm an object that says what it needs and
runs itself on a seed's :class:`~gan_augment.evaluate.arms.SeedArms`.

The package registers the arms a user chooses between (``evaluate/builtin_arms.py``); the experiments behind
the published tables register theirs the same way from ``benchmarks/lab_arms.py``. ``evaluate``, the CLI and
the benchmarks list, check and order arms from here. No arm depends on another having run: what arms share
(the seed's baseline classifier, its GAN runs) is trained once, by whichever arm needs it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import UsageError


@dataclass(frozen=True)
class Arm:
    """One arm: its name, what it needs, and :meth:`run`.

    Attributes:
        name: As given on the command line and written in every record.
        about: One line: what it trains on.
        how: How a user takes this route (the verdict that recommends it says so); ``about`` where empty.
        needs_pool: It needs unlabeled images (an UNLABELED folder).
        gans: The GAN runs it trains (or takes from ``--run``): ``per-class``, ``conditional``,
            ``unconditional``, or ``default`` (the run ``fit`` writes with its defaults, its teacher included).
        synthetic: It adds images to the labeled ones, at a share (``synthetic_ratio``) a sweep can vary.
        samples: What it adds are a generator's samples (the verdict on synthetic samples weighs it).
        quality: Generator quality (CAS, diversity) is measured beside it.
        imbalance: Made for an imbalanced labeled set (what ``evaluate`` adds when the folder is one).
        classifiers: Secondary classifiers it trains (what the time estimate charges it).
    """

    name: str
    about: str
    how: str = ""
    needs_pool: bool = False
    gans: tuple[str, ...] = ()
    synthetic: bool = False
    samples: bool = False
    quality: bool = False
    imbalance: bool = False
    classifiers: int = 1

    def run(self, ctx: Any, ratio: float | None) -> tuple[float, dict[str, Any]]:
        """Train and score the arm on the seed ``ctx`` (a :class:`~gan_augment.evaluate.arms.SeedArms`, which
        looks arms up here) at synthetic ``ratio`` (None: the settings'); (test accuracy, what its record keeps)."""
        raise NotImplementedError(f"the arm {self.name!r} does not say how it runs")


ARM_REGISTRY: dict[str, Arm] = {}


def register(*arms: Arm) -> None:
    """Add ``arms`` to the registry, in order (the order of every table); a name is registered once."""
    for arm in arms:
        if arm.name in ARM_REGISTRY and ARM_REGISTRY[arm.name] != arm:
            raise ValueError(f"an arm named {arm.name!r} is registered already")
        ARM_REGISTRY[arm.name] = arm


def arm_names(pool: bool | None = None, imbalance: bool | None = None) -> tuple[str, ...]:
    """The registered arms' names in the registry's order; ``pool``/``imbalance`` keep those that do (True)
    or do not (False) need unlabeled images / serve an imbalanced set."""
    return tuple(
        a.name
        for a in ARM_REGISTRY.values()
        if (pool is None or a.needs_pool == pool) and (imbalance is None or a.imbalance == imbalance)
    )


def table_order(names: Iterable[str]) -> list[str]:
    """The distinct ``names`` in the order of every table: the registry's, then arms it does not hold (records
    of arms registered elsewhere, such as the experiments') as they first come."""
    seen = list(dict.fromkeys(names))
    return [a for a in ARM_REGISTRY if a in seen] + [a for a in seen if a not in ARM_REGISTRY]


def get_arm(name: str) -> Arm:
    """The arm called ``name``; a UsageError naming the choices otherwise."""
    try:
        return ARM_REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown arm {name!r}: choose from {', '.join(ARM_REGISTRY)}") from None


def check_arms(names: Iterable[str], has_pool: bool) -> list[str]:
    """``names`` checked against the registry, in the order given; a UsageError names every unknown arm,
    or every arm that needs unlabeled images when there are none."""
    names = list(names)
    unknown = [n for n in names if n not in ARM_REGISTRY]
    if unknown:
        raise UsageError(f"unknown arm(s) {unknown}: choose from {', '.join(ARM_REGISTRY)}")
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
