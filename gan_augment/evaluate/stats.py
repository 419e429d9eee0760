"""Paired statistics over seeds: each arm's mean ± std and its gain over the baseline of the same seeds."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import stats

from .registry import ARM_REGISTRY, table_order


def paired_gain(accs: dict[int, float], base: dict[int, float]) -> tuple[float, float] | None:
    """Mean gain of ``accs`` over ``base`` on the seeds both have, and the half-width of its paired 95%
    t-interval (scipy; nan with one seed); None when no seed is shared."""
    d = np.array([accs[s] - base[s] for s in accs if s in base])
    if not len(d):
        return None
    if len(d) < 2:
        return float(d.mean()), float("nan")
    if np.ptp(d) == 0:  # the same gain on every seed: no spread (scipy would warn of precision loss)
        return float(d.mean()), 0.0
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    return float(d.mean()), float(ci.high - d.mean())


def binomial_floor(acc: float, base: float, n_test: int) -> float:
    """The least half-width a gain's 95% interval can honestly have on ``n_test`` test images: the
    binomial error of the two accuracies (normal approximation, taken as independent, which overstates
    it a little for paired predictions), and never less than one test image. The spread over seeds
    alone says nothing of it when every seed scores the same few images: on 8 of them each is 12.5
    points, and 2 seeds agreeing gave "50.0 ± 0.0"."""
    var = sum(min(max(p, 0.0), 1.0) * (1 - min(max(p, 0.0), 1.0)) for p in (acc, base)) / n_test
    return max(1.96 * float(np.sqrt(var)), 1.0 / n_test)


def summarize(
    records: list[dict[str, Any]],
    group: Sequence[str] = ("dataset", "labels_per_class"),
    metric: str = "accuracy",
) -> list[dict[str, Any]]:
    """Mean ± std of ``metric`` per arm (and group), and each arm's gain over ``baseline`` with a paired
    95% t-interval (``metric``: ``accuracy``, or ``balanced_accuracy`` for an imbalanced set)."""
    keys = sorted({tuple(r.get(g) for g in group) for r in records}, key=str)
    rows = []
    for key in keys:
        sub = [r for r in records if tuple(r.get(g) for g in group) == key and metric in r]
        base = {r["seed"]: r[metric] for r in sub if r["arm"] == "baseline"}
        for arm in table_order(r["arm"] for r in sub):
            accs = {r["seed"]: r[metric] for r in sub if r["arm"] == arm}
            a = np.array(list(accs.values()))
            row: dict[str, Any] = dict(zip(group, key))
            row.update(
                {"arm": arm, "n": len(a), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}
            )
            if metric != "accuracy":
                row["metric"] = metric
            paired = paired_gain(accs, base) if arm != "baseline" else None
            n_test = min((int(r["test_images"]) for r in sub if r["arm"] == arm and r.get("test_images")), default=0)
            if n_test:
                row["test_images"] = n_test
            if paired is not None:
                half = paired[1]
                if n_test and half == half:  # the test set's own error bounds the interval from below
                    half = max(half, binomial_floor(row["mean"], float(np.mean(list(base.values()))), n_test))
                row.update({"gain": paired[0], "gain_ci95": half})
            for q in ("cas", "real_clf_on_synthetic", "diversity", "diversity_min"):
                vals = [r[q] for r in sub if r["arm"] == arm and q in r]
                if vals:
                    row[q] = float(np.mean(vals))
            rows.append(row)
    return rows


def clears_zero(row: dict[str, Any]) -> bool:
    """Whether a summary row's gain has its whole 95% interval above zero (never with one seed)."""
    gain, half = row.get("gain"), row.get("gain_ci95")
    return gain is not None and half == half and gain - half > 0


# The smallest gain worth having (1 point): "do not use" is said only when the 95% interval rules out
# a gain this large; an interval that reaches it from below zero is inconclusive.
WORTHWHILE_GAIN = 0.01
INCONCLUSIVE = "inconclusive: run more seeds or a larger test set"


def _upper(row: dict[str, Any]) -> float:
    return float(row["gain"]) + float(row["gain_ci95"])


def rules_out_a_gain(row: dict[str, Any]) -> bool:
    """Whether a summary row's 95% interval ends below a worthwhile gain (never with one seed)."""
    half = row.get("gain_ci95")
    return row.get("gain") is not None and half == half and _upper(row) < WORTHWHILE_GAIN


