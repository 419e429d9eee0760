"""The evidence as people read it: a Markdown table, a plot, the protocol's settings as plain data."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..io.atomic import atomic_write
from .stats import ARMS

if TYPE_CHECKING:
    from .arms import ArmSettings


def markdown_table(rows: list[dict[str, Any]], group: Sequence[str] = ("dataset", "labels_per_class")) -> str:
    """The summary as a Markdown table."""
    head = [
        *group,
        "arm",
        "seeds",
        "accuracy (mean ± std)",
        "gain vs baseline (95% CI)",
        "CAS",
        "real clf on synth.",
        "diversity",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        gain = f"{100 * r['gain']:+.1f} ± {100 * r['gain_ci95']:.1f} pts" if "gain" in r else ""
        q = [f"{r[k]:.3f}" if k in r else "" for k in ("cas", "real_clf_on_synthetic", "diversity")]
        lines.append(
            "| "
            + " | ".join(
                [*(str(r[g]) for g in group), r["arm"], str(r["n"]), f"{r['mean']:.4f} ± {r['std']:.4f}", gain, *q]
            )
            + " |"
        )
    return "\n".join(lines)


def plot_accuracy(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Accuracy against label budget, one line per arm (error bars: std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm in ARMS:
        pts = sorted((r["labels_per_class"], r["mean"], r["std"]) for r in rows if r["arm"] == arm)
        if pts:
            x, m, s = zip(*pts)
            ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=arm)
    ax.set_xscale("log")
    ax.set_xlabel("labels per class")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    plt.close(fig)


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
