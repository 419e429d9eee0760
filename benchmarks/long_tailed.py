"""Long-tailed benchmark: with few labels for some classes, do GAN images beat the methods without a GAN?

Protocol (defaults), sharing ``limited_labels.py``'s data and evaluation splits: MNIST (official test
split) and CIFAR-10 (the validation split of 500 images per class held out with split seed 0). The
labeled set follows an exponential profile, ``--largest`` images for class 0 down to ``largest /
--ratio`` for class 9 (500 → 5 at ratio 100), drawn anew for each seed from the training images; the rest
of the training images (at most ``--max-unlabeled``) are the unlabeled pool of the arms that use one. The
test split stays balanced. Every arm trains the same classifier for the same steps; records carry
``imbalance_ratio``, ``balanced_accuracy``, per-class recall, the rarest three classes' mean recall,
``seed`` and ``arm``; gains are paired by seed with 95% t-intervals. On a CPU, the GANs take ``fit``'s
CPU sizes and the classifier the CPU-reduced recipe of ``limited_labels.py``.

Examples:
    python benchmarks/long_tailed.py --dataset mnist                  # writes docs/results/long_tailed.*
    python benchmarks/long_tailed.py --dataset cifar10 --resume       # adds CIFAR-10 to the same report
    python benchmarks/long_tailed.py --train-dir FOLDER --quick --largest 6 --ratio 3 --out /tmp/lt  # code path
    python benchmarks/long_tailed.py --report-only                    # redraws from the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lab_arms import LONG_TAILED_ARMS
from limited_labels import ROOT, extract, load_previous, run_meta

from gan_augment import ModelConfig, TrainConfig, load_image_data
from gan_augment.config import for_device
from gan_augment.data import draw_long_tailed, draw_per_class, long_tailed_counts
from gan_augment.device import resolve_device
from gan_augment.evaluate import (
    ARM_REGISTRY,
    ArmSettings,
    ClassifierConfig,
    SeedArms,
    Split,
    paired_gain,
    settings_dict,
)
from gan_augment.io import atomic_write, atomic_write_text, load_generator, save_image_atomic
from gan_augment.progress import Reporter
from gan_augment.sampling import class_grid

# (synthetic arm, its control): the same teacher's labels on as many real unlabeled images of each class.
CONTROLS = (("gan-balance-soft", "pseudo-balance"), ("gan-balance-soft-la", "pseudo-balance-la"))
TARGET = 0.015  # the bar: the best synthetic arm with logit adjustment this far above logit adjustment
PUBLISHED = (
    "Published, for orientation (not ours: ResNet-32, full CIFAR-10-LT with 5,000 → 50 images, 200 epochs): "
    "cross-entropy about 72%, logit adjustment about 81% balanced accuracy (Menon et al. 2021)."
)


def load(spec: str, data_dir: Path, val_per_class: int, quick: bool) -> dict[str, Any]:
    """The training images and the balanced evaluation split of ``spec`` (mnist, cifar10 or a folder)."""
    work = ROOT / ".data"
    if spec == "mnist":
        root = extract(data_dir / "mnist.zip", work / "mnist")
        train, test = load_image_data(root / "train", image_size=28), load_image_data(root / "test", image_size=28)
        return {"data": train, "pool": np.arange(len(train.labels)), "test": (test.images, test.labels), "flip": False}
    folder = extract(data_dir / "cifar10-train.zip", work / "cifar10") / "train" if spec == "cifar10" else Path(spec)
    data = load_image_data(folder, image_size=16 if quick else 32)
    val, pool = draw_per_class(data.labels.numpy(), len(data.class_names), val_per_class, np.random.default_rng(0))
    val = np.sort(val)
    return {"data": data, "pool": pool, "test": (data.images[val], data.labels[val]), "flip": True}


def make_split(loaded: dict[str, Any], largest: int, ratio: float, seed: int, max_unlabeled: int) -> Split:
    """The seed's long-tailed labeled set from the pool; the rest (at most ``max_unlabeled``) unlabeled."""
    data, rng = loaded["data"], np.random.default_rng(2000 + seed)
    k = len(data.class_names)
    chosen, rest = draw_long_tailed(data.labels.numpy(), k, largest, ratio, rng, among=loaded["pool"])
    rest = np.sort(rng.permutation(rest)[:max_unlabeled])
    test_images, test_labels = loaded["test"]
    images, labels = data.images, data.labels
    return Split(images[chosen], labels[chosen], images[rest], test_images, test_labels, data.class_names)


def pm(d: tuple[float, float] | None) -> str:
    if d is None:
        return ""
    return f"{100 * d[0]:+.1f} ± {100 * d[1]:.1f}" if d[1] == d[1] else f"{100 * d[0]:+.1f} (one seed)"


