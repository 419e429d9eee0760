"""Limited-labels benchmark: does GAN augmentation raise a secondary classifier's accuracy?

Protocol (defaults): CIFAR-10 from ``../shared/data/cifar10-train.zip`` — with split seed 0, a
validation split of 500 images per class that nothing trains on (the evaluation split unless
``--test-dir`` names another), a labeled subset of N images per class drawn anew for each seed, the
rest as the unlabeled pool; budgets 25, 100 and 400 labels per class. MNIST from
``../shared/data/mnist.zip``: 10 labels per class, official test split. Arms: baseline (labels only,
classic augmentation), gan-per-class and gan-conditional (baseline + GANAugmentedDataset at
``--synthetic-ratio``, labelled by the generator's class), gan-teacher / gan-soft (the same images
labelled by the baseline classifier of the seed: hard labels above ``--min-confidence``, or its
probabilities at ``--temperature``), gan-agree (the generator's class, kept where that classifier
agrees with confidence ≥ ``--min-confidence``), gan-pretrain (half the classifier's steps on the
teacher-labelled synthetic images alone, then half on the real ones), gan-pretrained-soft (images of
the per-class run's shared generator as pre-trained on every image, the teacher's probabilities as
targets), pseudo-label (the control:
real unlabeled images labelled by the same teacher, as many as the sample arms add), d-features
(logistic regression on discriminator features of an unconditional GAN on labeled + unlabeled
images; labeled ∪ unlabeled is the whole pool at every budget, so one such GAN per seed serves all
budgets unless ``--max-unlabeled`` caps the pool), ssl (semi-supervised GAN). Every arm uses the
package's GAN defaults and the same secondary classifier recipe and step count.

Examples:
    python benchmarks/limited_labels.py                                  # full protocol (GPU)
    python benchmarks/limited_labels.py --dataset mnist --device cpu --cpu-reduced
    python benchmarks/limited_labels.py --train-dir my_imagefolder --quick --out /tmp/r
    python benchmarks/limited_labels.py --dataset cifar10 --time-budget 7 --out r    # stops starting runs at 7 min
    python benchmarks/limited_labels.py --dataset cifar10 --resume --out r           # adds the missing runs
    python benchmarks/limited_labels.py --dataset cifar10 --report-only --out r      # redraws from its JSON
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import lab_arms  # noqa: F401  (registers the experiments' arms beside the package's)
import numpy as np
import torch

from gan_augment import ModelConfig, TrainConfig, __version__, load_image_data
from gan_augment.config import SSL_ARCHITECTURES, SSLConfig, for_device
from gan_augment.data import draw_per_class
from gan_augment.device import resolve_device
from gan_augment.evaluate import (
    ARM_REGISTRY,
    AUGMENT_MODES,
    ArmSettings,
    ClassifierConfig,
    SeedArms,
    Split,
    arm_names,
    markdown_table,
    paired_gain,
    plot_accuracy,
    settings_dict,
    summarize,
)
from gan_augment.io import atomic_write, atomic_write_text, load_generator, save_image_atomic
from gan_augment.progress import Reporter
from gan_augment.sampling import class_grid

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = """Published CIFAR-10 *test* errors, for orientation (not ours, other split, other budgets of compute):
supervised WRN-28-2 with 4,000 labels 20.26% (Oliver et al. 2018); feature-matching GAN semi-supervised
21.83% (1,000 labels) and 18.63% (4,000 labels) (Salimans et al. 2016); FixMatch 5.07% (250 labels) and
4.26% (4,000 labels) (Sohn et al. 2020)."""


# Published test errors of the feature-matching SSL GAN (Salimans et al. 2016), drawn on the ssl curve.
SSL_PUBLISHED = {
    ("mnist", 10): (0.93, "Salimans et al. 2016: 0.93% (180,000 iterations)"),
    ("cifar10", 100): (21.83, "Salimans et al. 2016: 21.83% (600,000 iterations)"),
}


def run_meta(dev: torch.device) -> dict[str, str]:
    """Where and with what a benchmark measured: the machine, torch, the package version, the commit."""
    return {
        "machine": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "package_version": __version__,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }


def extract(archive: Path, dest: Path) -> Path:
    """Unzip ``archive`` into ``dest`` once (a marker file records completion)."""
    marker = dest / ".extracted"
    if not marker.exists():
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
        marker.write_text(archive.name)
    return dest


# ----------------------------------------------------------------------------- the synthetic-ratio sweep
def ratio_sweep(
    seed_arms: SeedArms, arms: Sequence[str], ratios: Sequence[float], filter_top: float | None = None
) -> list[dict[str, Any]]:
    """Each sample arm retrained at each synthetic ratio, reusing the seed's GANs and baseline (teacher).

    ``filter_top`` keeps only that top fraction of the generator's candidates by discriminator
    score (``GANAugmentedDataset(filter_top=...)``); records then carry it.
    """
    if filter_top is not None:
        seed_arms = seed_arms.with_settings(replace(seed_arms.settings, filter_top=filter_top))
    return [seed_arms.run(arm, r) for arm in arms for r in ratios]


def ratio_table(records: list[dict[str, Any]]) -> str:
    """Markdown table of a synthetic-ratio sweep: accuracy and paired gain over the baseline per arm and ratio."""
    lines = [
        "| dataset | labels_per_class | arm | synthetic ratio | D filter (top) | seeds | accuracy (mean ± std) "
        "| gain vs baseline (95% CI) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = sorted({(r["dataset"], r["labels_per_class"]) for r in records}, key=str)
    for ds, n in keys:
        sub = [r for r in records if r["dataset"] == ds and r["labels_per_class"] == n]
        base = {r["seed"]: r["accuracy"] for r in sub if r["arm"] == "baseline"}
        variants = {(r["arm"], r["synthetic_ratio"], r.get("filter_top") or 0.0) for r in sub if r["arm"] != "baseline"}
        order = {a: i for i, a in enumerate(arm_names())}
        for arm, ratio, top in sorted(variants, key=lambda v: (order.get(v[0], 99), v[1], v[2])):
            accs = {
                r["seed"]: r["accuracy"]
                for r in sub
                if r["arm"] == arm and r["synthetic_ratio"] == ratio and (r.get("filter_top") or 0.0) == top
            }
            a = np.array(list(accs.values()))
            paired = paired_gain(accs, base)
            std = a.std(ddof=1) if len(a) > 1 else 0.0
            gain = f"{100 * paired[0]:+.1f} ± {100 * paired[1]:.1f} pts" if paired else ""
            lines.append(
                f"| {ds} | {n} | {arm} | {ratio} | {top or '–'} | {len(a)} | {a.mean():.4f} ± {std:.4f} | {gain} |"
            )
    return "\n".join(lines)


# (arm, its control): the same teacher labels on real images instead of synthetic ones. Against
# distill-real (the labeled images again), a positive difference is what the synthetic *images* add
# beyond distillation; against pseudo-soft / pseudo-label, what they are worth next to real unlabeled ones.
CONTROL_PAIRS = (
    ("gan-soft", "distill-real"),
    ("gan-soft", "pseudo-soft"),
    ("gan-pretrained-soft", "distill-real"),
    ("gan-pretrained-soft", "pseudo-soft"),
    ("gan-teacher", "pseudo-label"),
)


def control_table(records: list[dict[str, Any]]) -> str:
    """Markdown table: each teacher arm against its real-image control at every ratio both ran, paired by seed."""
    lines = [
        "| dataset | labels_per_class | arm − control | synthetic ratio | seeds | difference (95% CI) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    plain = [r for r in records if not r.get("filter_top")]
    for ds, n in sorted({(r["dataset"], r["labels_per_class"]) for r in plain}, key=str):
        sub = [r for r in plain if r["dataset"] == ds and r["labels_per_class"] == n]
        for arm, control in CONTROL_PAIRS:
            for ratio in sorted({r["synthetic_ratio"] for r in sub if r["arm"] == arm}):
                accs = {r["seed"]: r["accuracy"] for r in sub if r["arm"] == arm and r["synthetic_ratio"] == ratio}
                ctrl = {r["seed"]: r["accuracy"] for r in sub if r["arm"] == control and r["synthetic_ratio"] == ratio}
                paired = paired_gain(accs, ctrl)
                if paired is not None:
                    seeds = len(set(accs) & set(ctrl))
                    diff = f"{100 * paired[0]:+.1f} ± {100 * paired[1]:.1f} pts"
                    lines.append(f"| {ds} | {n} | {arm} − {control} | {ratio} | {seeds} | {diff} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def plot_ssl_curve(
    runs: list[dict[str, Any]], path: Path, title: str, reference: tuple[float, str] | None = None
) -> None:
    """Test error against iterations, one line per seed (the ssl arm's ``curve``), and a published error."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in runs:
        steps, acc = zip(*[(c["step"], c["accuracy"]) for c in r["curve"]])
        ax.plot(
            steps, [100 * (1 - a) for a in acc], marker="o", label=f"seed {r['seed']} ({r['labels_per_class']}/class)"
        )
    if reference is not None:
        ax.axhline(reference[0], color="grey", linestyle="--", label=reference[1])
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("iterations")
    ax.set_ylabel("test error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    plt.close(fig)


def make_split(
    images: torch.Tensor,
    labels: torch.Tensor,
    pool: np.ndarray,
    n: int,
    seed: int,
    test: tuple[torch.Tensor, torch.Tensor],
    names: list[str],
    max_unlabeled: int | None,
) -> Split:
    """Draw N labeled images per class from ``pool`` with ``seed``; the rest of the pool is unlabeled."""
    rng = np.random.default_rng(1000 + seed)
    chosen, rest = draw_per_class(labels.numpy(), len(names), n, rng, among=pool)
    if max_unlabeled is not None:
        rest = rng.permutation(rest)[:max_unlabeled]
    return Split(images[chosen], labels[chosen], images[rest] if len(rest) else None, test[0], test[1], names)


def dataset_specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    data_dir = Path(args.data_dir)
    work = ROOT / ".data"
    specs = []
    if args.train_dir:
        specs.append(
            {
                "name": Path(args.train_dir).name,
                "train": Path(args.train_dir),
                "test": Path(args.test_dir) if args.test_dir else None,
                "budgets": args.budgets or [5],
                "flip": True,
            }
        )
        return specs
    if args.dataset in ("cifar10", "both"):
        root = extract(data_dir / "cifar10-train.zip", work / "cifar10")
        specs.append(
            {
                "name": "cifar10",
                "train": root / "train",
                "test": Path(args.test_dir) if args.test_dir else None,
                "budgets": args.cifar_budgets,
                "flip": True,
                "image_size": 32,
            }
        )
    if args.dataset in ("mnist", "both"):
        root = extract(data_dir / "mnist.zip", work / "mnist")
        specs.append(
            {
                "name": "mnist",
                "train": root / "train",
                "test": root / "test",
                "budgets": args.mnist_budgets,
                "flip": False,
                "image_size": 28,
            }
        )
    return specs


def load_previous(path: Path) -> dict[str, Any]:
    """The report a killed or time-limited run left, to be continued by ``--resume`` (empty if none)."""
    if not path.is_file():
        return {}
    try:
        previous = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        sys.exit(f"Error: {path} is not valid JSON ({e}); move it away or drop --resume")
    return previous if isinstance(previous, dict) else {}


def default_report(out: Path) -> Path:
    """Where the full report goes when --report is not given: the project's page (docs/results.md) only for
    the default --out; any other --out keeps its report beside its tables, never over the project's page."""
    default = ROOT / "docs" / "results"
    return ROOT / "docs" / "results.md" if out.resolve() == default.resolve() else out / "report.md"


def merged(paths: Sequence[Path]) -> dict[str, Any]:
    """One report's contents from several: their runs, sweeps and settings together; the commits, machines
    and states of each, joined."""
    parts = [load_previous(p) for p in paths]
    missing = [str(p) for p, part in zip(paths, parts) if not part.get("runs")]
    if missing:
        sys.exit(f"Error: no runs in {', '.join(missing)}")
    datasets = [{r["dataset"] for r in part["runs"]} for part in parts]
    if any(a & b for i, a in enumerate(datasets) for b in datasets[i + 1 :]):
        sys.exit("Error: --merge takes one report per dataset: two of these hold the same dataset")

    def joined(key: str) -> str:
        return ", ".join(dict.fromkeys(str(part.get(key, "?")) for part in parts))

    return {
        **{k: joined(k) for k in ("machine", "torch", "package_version", "commit", "protocol", "state")},
        "runs": [r for part in parts for r in part["runs"]],
        "ratio_sweep": [r for part in parts for r in part.get("ratio_sweep", [])],
        "settings": {k: v for part in parts for k, v in part.get("settings", {}).items()},
        "wall_seconds": sum(float(part.get("wall_seconds", 0.0)) for part in parts),
    }


def write_report(
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    sweep: list[dict[str, Any]],
    grids: dict[str, str],
    per_dataset_settings: dict[str, Any],
    meta: dict[str, Any],
    wall: float,
    state: str,
) -> None:
    """JSON, table, plots and (unless --quick) the Markdown report from every record so far, each written atomically.

    ``state`` says whether the protocol is complete, still running, or cut short by ``--time-budget``;
    ``meta`` holds the machine, torch version, package version, commit and protocol of the runs.
    """
    wall = round(wall, 1)  # what the JSON keeps, so a --report-only redraw prints the same Markdown
    rows = summarize(records)
    machine, torch_version, version, commit, protocol = (
        meta[k] for k in ("machine", "torch", "package_version", "commit", "protocol")
    )
    report = {
        "machine": machine,
        "torch": torch_version,
        "package_version": version,
        "commit": commit,
        "protocol": protocol,
        "state": state,
        "seeds": sorted({r["seed"] for r in records}),
        "wall_seconds": wall,
        "settings": per_dataset_settings,
        "summary": rows,
        "runs": [{"package_version": version, "commit": commit, "machine": machine, **r} for r in records],
        "ratio_sweep": sweep,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "limited_labels.json", json.dumps(report, indent=2) + "\n")
    try:
        import matplotlib  # noqa: F401  (the GPU machine may lack it: the report then goes without plots)

        plotted = True
    except ImportError:
        plotted = False
    for name in sorted({r["dataset"] for r in records}) if plotted else []:
        plot_accuracy(
            [r for r in rows if r["dataset"] == name],
            args.out / f"limited_labels_{name}.png",
            f"{name}: accuracy vs labels ({protocol})",
        )
    curves = {
        name: [r for r in records if r["dataset"] == name and r.get("curve")]
        for name in {r["dataset"] for r in records}
    }
    curves = {name: runs for name, runs in curves.items() if runs}
    for name, runs in curves.items() if plotted else []:
        reference = SSL_PUBLISHED.get((name, runs[0]["labels_per_class"]))
        plot_ssl_curve(runs, args.out / f"ssl_curve_{name}.png", f"{name}: ssl arm, averaged D", reference)
    table = markdown_table(rows)
    if not args.merge:  # a merge's table is its report's (docs/results.md): one copy of it
        atomic_write_text(args.out / "limited_labels.md", table + "\n")
    report_path = args.report if args.report else (None if args.quick else default_report(args.out))
    if report_path is not None:
        rel = (
            Path(args.out).resolve().relative_to(report_path.resolve().parent)
            if args.out.resolve().is_relative_to(report_path.resolve().parent)
            else args.out
        )
        lines = [
            "# Results: does GAN augmentation help a classifier with few labels?",
            "",
            f"Written by `benchmarks/limited_labels.py` ({protocol} protocol, {state}) on {machine}, "
            f"torch {torch_version}, gan-augment {version}, commit {commit}; "
            f"seeds {sorted({r['seed'] for r in records})}; wall time {wall / 60:.1f} min. "
            "Accuracy is on the held-out validation split (500 images per class carved from the training "
            "archive with split seed 0) unless a test directory is named; MNIST uses its official test split. "
            "Gains are paired by seed (each seed draws its own labeled subset); the interval is a 95% t-interval.",
            "",
            *[f"Settings, {name}: " + json.dumps(d) for name, d in per_dataset_settings.items()],
            "",
            table,
            "",
            "Synthetic-ratio sweep (the sample arms at the first budget, the same GANs and teacher, only the "
            "classifier retrained):",
            "",
            ratio_table(sweep) if sweep else "(not run)",
            "",
        ]
        controls = control_table([*records, *sweep])  # the main ratio and every swept one
        if controls:
            lines += [
                "Teacher arms against their controls (the same teacher's labels on real images instead of "
                "synthetic ones: distill-real = the labeled images again, pseudo-soft / pseudo-label = real "
                "unlabeled images; paired by seed):",
                "",
                controls,
                "",
            ]
        lines += [
            "CAS: accuracy on real test images of the same classifier trained on synthetic images only. "
            "Real clf on synth.: the baseline classifier's accuracy on synthetic images. Diversity: mean pairwise "
            "distance of a class's synthetic images over that of its real ones (1 = as diverse; near 0 = collapse).",
            "",
        ]
        for name in sorted({r["dataset"] for r in records}):
            lines += [
                f"![accuracy vs labels, {name}]({rel}/limited_labels_{name}.png)"
                if plotted
                else "(plot not drawn: matplotlib is not installed; `--report-only` redraws it where it is)",
                "",
            ]
        for name, runs in sorted(curves.items()):
            lines += [
                f"Learning curve of the ssl arm, {name} (test accuracy of the averaged discriminator, one line "
                "per seed; the learning rate decays linearly to 0 over the last third):",
                "",
                "| seed | " + " | ".join(f"{c['step']:,}" for c in runs[0]["curve"]) + " |",
                "| --- |" + " --- |" * len(runs[0]["curve"]),
                *[f"| {r['seed']} | " + " | ".join(f"{c['accuracy']:.4f}" for c in r["curve"]) + " |" for r in runs],
                "",
                f"![ssl learning curve, {name}]({rel}/ssl_curve_{name}.png)" if plotted else "(plot not drawn)",
                "",
            ]
        for title, fname in sorted(grids.items()):
            how = (
                "the per-class run's shared generator at the end of pre-training, unconditional"
                if title.endswith(" pretrained")
                else "one row per class"
            )
            lines += [f"Samples, {title} ({how}):", "", f"![{title}]({rel}/{fname})", ""]
        lines += [ANCHORS, ""]
        notes = report_path.with_name(f"{report_path.stem}_notes.md")  # by hand, kept when this is rewritten
        if notes.is_file():
            lines += [f"Notes written by hand about these results: [{notes.name}]({notes.name}).", ""]
        atomic_write_text(report_path, "\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["cifar10", "mnist", "both"], default="both")
    p.add_argument(
        "--data-dir", default=str(ROOT.parent / "shared" / "data"), help="folder with cifar10-train.zip and mnist.zip"
    )
    p.add_argument("--train-dir", help="any ImageFolder to use instead of the bundled datasets")
    p.add_argument("--test-dir", help="evaluation ImageFolder (default: the held-out validation split)")
    p.add_argument("--budgets", type=int, nargs="+", help="labels per class (--train-dir)")
    p.add_argument("--cifar-budgets", type=int, nargs="+", default=[25, 100, 400], help="CIFAR-10 labels per class")
    p.add_argument("--mnist-budgets", type=int, nargs="+", default=[10], help="MNIST labels per class")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=list(arm_names()), choices=list(arm_names()))
    p.add_argument("--synthetic-ratio", type=float, default=0.5)
    p.add_argument(
        "--sweep-ratios",
        type=float,
        nargs="*",
        default=[0.25, 0.75],
        help="other synthetic ratios for gan-per-class at the first budget, reusing its GANs (reported separately)",
    )
    p.add_argument(
        "--sweep-arms",
        nargs="*",
        choices=[a.name for a in ARM_REGISTRY.values() if a.synthetic],
        help="the arms the ratio sweep retrains at each ratio (their GANs and the baseline teacher reused; "
        "default: gan-per-class when it is among --arms, else none)",
    )
    p.add_argument(
        "--resample-each-epoch",
        action="store_true",
        help="the sample arms draw fresh synthetic images every classifier epoch (ClassifierConfig(resample=True))",
    )
    p.add_argument(
        "--reuse-gans",
        action="store_true",
        help="use the GAN runs an earlier call left in .data/runs when their configuration is this seed's "
        "(new arms on the same GANs without training them again)",
    )
    p.add_argument("--min-confidence", type=float, default=ArmSettings.min_confidence, help="teacher arms' threshold")
    p.add_argument("--temperature", type=float, default=ArmSettings.temperature, help="gan-soft's temperature")
    p.add_argument(
        "--sweep-filter-top",
        type=float,
        metavar="F",
        help="also sweep the ratios with discriminator rejection: keep the top F of candidates by D score",
    )
    p.add_argument("--val-per-class", type=int, default=500)
    p.add_argument("--gan-steps", type=int, help=f"GAN steps (default {TrainConfig().steps}; 400 with --cpu-reduced)")
    p.add_argument(
        "--pretrain-steps",
        type=int,
        help="per-class pre-training steps (default: the package's rule, steps/2 with unlabeled images)",
    )
    p.add_argument("--gan-batch", type=int, help="GAN batch size (per class model in per-class mode)")
    p.add_argument("--g-width", type=int, help="generator width (default: the package's, or the --cpu-reduced one)")
    p.add_argument("--d-width", type=int, help="discriminator width")
    p.add_argument("--z-dim", type=int, help="noise length")
    p.add_argument("--clf-steps", type=int, default=ClassifierConfig().steps)
    p.add_argument("--clf-width", type=int, default=ClassifierConfig().width)
    p.add_argument("--clf-batch", type=int, default=ClassifierConfig().batch_size)
    p.add_argument(
        "--clf-augment",
        default="auto",
        choices=list(AUGMENT_MODES),
        help="where the classic augmentation runs: auto = on the GPU when training on one, else albumentations",
    )
    p.add_argument(
        "--classifier", default="small-resnet", help="small-resnet or a torchvision model name, e.g. resnet18"
    )
    p.add_argument("--max-unlabeled", type=int, help="cap on the unlabeled pool (reduced runs)")
    p.add_argument("--ssl-steps", type=int, help="ssl arm iterations (default: the package's for the device)")
    p.add_argument("--ssl-architecture", choices=list(SSL_ARCHITECTURES), default="auto")
    p.add_argument("--ssl-consistency", type=float, default=0.0, help="ssl: weight of the consistency term")
    p.add_argument("--ssl-entropy", type=float, default=0.0, help="ssl: weight of entropy minimisation")
    p.add_argument("--ssl-eval-every", type=int, default=0, help="ssl: iterations between test accuracies (curve)")
    p.add_argument(
        "--cpu-reduced", action="store_true", help="small GAN and classifier, fewer steps: a CPU-sized protocol"
    )
    p.add_argument("--quick", action="store_true", help="tiny subset, tiny models: checks the code path, not accuracy")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    p.add_argument(
        "--time-budget",
        type=float,
        metavar="MIN",
        help="start no (dataset, budget, seed) run that would end past MIN minutes "
        "(the slowest one so far as the guide)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rewrite the table, plots and report from OUT/limited_labels.json",
    )
    p.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        help="with --report-only: the report of the runs in these limited_labels.json files together (each run "
        "keeps its commit), written to OUT (one current page from the latest run of each dataset)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs already in OUT/limited_labels.json and add the missing ones",
    )
    p.add_argument(
        "--report",
        type=Path,
        help="also write the full Markdown report here (default: docs/results.md with the default --out, else "
        "OUT/report.md; none with --quick)",
    )
    args = p.parse_args()
    if args.sweep_arms is None:  # not asked for: no GAN is trained for the sweep alone
        args.sweep_arms = [a for a in ("gan-per-class",) if a in args.arms]

    dev = resolve_device(args.device)
    gan = TrainConfig(steps=args.gan_steps or TrainConfig().steps)
    clf = ClassifierConfig(
        steps=args.clf_steps,
        width=args.clf_width,
        batch_size=args.clf_batch,
        workers=4 if dev.type == "cuda" else 0,
        architecture=args.classifier,
        augment=args.clf_augment,
    )
    if args.cpu_reduced:
        gan = for_device("cpu", **({"steps": args.gan_steps} if args.gan_steps else {}))  # fit's CPU sizes
        clf = ClassifierConfig(
            steps=min(args.clf_steps, 400), width=16, batch_size=64, workers=0, augment=args.clf_augment
        )
    clf = replace(clf, resample=args.resample_each_epoch)
    if args.quick:
        gan = TrainConfig(steps=2, batch_size=4, log_every=1, model=ModelConfig(g_width=4, d_width=4, z_dim=8))
        clf = ClassifierConfig(
            steps=2, width=4, batch_size=8, workers=0, augment=args.clf_augment, resample=args.resample_each_epoch
        )
        args.seeds = args.seeds[:1]
    else:  # explicit GAN sizes win over the presets
        sizes = {k: getattr(args, k) for k in ("g_width", "d_width", "z_dim") if getattr(args, k) is not None}
        gan = gan.replace(
            model=replace(gan.model, **sizes),
            batch_size=args.gan_batch or gan.batch_size,
            pretrain_steps=gan.pretrain_steps if args.pretrain_steps is None else args.pretrain_steps,
        )
    ssl = SSLConfig(
        steps=args.ssl_steps or (2 if args.quick else 0),
        architecture=args.ssl_architecture,
        consistency=args.ssl_consistency,
        entropy=args.ssl_entropy,
        batch_size=8 if args.quick else SSLConfig().batch_size,
        init_images=8 if args.quick else SSLConfig().init_images,
    )
    reporter = Reporter()
    if args.report_only:  # e.g. to draw the plots of a GPU run made where matplotlib is missing
        previous = merged(args.merge) if args.merge else load_previous(args.out / "limited_labels.json")
        if not previous.get("runs"):
            sys.exit(f"Error: no runs in {args.out / 'limited_labels.json'}: nothing to report")
        have = {p.name for p in args.out.glob("samples_*.png")}
        grids = {" ".join(f.removeprefix("samples_").removesuffix(".png").rsplit("_", 1)): f for f in sorted(have)}
        write_report(
            args,
            previous["runs"],
            previous.get("ratio_sweep", []),
            grids,
            previous.get("settings", {}),
            {k: previous.get(k, "?") for k in ("machine", "torch", "package_version", "commit", "protocol")},
            float(previous.get("wall_seconds", 0.0)),
            previous.get("state", "complete"),
        )
        print(markdown_table(summarize(previous["runs"])))
        return
    previous = load_previous(args.out / "limited_labels.json") if args.resume else {}
    records: list[dict[str, Any]] = previous.get("runs", [])
    sweep: list[dict[str, Any]] = previous.get("ratio_sweep", [])
    per_dataset_settings: dict[str, Any] = previous.get("settings", {})
    grids: dict[str, str] = {}
    done = {(r["dataset"], r["labels_per_class"], r["seed"]) for r in records}
    if done:
        reporter.message(
            f"resuming: {len(done)} (dataset, budget, seed) runs already in {args.out / 'limited_labels.json'}"
        )
    t_start = time.perf_counter()
    seed_seconds: list[float] = []
    skipped: list[str] = []

    meta = {
        **run_meta(dev),
        "protocol": "quick (code path only)" if args.quick else ("CPU-reduced" if args.cpu_reduced else "full"),
    }

    def report(final: bool) -> None:
        wall = time.perf_counter() - t_start + float(previous.get("wall_seconds", 0.0))
        state = (
            ("complete" if not skipped else "partial, cut by --time-budget: " + ", ".join(skipped) + " not run")
            if final
            else "in progress"
        )
        write_report(args, records, sweep, grids, per_dataset_settings, meta, wall, state)

    for spec in dataset_specs(args):
        size = spec.get("image_size", 16 if args.quick else 32)
        data = load_image_data(spec["train"], image_size=size)
        names, images, labels = data.class_names, data.images, data.labels
        k = len(names)
        n_val = args.val_per_class if not args.quick else 2
        if spec["test"] is not None:
            test = load_image_data(spec["test"], image_size=size, channels=int(images.shape[1]))
            test_pair = (test.images, test.labels)
            pool = np.arange(len(labels))
        else:
            val, pool = draw_per_class(labels.numpy(), k, n_val, np.random.default_rng(0))  # the split seed
            test_pair = (images[np.sort(val)], labels[np.sort(val)])
        reporter.message(
            f"{spec['name']}: {len(pool)} training images, {len(test_pair[1])} evaluation images, {k} classes"
        )
        ch = int(images.shape[1])  # the size and channels the GANs train at, in the model's fields too
        settings = ArmSettings(
            gan=gan.replace(image_size=size, channels=ch, model=replace(gan.model, image_size=size, channels=ch)),
            classifier=clf,
            synthetic_ratio=args.synthetic_ratio,
            flip=spec["flip"],
            device=dev,
            ssl=ssl,
            ssl_eval_every=args.ssl_eval_every,
            min_confidence=args.min_confidence,
            temperature=args.temperature,
        )
        share_uncond = args.max_unlabeled is None and "d-features" in args.arms
        now = json.loads(
            json.dumps(
                {
                    **settings_dict(settings),
                    "d_features_gan": (
                        "one unconditional GAN per seed, shared by the budgets run in the same call: its "
                        "training images (labeled and unlabeled together) are the whole pool at every budget"
                        if share_uncond
                        else "one unconditional GAN per budget and seed"
                    ),
                }
            )
        )
        if per_dataset_settings.get(spec["name"], now) != now:
            sys.exit(
                f"Error: --resume with other settings for {spec['name']} than the runs in {args.out}: "
                "use the same options, or another --out"
            )
        per_dataset_settings[spec["name"]] = now
        work = ROOT / ".data" / "runs" / spec["name"] if not args.quick else args.out / "runs"
        uncond: dict[int, Path] = {}  # seed → its unconditional GAN (d-features), when shared
        for n in spec["budgets"]:
            for seed in args.seeds:
                if (spec["name"], n, seed) in done:
                    continue
                elapsed = time.perf_counter() - t_start
                if args.time_budget and seed_seconds and elapsed + max(seed_seconds) > args.time_budget * 60:
                    skipped.append(f"{spec['name']} n={n} seed={seed}")
                    reporter.message(
                        f"skipped {skipped[-1]}: it would pass the {args.time_budget} min budget "
                        "(rerun with --resume to add it)"
                    )
                    continue
                t_seed = time.perf_counter()
                split = make_split(images, labels, pool, n, seed, test_pair, names, args.max_unlabeled)
                reporter.message(
                    f"{spec['name']} {n} labels/class, seed {seed}: {len(split.train_labels)} labeled, "
                    f"{0 if split.unlabeled is None else len(split.unlabeled)} unlabeled"
                )
                shared = {"unconditional": uncond[seed]} if seed in uncond else None
                seed_arms = SeedArms(split, settings, seed, work / f"n{n}", reporter, shared, args.reuse_gans)
                tag = {"dataset": spec["name"], "labels_per_class": n}
                new = [{**tag, **seed_arms.run(arm)} for arm in args.arms]
                if share_uncond and seed not in uncond:
                    uncond[seed] = work / f"n{n}" / f"unconditional-seed{seed}"
                records += new
                if n == spec["budgets"][0] and args.sweep_ratios and args.sweep_arms:
                    sweep += [{**tag, **r} for r in ratio_sweep(seed_arms, args.sweep_arms, args.sweep_ratios)]
                    if args.sweep_filter_top:
                        ratios = sorted({args.synthetic_ratio, *args.sweep_ratios})
                        swept = ratio_sweep(seed_arms, args.sweep_arms, ratios, filter_top=args.sweep_filter_top)
                        sweep += [{**tag, **r} for r in swept]
                    sweep += [{**r, "synthetic_ratio": 0.0} for r in new if r["arm"] == "baseline"]
                    sweep += [r for r in new if r["arm"] in args.sweep_arms]
                seed_seconds.append(time.perf_counter() - t_seed)
                report(final=False)  # a run killed later still leaves every finished seed on disk
        for arm in ("gan-per-class", "gan-conditional"):
            run = work / f"n{spec['budgets'][0]}" / f"{arm}-seed{args.seeds[0]}"
            if arm in args.arms and (run / "checkpoint.pt").exists():  # (not a run left by another protocol)
                gen, _ = load_generator(run, device="cpu")
                grid_path = args.out / f"samples_{spec['name']}_{arm}.png"
                save_image_atomic(class_grid(gen, per_row=10, seed=0, upscale=2), grid_path)
                grids[f"{spec['name']} {arm}"] = grid_path.name
                if arm == "gan-per-class" and "gan-pretrained-soft" in args.arms:  # its pre-trained generator
                    gen, _ = load_generator(run, device="cpu", pretrained=True)
                    grid_path = args.out / f"samples_{spec['name']}_pretrained.png"
                    save_image_atomic(class_grid(gen, per_row=10, seed=0, upscale=2), grid_path)
                    grids[f"{spec['name']} pretrained"] = grid_path.name

    report(final=True)
    print(markdown_table(summarize(records)))
    wall = time.perf_counter() - t_start
    reporter.message(f"done in {wall / 60:.1f} min: {args.out}")


if __name__ == "__main__":
    sys.exit(main())
