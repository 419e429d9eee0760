"""The evidence as people read it: a Markdown table, a plot, the protocol's settings as plain data."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..io.atomic import atomic_write
from .registry import ARMS

if TYPE_CHECKING:
    from .arms import ArmSettings


def markdown_table(
    rows: list[dict[str, Any]], group: Sequence[str] = ("dataset", "labels_per_class"), metric: str = "accuracy"
) -> str:
    """The summary as a Markdown table (``metric``: what the rows' means are, as a column title)."""
    head = [
        *group,
        "arm",
        "seeds",
        f"{metric.replace('_', ' ')} (mean ± std)",
        "gain vs baseline (95% CI)",
        "CAS",
        "real clf on synth.",
        "diversity",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        gain = f"{100 * r['gain']:+.1f} ± {100 * r['gain_ci95']:.1f} pts" if "gain" in r else ""
        if "gain" in r and r["gain_ci95"] != r["gain_ci95"]:  # one seed: no interval to show
            gain = f"{100 * r['gain']:+.1f} pts (one seed: no interval)"
        q = [f"{r[k]:.3f}" if k in r else "" for k in ("cas", "real_clf_on_synthetic", "diversity")]
        lines.append(
            "| "
            + " | ".join(
                [*(str(r[g]) for g in group), r["arm"], str(r["n"]), f"{r['mean']:.4f} ± {r['std']:.4f}", gain, *q]
            )
            + " |"
        )
    return "\n".join(lines)


def recall_table(recall: dict[str, list[float]], class_names: Sequence[str], counts: Sequence[int]) -> str:
    """Each arm's recall per class (%) as a Markdown table; the header gives each class's labeled images."""
    head = "| arm | " + " | ".join(f"{n} ({c})" for n, c in zip(class_names, counts)) + " |"
    lines = [head, "| --- |" + " --- |" * len(class_names)]
    lines += [f"| {arm} | " + " | ".join(f"{100 * v:.0f}" for v in values) + " |" for arm, values in recall.items()]
    return "\n".join(lines)


def plot_accuracy(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Accuracy against label budget, one line per arm (error bars: std over seeds); with one budget,
    each arm's accuracy side by side."""
    import matplotlib.pyplot as plt

    fig = accuracy_figure(rows, title)
    atomic_write(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    plt.close(fig)


def accuracy_figure(rows: list[dict[str, Any]], title: str) -> Any:
    """The figure :func:`plot_accuracy` saves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    budgets = sorted({r["labels_per_class"] for r in rows})
    if len(budgets) == 1:  # one budget: each arm's accuracy side by side, not a column of points
        arms = [a for a in ARMS if any(r["arm"] == a for r in rows)]
        by_arm = {r["arm"]: r for r in rows}
        ax.errorbar(range(len(arms)), [by_arm[a]["mean"] for a in arms], yerr=[by_arm[a]["std"] for a in arms],
                    fmt="o", capsize=4)  # fmt: skip
        ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
        ax.set_xlabel(f"arm ({budgets[0]} labels per class; error bars: std over seeds)")
    else:
        for arm in ARMS:
            pts = sorted((r["labels_per_class"], r["mean"], r["std"]) for r in rows if r["arm"] == arm)
            if pts:
                x, m, s = zip(*pts)
                ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=arm)
        ax.set_xscale("log")
        ax.set_xlabel("labels per class")
        ax.legend()
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def settings_dict(settings: ArmSettings) -> dict[str, Any]:
    """The protocol's settings as plain data for the JSON report."""
    return {
        "gan": settings.gan.to_dict(),
        "classifier": {**asdict(settings.classifier), "augment_path": settings.classifier.augment_on(settings.device)},
        "synthetic_ratio": settings.synthetic_ratio,
        "flip": settings.flip,
        "device": str(settings.device),
        "ssl": settings.ssl.to_dict(),
        "min_confidence": settings.min_confidence,
        "temperature": settings.temperature,
        "filter_top": settings.filter_top,
    }
