"""Candidate colour teachers for a 2-core CPU (issue 31, part 2), measured on CIFAR-10 with few labels.

Each candidate is a labels-only small ResNet (the benchmark's classifier, classic augmentation) followed
by rounds of self-training on the unlabeled pool: the current teacher labels the pool, its predictions
are aligned to the labeled set's class proportions (distribution alignment), the most confident images
of each class are kept, and a fresh student trains on the labels and those images; the student is the
next round's teacher. Every candidate is scored on the same validation split as limited_labels.py
(500 images per class carved with seed 0; labeled images drawn with seed 1000 + seed).

    python benchmarks/colour_teacher.py --seeds 0 --out docs/results/colour-teacher
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gan_augment import load_image_data
from gan_augment.data import draw_per_class
from gan_augment.io import atomic_write_text
from gan_augment.models import build_classifier
from gan_augment.train.crop_flip import device_augmentation

ROOT = Path(__file__).resolve().parents[1]


def train(
    labeled: tuple[torch.Tensor, torch.Tensor],
    pseudo: tuple[torch.Tensor, torch.Tensor] | None,
    steps: int,
    seed: int,
    width: int = 16,
    batch: int = 64,
    labeled_share: float = 0.25,
    lr: float = 0.1,
    smoothing: float = 0.1,
) -> torch.nn.Module:
    """A fresh small ResNet trained for ``steps`` on the labeled images (hard labels) and ``pseudo``
    (images, soft targets (N, K)); each batch holds ``labeled_share`` labeled images when both exist."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x_l, y_l = labeled
    k = int(y_l.max()) + 1
    t_l = F.one_hot(y_l, k).float() * (1 - smoothing) + smoothing / k
    model = build_classifier("small-resnet", int(x_l.shape[1]), k, width).to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}],
        lr=lr,
        momentum=0.9,
        nesterov=True,
    )
    warm = max(1, int(0.15 * steps))
    n_l = batch if pseudo is None else max(1, round(batch * labeled_share))
    model.train()
    for step in range(steps):
        lr_now = (
            lr * (step + 1) / warm
            if step < warm
            else lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / (steps - warm)))
        )
        for group in opt.param_groups:
            group["lr"] = lr_now
        i = torch.randint(0, len(y_l), (n_l,), generator=g)
        xs, ts = [x_l[i]], [t_l[i]]
        if pseudo is not None:
            j = torch.randint(0, len(pseudo[1]), (batch - n_l,), generator=g)
            xs.append(pseudo[0][j])
            ts.append(pseudo[1][j] * (1 - smoothing) + smoothing / k)
        x = device_augmentation(torch.cat(xs), True, g).contiguous(memory_format=torch.channels_last)
        loss = -(torch.cat(ts) * F.log_softmax(model(x), 1)).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def probabilities(model: torch.nn.Module, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    out = []
    for i in range(0, len(images), batch):
        x = (images[i : i + batch].float() / 127.5 - 1).contiguous(memory_format=torch.channels_last)
        out.append(F.softmax(model(x), 1))
    return torch.cat(out)


def pseudo_labels(
    probs: torch.Tensor, prior: torch.Tensor, per_class: int, hard: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the pool images kept and their targets: the predictions aligned to ``prior``
    (ReMixMatch's distribution alignment, then renormalised), the ``per_class`` most confident of each
    class after alignment."""
    aligned = probs * (prior / probs.mean(0))
    aligned = aligned / aligned.sum(1, keepdim=True)
    conf, cls = aligned.max(1)
    keep = []
    for c in range(len(prior)):
        idx = torch.nonzero(cls == c).flatten()
        keep.append(idx[conf[idx].argsort(descending=True)[:per_class]])
    kept = torch.cat(keep)
    targets = F.one_hot(cls[kept], len(prior)).float() if hard else aligned[kept]
    return kept, targets


def accuracy(model: torch.nn.Module, test: tuple[torch.Tensor, torch.Tensor]) -> float:
    return float((probabilities(model, test[0]).argmax(1) == test[1]).float().mean())


def run_seed(data: Any, val: np.ndarray, pool: np.ndarray, args: argparse.Namespace, seed: int) -> list[dict[str, Any]]:
    labels = data.labels
    k = len(data.class_names)
    rng = np.random.default_rng(1000 + seed)
    chosen, rest = draw_per_class(labels.numpy(), k, args.labels, rng, among=pool)
    labeled = (data.images[chosen], labels[chosen])
    unlabeled = data.images[rest]
    test = (data.images[np.sort(val)], labels[np.sort(val)])
    prior = torch.bincount(labeled[1], minlength=k).float() / len(chosen)
    rows: list[dict[str, Any]] = []

    def record(name: str, model: torch.nn.Module, t0: float, **extra: Any) -> None:
        rows.append(
            {
                "seed": seed,
                "candidate": name,
                "accuracy": accuracy(model, test),
                "seconds": round(time.perf_counter() - t0, 1),
                **extra,
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    t0 = time.perf_counter()
    teacher = train(labeled, None, args.base_steps, seed)
    record(f"labels-only {args.base_steps}", teacher, t0)
    for r, per_class in enumerate(args.per_class):
        t0 = time.perf_counter()
        probs = probabilities(teacher, unlabeled)
        kept, targets = pseudo_labels(probs, prior, per_class, args.hard)
        right = float((targets.argmax(1) == labels[rest][kept]).float().mean())
        teacher = train(labeled, (unlabeled[kept], targets), args.student_steps, seed + 100 * (r + 1))
        record(f"round {r + 1}", teacher, t0, per_class=per_class, pseudo_right=right, steps=args.student_steps)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT / ".data" / "cifar10" / "train")
    p.add_argument("--labels", type=int, default=25)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--base-steps", type=int, default=400)
    p.add_argument("--student-steps", type=int, default=1500)
    p.add_argument("--per-class", type=int, nargs="+", default=[500, 1500, 3000])
    p.add_argument("--hard", action="store_true")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(2)
    data = load_image_data(args.data, image_size=32)
    val, pool = draw_per_class(data.labels.numpy(), len(data.class_names), 500, np.random.default_rng(0))
    rows = [row for seed in args.seeds for row in run_seed(data, val, pool, args, seed)]
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {
            "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "args": {k: str(v) for k, v in vars(args).items()},
        }
        atomic_write_text(args.out / "colour_teacher.json", json.dumps({**meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
