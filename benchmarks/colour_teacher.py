"""Colour teachers for a 2-core CPU (issue 31, part 2), measured on CIFAR-10 with few labels.

The package's self-trained teacher (``gan_augment.train.self_training``): a small ResNet on the labels,
then rounds in which the last network labels the pool (aligned to the labeled set's class proportions),
the most confident images of each class are kept, and a fresh network trains on the labels and those.
Every phase's network is scored on the validation split of limited_labels.py (500 images per class,
carved with seed 0; labeled images drawn with seed 1000 + seed), so one call gives the labels-only
network and each round. Candidates: ``--targets hard`` (the package's: the aligned class) or ``soft``
(the aligned probabilities), the number of rounds and their shares of the pool, the labels-only steps.

    python benchmarks/colour_teacher.py --seeds 0 --out docs/results/colour-teacher
    python benchmarks/colour_teacher.py --seeds 0 --targets soft --out docs/results/colour-teacher --resume
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from limited_labels import extract

from gan_augment import load_image_data
from gan_augment.data import draw_per_class
from gan_augment.io import atomic_write_text
from gan_augment.progress import Reporter
from gan_augment.train import self_training
from gan_augment.train.metrics import accuracy, predict_logits
from gan_augment.train.self_training import ROUND_SHARES, SelfTrainingConfig, train_self_training

ROOT = Path(__file__).resolve().parents[1]


def soft_pick(probs: torch.Tensor, prior: torch.Tensor, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The package's pick with the aligned probabilities as targets instead of their class."""
    idx, _ = HARD_PICK(probs, prior, share)
    aligned = probs[idx] * (prior / probs.mean(0).clamp_min(1e-12))
    return idx, aligned / aligned.sum(1, keepdim=True)


HARD_PICK = self_training.aligned_pick


def run_seed(data: Any, val: np.ndarray, pool: np.ndarray, args: argparse.Namespace, seed: int) -> list[dict[str, Any]]:
    k = len(data.class_names)
    chosen, rest = draw_per_class(data.labels.numpy(), k, args.labels, np.random.default_rng(1000 + seed), among=pool)
    test = (data.images[np.sort(val)], data.labels[np.sort(val)])
    round_steps = tuple(args.round_steps for _ in args.shares)
    config = SelfTrainingConfig(labels_steps=args.labels_steps, round_steps=round_steps, shares=tuple(args.shares),
                                seed=seed)  # fmt: skip
    candidate = f"{args.targets} targets, labels-only {args.labels_steps} steps, rounds {args.shares}"
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def score(phase: int, first: torch.nn.Module, current: torch.nn.Module) -> None:
        seconds = round(time.perf_counter() - t0, 1)
        # How the network spreads the pool over the classes (the labeled set is balanced): its bias.
        shares = torch.bincount(predict_logits(current, data.images[rest]).argmax(1), minlength=k) / len(rest)
        rows.append({"seed": seed, "candidate": candidate, "phase": phase - 1, "accuracy": accuracy(current, *test),
                     "seconds": seconds, "pool_class_shares": [round(float(x), 4) for x in shares]})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)

    self_training.aligned_pick = soft_pick if args.targets == "soft" else HARD_PICK
    train_self_training(data.images[chosen], data.labels[chosen], data.images[rest], config, torch.device(args.device),
                        Reporter(quiet=True), save=score)  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Accuracy after each phase (and the largest and smallest share of the pool the last network gives a class)."""
    lines = ["| candidate | seed | labels only | " + " | ".join(f"round {i}" for i in range(1, 5))
             + " | pool shares, last network (largest, smallest) | seconds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    keys = sorted({(r["candidate"], r["seed"]) for r in rows})
    for cand, seed in keys:
        mine = sorted((r for r in rows if (r["candidate"], r["seed"]) == (cand, seed)), key=lambda r: r["phase"])
        cells = [f"{100 * r['accuracy']:.2f}%" for r in mine] + [""] * (5 - len(mine))
        shares = mine[-1]["pool_class_shares"]
        spread = f"{100 * max(shares):.1f}%, {100 * min(shares):.1f}%"
        lines.append(f"| {cand} | {seed} | " + " | ".join(cells) + f" | {spread} | {mine[-1]['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT / ".data" / "cifar10" / "train")
    p.add_argument("--archive", type=Path, help="extract this CIFAR-10 zip to .data/cifar10 first (a GPU machine)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="2 steps a phase: checks the code path, not accuracy")
    p.add_argument("--labels", type=int, default=25, help="labeled images per class")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--labels-steps", type=int, default=800)
    p.add_argument("--round-steps", type=int, default=1500)
    p.add_argument("--shares", type=float, nargs="+", default=list(ROUND_SHARES))
    p.add_argument("--targets", choices=("hard", "soft"), default="hard")
    p.add_argument("--out", type=Path)
    p.add_argument("--resume", action="store_true", help="add these rows to the ones in --out")
    args = p.parse_args()
    if args.archive is not None:
        args.data = extract(args.archive, ROOT / ".data" / "cifar10") / "train"
    if args.quick:
        args.labels_steps = args.round_steps = 2
    if args.device == "cpu":
        torch.set_num_threads(min(2, torch.get_num_threads()))
    data = load_image_data(args.data, image_size=32)
    val, pool = draw_per_class(data.labels.numpy(), len(data.class_names), 500, np.random.default_rng(0))
    previous: list[dict[str, Any]] = []
    if args.out and args.resume and (args.out / "colour_teacher.json").is_file():
        previous = json.loads((args.out / "colour_teacher.json").read_text())["rows"]
    rows = previous + [row for seed in args.seeds for row in run_seed(data, val, pool, args, seed)]
    print(table(rows))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        protocol = f"CIFAR-10, {args.labels} labels per class, validation 500 per class (split seed 0)"
        gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else ""
        machine = gpu or f"{platform.machine()}, {torch.get_num_threads()} threads"
        meta = {"machine": machine, "torch": torch.__version__, "protocol": protocol}
        atomic_write_text(args.out / "colour_teacher.json", json.dumps({**meta, "rows": rows}, indent=1))
        atomic_write_text(
            args.out / "colour_teacher.md",
            f"# Colour teachers on a CPU\n\n{meta['protocol']}; {meta['machine']}, torch {meta['torch']}. "
            "Accuracy on the validation split after each phase. Written by benchmarks/colour_teacher.py; "
            f"notes by hand: [notes.md](notes.md).\n\n{table(rows)}\n",
        )


if __name__ == "__main__":
    main()
