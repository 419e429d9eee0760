"""Sample quality of the trainer's options on the demo data (scikit-learn digits), on the CPU.

Measures what the defaults rest on: per-class vs conditional mode, DiffAugment on vs off (in the
demo's short schedule and in a 5× longer one without pre-training, where a discriminator sees 20
images a class for 1,500 steps), and whether unconditional pre-training on the unlabeled pool
helps the per-class models.

Protocol: ``load_digits`` (1,797 images, upscaled to 16×16), 20 labeled images per class, the rest
unlabeled (the demo's split). Each arm trains with the demo's model size and is scored on 1,000
samples (100 per class) by
- fidelity: accuracy of a reference classifier (logistic regression on all 1,797 real digits,
  whose 5-fold accuracy on real images is reported too) on the samples, against the class asked for;
- diversity: mean pairwise L2 distance between samples of a class divided by that between real
  images of the class, averaged over classes (1.0 = as diverse as the data; near 0 = collapse).

Run: ``python benchmarks/demo_quality.py --seeds 0 1`` (about 30 minutes on 2 CPU cores). Writes
``docs/results/demo_quality.json`` and ``docs/results/demo_quality.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from gan_augment import ModelConfig, TrainConfig, fit, load_generator, load_image_data, sample
from gan_augment.data.demo import write_digits_folders

ROOT = Path(__file__).resolve().parents[1]


def arms(steps: int) -> dict[str, tuple[TrainConfig, bool]]:
    """name → (config, use the unlabeled folder)."""
    model = ModelConfig(image_size=16, channels=1, g_width=16, d_width=16, z_dim=32)
    base = TrainConfig(
        image_size=16,
        channels=1,
        batch_size=32,
        steps=steps,
        pretrain_steps=2 * steps,
        sample_every=10**9,
        checkpoint_every=10**9,
        teacher="none",  # the samples' quality is measured here, not the teacher's
        model=model,
    )
    return {
        "per-class (demo default)": (base, True),
        "per-class, DiffAugment off": (base.replace(diffaugment="off"), True),
        "per-class, no pre-training": (base.replace(pretrain_steps=0, steps=2 * steps), False),
        # one model sees 2×32 real images a step: 10× the steps gives it about the same time
        "conditional": (base.replace(mode="conditional", steps=10 * steps, pretrain_steps=0), True),
        # Longer training on 20 images a class, where a discriminator can overfit: the regime
        # DiffAugment is meant for.
        "per-class, no pre-training, 5× longer": (base.replace(pretrain_steps=0, steps=5 * steps), False),
        "per-class, no pre-training, 5× longer, DiffAugment off": (
            base.replace(pretrain_steps=0, steps=5 * steps, diffaugment="off"),
            False,
        ),
    }


def pairwise_mean(x: np.ndarray) -> float:
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    n = len(x)
    return float(d.sum() / (n * (n - 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=300, help="per-class steps of the demo arm")
    parser.add_argument("--per-class", type=int, default=100, help="samples per class to score")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--arms", nargs="+", help="only these arms (names as in the table)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    work = Path(tempfile.mkdtemp(prefix="gan_augment_bench_"))
    labeled, unlabeled = write_digits_folders(work / "data", labels_per_class=20, seed=0)
    data = load_image_data(labeled, unlabeled, image_size=16, channels=1)
    from sklearn.datasets import load_digits

    # Reference classifier on every real digit at the training resolution.
    real = data.images.float().div(255).flatten(1).numpy()  # (N, 256)
    names = data.class_names
    file_labels = []
    target = load_digits().target
    for f in data.files:  # demo file names carry the digit's index in load_digits
        file_labels.append(int(target[int(Path(f).stem.split("_")[1])]))
    y_real = np.array(file_labels)
    ref = LogisticRegression(max_iter=3000)
    ref_cv = float(cross_val_score(ref, real, y_real, cv=5).mean())
    ref.fit(real, y_real)
    real_div = {c: pairwise_mean(real[y_real == c][:200]) for c in range(10)}

    results = []
    chosen = {k: v for k, v in arms(args.steps).items() if not args.arms or k in args.arms}
    if not chosen:
        parser.error(f"no arm matches {args.arms}: choose from {list(arms(args.steps))}")
    for name, (cfg, use_unlabeled) in chosen.items():
        for seed in args.seeds:
            run = work / f"{name.replace(' ', '_').replace(',', '')}_{seed}"
            t0 = time.perf_counter()
            fit(labeled, unlabeled if use_unlabeled else None, run, cfg.replace(seed=seed), device="cpu", quiet=True)
            seconds = time.perf_counter() - t0
            gen, _ = load_generator(run, device="cpu")
            labels = torch.arange(10).repeat_interleave(args.per_class)
            x = sample(gen, len(labels), labels=labels, seed=1000 + seed).float().div(255).flatten(1).numpy()
            y = labels.numpy()
            fidelity = float((ref.predict(x) == [int(names[c]) for c in y]).mean())
            diversity = float(np.mean([pairwise_mean(x[y == c]) / real_div[int(names[c])] for c in range(10)]))
            row = {
                "arm": name,
                "seed": seed,
                "fidelity": fidelity,
                "diversity": diversity,
                "seconds": seconds,
                "steps": cfg.steps + (cfg.pretrain_steps if cfg.mode == "per-class" else 0),
            }
            print(json.dumps(row), flush=True)
            results.append(row)

    summary = []
    for name in chosen:
        rows = [r for r in results if r["arm"] == name]
        f = np.array([r["fidelity"] for r in rows])
        d = np.array([r["diversity"] for r in rows])
        s = np.array([r["seconds"] for r in rows])
        summary.append(
            {
                "arm": name,
                "fidelity_mean": f.mean(),
                "fidelity_std": f.std(),
                "diversity_mean": d.mean(),
                "diversity_std": d.std(),
                "seconds_mean": s.mean(),
                "steps": rows[0]["steps"],
            }
        )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads"
    meta = {
        "machine": machine,
        "torch": torch.__version__,
        "commit": commit,
        "seeds": args.seeds,
        "reference_classifier_cv_accuracy": ref_cv,
        "samples_per_class": args.per_class,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo_quality.json").write_text(
        json.dumps({**meta, "summary": summary, "runs": results}, indent=2) + "\n"
    )
    lines = [
        f"Digits (load_digits, 16×16), 20 labels per class, rest unlabeled; seeds {args.seeds}; "
        f"{machine}; torch {torch.__version__}; commit {commit}.",
        f"Reference classifier (logistic regression, all real digits): 5-fold accuracy {ref_cv:.3f} on real images.",
        "",
        "| arm | steps | fidelity (ref. accuracy on samples) | diversity (vs real) | train time (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for s in summary:
        lines.append(
            f"| {s['arm']} | {s['steps']} | {s['fidelity_mean']:.3f} ± {s['fidelity_std']:.3f} | "
            f"{s['diversity_mean']:.3f} ± {s['diversity_std']:.3f} | {s['seconds_mean']:.0f} |"
        )
    (args.out / "demo_quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
