"""The evidence as people read it: a Markdown table, a plot, the protocol's settings as plain data."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..io.atomic import atomic_write, atomic_write_json, atomic_write_text
from .imbalance import is_imbalanced, mean_recall_per_class
from .registry import table_order
from .stats import route_verdict, samples_verdict, summarize, verdict

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
        arms = table_order(r["arm"] for r in rows)
        by_arm = {r["arm"]: r for r in rows}
        ax.errorbar(
            range(len(arms)),
            [by_arm[a]["mean"] for a in arms],
            yerr=[by_arm[a]["std"] for a in arms],
            fmt="o",
            capsize=4,
        )
        ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
        ax.set_xlabel(f"arm ({budgets[0]} labels per class; error bars: std over seeds)")
    else:
        for arm in table_order(r["arm"] for r in rows):
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


def imbalanced_note(counts: Sequence[int]) -> str:
    """The report's first line on an imbalanced labeled folder: what its figures are."""
    return (
        f"LABELED is imbalanced (largest class {max(counts)} images, smallest {min(counts)}): every figure here is "
        "balanced accuracy, the mean of the per-class recalls (each class weighs alike, as on a balanced test set)"
    )


def write_report(
    out_dir: Path,
    name: str,
    records: list[dict[str, Any]],
    caveats: list[str],
    run: dict[str, Any] | None,
    class_names: Sequence[str],
    *,
    settings: ArmSettings,
    seeds: Sequence[int],
    test_fraction: float,
    test_dir: str | Path | None,
) -> dict[str, Any]:
    """An evaluation's report from its records: ``evaluation.json`` (summary, verdicts, caveats, settings),
    ``evaluation.md`` and ``evaluation.png`` in ``out_dir``; returns what the JSON holds."""
    counts = records[0].get("class_counts", []) if records else []
    balanced = is_imbalanced(counts) and all("balanced_accuracy" in r for r in records)  # (older records lack it)
    metric = "balanced_accuracy" if balanced else "accuracy"
    rows = summarize(records, metric=metric)
    verdicts = [v for v in (*(verdict(r) for r in rows), samples_verdict(rows), route_verdict(rows)) if v]
    recall = mean_recall_per_class(records)
    if metric != "accuracy":
        verdicts.insert(0, imbalanced_note(counts))
    report = {
        "metric": metric,
        "class_counts": counts,
        "per_class_recall": recall,
        "settings": settings_dict(settings),
        "run": run,  # with --run: the settings its arms were trained with (not "settings"' gan)
        "seeds": list(seeds),
        "test_fraction": None if test_dir is not None else test_fraction,
        "test_dir": None if test_dir is None else str(test_dir),
        "summary": rows,
        "runs": records,
        "verdicts": verdicts,
        "caveats": caveats,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "evaluation.json", report)
    recall_md = f"\n\nRecall per class (%):\n\n{recall_table(recall, class_names, counts)}" if recall else ""
    atomic_write_text(
        out_dir / "evaluation.md",
        markdown_table(rows, metric=metric)
        + recall_md
        + "\n\n"
        + "\n".join(f"- {v}" for v in (*verdicts, *caveats))
        + "\n",
    )
    plot_accuracy(rows, out_dir / "evaluation.png", f"{name}: {metric.replace('_', ' ')} by arm")
    return report