def by_seed(records: list[dict[str, Any]], arm: str, key: str = "balanced_accuracy") -> dict[int, float]:
    return {r["seed"]: r[key] for r in records if r["arm"] == arm and key in r}


def dataset_tables(name: str, sub: list[dict[str, Any]]) -> tuple[list[str], str]:
    """The Markdown of one dataset's records: the arms, the per-class recall, the run's memorisation; and
    the sentence on the issue's bar (the best synthetic arm with logit adjustment against logit adjustment)."""
    counts = sub[0]["class_counts"]
    arms = [a for a in ARM_REGISTRY if any(r["arm"] == a for r in sub)]
    lines = [
        f"### {name}: {' / '.join(map(str, counts))} labeled images per class (ratio {sub[0]['imbalance_ratio']:g}), "
        f"{sub[0]['unlabeled']:,} unlabeled, {sub[0]['test']:,} test images (balanced)",
        "",
        "| arm | seeds | balanced accuracy | vs cross-entropy (pts, 95% CI) | vs logit-adjust (pts, 95% CI) "
        "| rarest 3 recall | accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    base, la = by_seed(sub, "baseline"), by_seed(sub, "logit-adjust")
    for arm in arms:
        b = np.array(list(by_seed(sub, arm).values()))
        std = b.std(ddof=1) if len(b) > 1 else 0.0
        rare = np.mean(list(by_seed(sub, arm, "rare_recall").values()))
        acc = np.mean(list(by_seed(sub, arm, "accuracy").values()))
        vs_base = pm(paired_gain(by_seed(sub, arm), base)) if arm != "baseline" else ""
        vs_la = pm(paired_gain(by_seed(sub, arm), la)) if arm != "logit-adjust" else ""
        lines.append(
            f"| {arm} | {len(b)} | {100 * b.mean():.1f} ± {100 * std:.1f} | {vs_base} | {vs_la} "
            f"| {100 * rare:.1f} | {100 * acc:.1f} |"
        )
    lines += ["", "Recall per class (%, mean over seeds; the header gives each class's labeled images):", ""]
    lines += ["| arm | " + " | ".join(f"{c} ({n})" for c, n in enumerate(counts)) + " |"]
    lines += ["| --- |" + " --- |" * len(counts)]
    for arm in arms:
        recall = np.nanmean([r["per_class_recall"] for r in sub if r["arm"] == arm], axis=0)
        lines.append(f"| {arm} | " + " | ".join(f"{100 * v:.0f}" for v in recall) + " |")
    quality = [r for r in sub if r["arm"] == "gan-balance" and "nn_ratio_per_class" in r]
    if quality:
        lines += [
            "",
            "The per-class run behind the `gan-balance` arms, per class (mean over seeds): memorisation and CAS. "
            "NN ratio: median distance of its images to the nearest training image of the class, over that of "
            "the class's held-out real images (about 1: new images; near 0: copies). Copies: share of its images "
            "nearer to a training image than any held-out image is. CAS: recall of a classifier trained on its "
            "images alone.",
            "",
            "| class (labeled) | " + " | ".join(f"{c} ({n})" for c, n in enumerate(counts)) + " |",
            "| --- |" + " --- |" * len(counts),
        ]
        for key, label in (
            ("nn_ratio_per_class", "NN ratio"),
            ("copies_per_class", "copies"),
            ("cas_per_class", "CAS"),
        ):
            values = np.nanmean([r[key] for r in quality], axis=0)
            lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    pairs = [(a, c) for a, c in CONTROLS if a in arms and c in arms]
    if pairs:
        lines += ["", "Synthetic images against real ones, the same teacher and count (paired by seed):", ""]
        head = "| synthetic arm − its real-image control | balanced accuracy (pts, 95% CI) | rarest 3 recall (pts) |"
        lines += [head, "| --- | --- | --- |"]
        for a, c in pairs:
            rare = paired_gain(by_seed(sub, a, "rare_recall"), by_seed(sub, c, "rare_recall"))
            lines.append(f"| {a} − {c} | {pm(paired_gain(by_seed(sub, a), by_seed(sub, c)))} | {pm(rare)} |")
    adjusted = [a for a in arms if a.endswith("+logit-adjust") and ARM_REGISTRY[a].samples]
    verdict = ""
    if adjusted and la:
        best = max(adjusted, key=lambda a: np.mean(list(by_seed(sub, a).values())))
        gain = paired_gain(by_seed(sub, best), la)
        met = gain is not None and gain[0] >= TARGET and gain[1] == gain[1] and gain[0] - gain[1] > 0
        verdict = (
            f"{name}: the best synthetic arm with logit adjustment, {best}, is {pm(gain)} points of balanced accuracy "
            f"against logit adjustment alone: the bar (+{100 * TARGET:.1f}, interval above zero) is "
            f"{'met' if met else 'not met'}."
        )
        lines += ["", f"**{verdict}**"]
    return lines, verdict


def plot_recall(sub: list[dict[str, Any]], path: Path, title: str) -> None:
    """Recall per class against the class's labeled images, one line per arm (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sub[0]["class_counts"]
    fig, ax = plt.subplots(figsize=(7, 4))
    shown = ("baseline", "logit-adjust", "gan-balance", "gan-balance-soft+logit-adjust",
             "gan-balance-soft-la+logit-adjust", "pseudo-balance-la")  # fmt: skip
    for arm in [a for a in shown if any(r["arm"] == a for r in sub)]:
        recall = np.nanmean([r["per_class_recall"] for r in sub if r["arm"] == arm], axis=0)
        ax.plot(range(len(counts)), 100 * recall, marker="o", label=arm)
    ax.set_xticks(range(len(counts)), [f"{c}\n({n})" for c, n in enumerate(counts)])
    ax.set_xlabel("class (labeled images)")
    ax.set_ylabel("test recall (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, dpi=110, format="png"))
    plt.close(fig)


def write_report(out: Path, report: dict[str, Any]) -> None:
    """The JSON, the Markdown tables and the recall plots, in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "long_tailed.json", json.dumps(report, indent=2) + "\n")
    records = report["runs"]
    lines = [
        "# Long-tailed labels: GAN images against the methods without a GAN",
        "",
        f"Written by `benchmarks/long_tailed.py` ({report['protocol']}, {report['state']}) on {report['machine']}, "
        f"torch {report['torch']}, gan-augment {report['package_version']}, commit(s) "
        f"{', '.join(sorted({r.get('commit', report['commit']) for r in records}))}; seeds "
        f"{report['seeds']}; wall time {report['wall_seconds'] / 60:.1f} min. Balanced accuracy is the mean of the "
        "per-class recalls on a balanced test split (MNIST: its official test split; CIFAR-10: 500 held-out "
        "images per class). Differences are paired by seed (each seed draws its own long-tailed labeled set); "
        "the interval is a 95% t-interval.",
        "",
        *[f"Settings, {name}: " + json.dumps(d) for name, d in report["settings"].items()],
        "",
        "Arms: " + "; ".join(f"`{a}`" for a in report["arms"]) + " (docs/architecture.md says what each is).",
        "",
    ]
    verdicts = []
    for name in sorted({r["dataset"] for r in records}):
        sub = [r for r in records if r["dataset"] == name]
        tables, verdict = dataset_tables(name, sub)
        lines += [*tables, ""]
        verdicts += [verdict] if verdict else []
        try:
            plot_recall(sub, out / f"long_tailed_{name}.png", f"{name}-LT, ratio {sub[0]['imbalance_ratio']:g}")
            lines += [f"![recall per class, {name}](long_tailed_{name}.png)", ""]
        except ImportError:
            lines += ["(plot not drawn: matplotlib is not installed)", ""]
        if (out / f"long_tailed_samples_{name}.png").is_file():
            lines += [
                f"Samples of the seed-0 per-class run, {name} (one row per class, most labeled first):",
                "",
                f"![samples, {name}](long_tailed_samples_{name}.png)",
                "",
            ]
    lines += [PUBLISHED, ""]
    notes = os.path.relpath(ROOT / "docs" / "results_notes.md", out.resolve())  # by hand: this never rewrites them
    notes += "#notes-on-the-long-tailed-results-written-by-hand"
    lines += [f"Notes written by hand about these results: [results_notes.md]({notes}).", ""]
    atomic_write_text(out / "long_tailed.md", "\n".join(lines))
    for v in verdicts:
        print(v)