def verdict(row: dict[str, Any]) -> str:
    """A plain sentence about one arm's gain over the baseline: raised, lowered, no gain worth having
    (the interval ends below +1 point), or inconclusive (it reaches +1 point from below zero)."""
    gain, half = row.get("gain"), row.get("gain_ci95")
    if gain is None:
        return ""
    pts, h = 100 * gain, 100 * half if half == half else float("nan")
    what = "synthetic samples this way" if _samples(row["arm"]) else "it"
    metric = str(row.get("metric", "accuracy")).replace("_", " ")
    if h != h:  # one seed: no interval, so no verdict either way
        return (
            f"{row['arm']}: {pts:+.1f} points on one seed, which cannot tell a gain from noise: run --seeds 3 or more"
        )
    if clears_zero(row):
        return f"{row['arm']} raised {metric} by {pts:.1f} ± {h:.1f} points"
    if gain + half < 0:
        return f"{row['arm']} lowered {metric} by {-pts:.1f} ± {h:.1f} points: do not use {what} for this data"
    if rules_out_a_gain(row):
        return (
            f"{row['arm']}: no gain worth having ({pts:+.1f} ± {h:.1f} points, at most {pts + h:+.1f}): "
            f"do not use {what} for this data"
        )
    return f"{row['arm']}: {pts:+.1f} ± {h:.1f} points, {INCONCLUSIVE}"


def samples_verdict(rows: list[dict[str, Any]]) -> str:
    """One sentence over every sample arm measured: do synthetic samples help on this data at all?"""
    sample_rows = [r for r in rows if _samples(r.get("arm")) and r.get("gain") is not None]
    if not sample_rows:
        return ""
    helped = [r["arm"] for r in sample_rows if clears_zero(r)]
    if helped:
        return f"synthetic samples helped this data as {', '.join(helped)} (95% interval above zero)"
    names = ", ".join(r["arm"] for r in sample_rows)
    if all(rules_out_a_gain(r) for r in sample_rows):
        return (
            f"no way of using synthetic samples measured here ({names}) can give a gain worth having (every 95% "
            "interval ends below +1 point): do not use synthetic samples for this data"
        )
    return f"synthetic samples ({names}): no 95% interval above zero, and not all rule a gain out: {INCONCLUSIVE}"


def _samples(name: Any) -> bool:
    """Whether the arm called ``name`` adds a generator's samples (False for an arm not registered here)."""
    arm = ARM_REGISTRY.get(name)
    return arm is not None and arm.samples


def _how(name: str) -> str:
    """How a user takes the route of the arm called ``name``: the arm's ``how`` line, else its ``about``."""
    arm = ARM_REGISTRY.get(name)
    return (arm.how or arm.about) if arm is not None else name


def route_verdict(rows: list[dict[str, Any]]) -> str:
    """The route to take on this data: among the arms whose gain's 95% interval is above zero, the one of
    highest mean accuracy (per dataset and budget; the first group when there are several)."""
    groups = sorted({(r.get("dataset"), r.get("labels_per_class")) for r in rows}, key=str)
    if not groups:
        return ""
    sub = [r for r in rows if (r.get("dataset"), r.get("labels_per_class")) == groups[0]]
    winners = sorted((r for r in sub if clears_zero(r)), key=lambda r: -r["mean"])
    if not winners:
        others = [r for r in sub if r["arm"] != "baseline"]
        measured = [r["arm"] for r in others]
        if not measured or all(r.get("gain_ci95") != r.get("gain_ci95") for r in others):
            return ""
        open_ = [r["arm"] for r in others if not rules_out_a_gain(r) and not r["gain"] + r["gain_ci95"] < 0]
        if open_:
            return f"no recommendation yet: no arm beat the baseline, and {', '.join(open_)} may; {INCONCLUSIVE}"
        return f"recommended: train on your labels alone; no arm measured here ({', '.join(measured)}) beat it"
    best = winners[0]
    how = _how(best["arm"])
    return (
        f"recommended for this data: {best['arm']}, {100 * best['mean']:.1f}% "
        f"({100 * best['gain']:+.1f} ± {100 * best['gain_ci95']:.1f} points over the baseline): {how}"
    )