def configs(args: argparse.Namespace, dev: torch.device) -> tuple[TrainConfig, ClassifierConfig]:
    if args.quick:
        gan = TrainConfig(steps=2, batch_size=4, log_every=1, model=ModelConfig(g_width=4, d_width=4, z_dim=8))
        return gan, ClassifierConfig(steps=2, width=4, batch_size=8, workers=0)
    gan = for_device(dev.type, **({"steps": args.gan_steps} if args.gan_steps else {}))
    if dev.type == "cuda":
        return gan, ClassifierConfig(steps=args.clf_steps or ClassifierConfig().steps)
    return gan, ClassifierConfig(steps=args.clf_steps or 400, width=16, batch_size=64, workers=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["mnist", "cifar10", "both"], default="both")
    p.add_argument("--train-dir", help="any ImageFolder instead (its first 10 classes, a validation split carved out)")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--largest", type=int, default=500, help="labeled images of the largest class")
    p.add_argument("--ratio", type=float, default=100.0, help="imbalance ratio: largest over smallest class")
    p.add_argument("--max-unlabeled", type=int, default=10_000, help="cap on the unlabeled pool")
    p.add_argument("--val-per-class", type=int, default=500)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=list(LONG_TAILED_ARMS), choices=list(ARM_REGISTRY))
    p.add_argument("--gan-steps", type=int, help="GAN steps (default: fit's for the device)")
    p.add_argument("--clf-steps", type=int, help="classifier steps (default 400 on a CPU, the recipe's on a GPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    p.add_argument("--resume", action="store_true", help="keep the runs already in the JSON, run the arms missing")
    p.add_argument("--report-only", action="store_true", help="run nothing: redraw from OUT/long_tailed.json")
    p.add_argument("--quick", action="store_true", help="tiny models and data: the code path, not accuracy")
    args = p.parse_args()
    previous = load_previous(args.out / "long_tailed.json") if (args.resume or args.report_only) else {}
    if args.report_only:
        if not previous.get("runs"):
            sys.exit(f"Error: no runs in {args.out / 'long_tailed.json'}: nothing to report")
        return write_report(args.out, previous)
    dev = resolve_device(args.device)
    gan, clf = configs(args, dev)
    report: dict[str, Any] = {
        **run_meta(dev),
        "protocol": "quick (code path only)" if args.quick else f"{'GPU' if dev.type == 'cuda' else 'CPU'} protocol",
        "arms": [a for a in ARM_REGISTRY if a in {*args.arms, *previous.get("arms", [])}],
        "settings": previous.get("settings", {}),
        "runs": previous.get("runs", []),
        "seeds": [],
        "state": "in progress",
        "wall_seconds": float(previous.get("wall_seconds", 0.0)),
    }
    for r in report["runs"]:  # each record says the commit it was measured at (a resumed report mixes them)
        r.setdefault("commit", previous.get("commit", "?"))
    done = {(r["dataset"], r["seed"], r["arm"]) for r in report["runs"]}  # --resume: the arms missing run
    t0, wall0 = time.perf_counter(), report["wall_seconds"]
    reporter = Reporter()
    names = [args.train_dir] if args.train_dir else (["mnist", "cifar10"] if args.dataset == "both" else [args.dataset])
    for spec in names:
        loaded = load(spec, args.data_dir, 2 if args.quick else args.val_per_class, args.quick)
        name = Path(spec).name
        data = loaded["data"]
        k, size, ch = len(data.class_names), int(data.images.shape[-1]), int(data.images.shape[1])
        settings = ArmSettings(
            gan=gan.replace(image_size=size, channels=ch, model=replace(gan.model, image_size=size, channels=ch)),
            classifier=clf,
            flip=loaded["flip"],
            device=dev,
        )  # fmt: skip
        now = json.loads(json.dumps({**settings_dict(settings), "largest": args.largest, "ratio": args.ratio,
                                     "max_unlabeled": args.max_unlabeled}))  # fmt: skip
        if report["settings"].get(name, now) != now:
            sys.exit(f"Error: --resume with other settings for {name} than the runs in {args.out}: another --out")
        report["settings"][name] = now
        counts = long_tailed_counts(k, args.largest, args.ratio)
        for seed in args.seeds:
            todo = [arm for arm in args.arms if (name, seed, arm) not in done]
            if not todo:
                continue
            split = make_split(loaded, args.largest, args.ratio, seed, 20 if args.quick else args.max_unlabeled)
            reporter.message(f"{name}-LT seed {seed}: {counts} labeled, {len(split.unlabeled)} unlabeled")
            work = (args.out / "runs" if args.quick else ROOT / ".data" / "runs" / "long-tailed") / name
            arms = SeedArms(split, settings, seed, work, reporter, reuse=True)  # a finished run of the same config
            tag = {
                "dataset": name,
                "imbalance_ratio": args.ratio,
                "largest": args.largest,
                "class_counts": counts,
                "unlabeled": len(split.unlabeled),
                "test": len(split.test_labels),
                "commit": report["commit"],
            }
            report["runs"] += [{**tag, **arms.run(arm)} for arm in todo]
            report["seeds"] = sorted({r["seed"] for r in report["runs"]})
            report["wall_seconds"] = round(wall0 + time.perf_counter() - t0, 1)
            if seed == args.seeds[0] and "gan-balance" in todo:
                gen, _ = load_generator(work / f"gan-per-class-seed{seed}", device="cpu")
                grid = class_grid(gen, per_row=10, seed=0, upscale=2)
                save_image_atomic(grid, args.out / f"long_tailed_samples_{name}.png")
            write_report(args.out, report)  # every finished seed is on disk
    report["state"] = "complete"
    report["wall_seconds"] = round(wall0 + time.perf_counter() - t0, 1)
    write_report(args.out, report)


if __name__ == "__main__":
    sys.exit(main())
