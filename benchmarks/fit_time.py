"""How long the main job takes with its defaults: ``gan-augment fit LABELED UNLABELED`` on MNIST-sized
data (100 labeled images, 59,900 unlabeled, 28 px), on CIFAR-sized colour data (250 labeled, 49,750
unlabeled, 32 px), on a tiny colour folder (36 labeled, 90 unlabeled, at 16 px, one CPU thread) and
``gan-augment demo``, each as a user runs it (the CLI in a subprocess, nothing else running), with the
teacher included.

Writes ``OUT/fit_time.json`` and ``OUT/fit_time.md`` (default ``docs/results``): wall time of each
command and, from the run it wrote, the GAN's and the teacher's own times.

Examples:
    python benchmarks/fit_time.py                      # all four (about an hour on 2 CPU cores)
    python benchmarks/fit_time.py --only demo
    python benchmarks/fit_time.py --only fit-cifar fit-tiny-colour
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
NAMES = {
    "fit": "`gan-augment fit LABELED UNLABELED` (MNIST: 100 labeled, 59,900 unlabeled, 28 px)",
    "fit-cifar": "`gan-augment fit LABELED UNLABELED` (CIFAR-10: 250 labeled, 49,750 unlabeled, 32 px)",
    "fit-tiny-colour": "`gan-augment fit LABELED UNLABELED --image-size 16` (3 CIFAR-10 classes: 36 labeled, "
    "90 unlabeled; one CPU thread)",
    "demo": "`gan-augment demo`",
}
# Each fit: archive, work folder, labeled per class, classes (None: all), unlabeled per class (None: the
# rest), extra options, CPU threads (0: all).
FITS: dict[str, tuple[str, str, int, int | None, int | None, list[str], int]] = {
    "fit": ("mnist.zip", "fit-time", 10, None, None, [], 0),
    "fit-cifar": ("cifar10-train.zip", "fit-time-cifar", 25, None, None, [], 0),
    "fit-tiny-colour": ("cifar10-train.zip", "fit-time-tiny", 12, 3, 30, ["--image-size", "16"], 1),
}


def split_folders(
    archive: Path, work: Path, name: str, per_class: int, classes: int | None = None, pool: int | None = None
) -> tuple[Path, Path]:
    """LABELED (``per_class`` images of each class) and UNLABELED (the rest of the training split, or
    ``pool`` more of each class) of the first ``classes`` classes as folders under ``work/name``,
    hard-linked to one extraction of ``archive`` (copied where links fail)."""
    source = work / archive.stem
    if not (source / ".extracted").exists():
        with zipfile.ZipFile(archive) as z:
            z.extractall(source)
        (source / ".extracted").write_text(archive.name)
    labeled, unlabeled = work / name / "labeled", work / name / "unlabeled"
    if labeled.exists() and unlabeled.exists():
        return labeled, unlabeled
    shutil.rmtree(work / name, ignore_errors=True)
    rng = np.random.default_rng(0)
    for digit in sorted(p.name for p in (source / "train").iterdir() if p.is_dir())[:classes]:
        files = sorted((source / "train" / digit).iterdir())
        order = rng.permutation(len(files))
        chosen = set(order[:per_class].tolist())
        kept = chosen | set(order[per_class : per_class + pool].tolist()) if pool is not None else None
        for i, f in enumerate(files):
            if kept is not None and i not in kept:
                continue
            dest = (labeled / digit if i in chosen else unlabeled / digit) / f.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, dest)
            except OSError:
                shutil.copy2(f, dest)
    return labeled, unlabeled


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of ``cmd`` (its output goes to this process's standard error)."""
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=sys.stderr)
    return round(time.perf_counter() - t0, 1)


def run_record(run: Path) -> dict[str, Any]:
    """What the run says of its own times: the GAN's elapsed seconds, the teacher's iterations and seconds."""
    ckpt = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    teacher = torch.load(run / "teacher.pt", map_location="cpu", weights_only=True)
    cfg = ckpt["config"]
    return {
        "gan_seconds": round(float(ckpt["elapsed_s"]), 1),
        "gan_steps": int(ckpt["total_steps"]),
        "gan_sizes": {k: cfg[k] for k in ("steps", "batch_size", "image_size")}
        | {k: cfg["model"][k] for k in ("g_width", "d_width", "z_dim")},
        "teacher": teacher["kind"],
        "teacher_architecture": teacher["architecture"],
        "teacher_steps": int(teacher["metrics"]["steps"]),
        "teacher_seconds": float(teacher["metrics"]["train_seconds"]),
        "teacher_labeled_accuracy": teacher["metrics"]["labeled_accuracy"],
    }


def commit() -> str:
    """The checkout's short commit, with ``+`` when its tracked files have changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0
        return head.stdout.strip() + ("+" if dirty else "") if head.returncode == 0 else "?"
    except OSError:
        return "?"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--work", type=Path, default=ROOT / ".data")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    p.add_argument("--only", nargs="+", choices=list(NAMES), help="these commands (the others' rows are kept)")
    args = p.parse_args()
    env = {**os.environ, "GAN_AUGMENT_CACHE": str(args.work / "fit-time-cache"), "GAN_AUGMENT_PROGRESS_EVERY": "120"}
    cli = [sys.executable, "-m", "gan_augment.cli"]
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}"
    json_path = args.out / "fit_time.json"
    old = json.loads(json_path.read_text()) if args.only and json_path.is_file() else {}
    kept = {name: {"date": old.get("date", "?"), **row} for name, row in old.get("commands", {}).items()}
    rows: dict[str, Any] = {}
    wanted = args.only or list(NAMES)
    if "demo" in wanted:
        demo = args.work / "fit-time-demo"
        rows["demo"] = {"wall_seconds": timed([*cli, "demo", "--out", str(demo), "--device", "cpu"], env)}
        rows["demo"].update(run_record(demo / "run"))
    for name, (archive, folder, per_class, classes, pool, extra, threads) in FITS.items():
        if name not in wanted:
            continue
        labeled, unlabeled = split_folders(args.data_dir / archive, args.work, folder, per_class, classes, pool)
        run = args.work / f"{folder}-run"
        cmd = [*cli, "fit", str(labeled), str(unlabeled), "--out", str(run), "--overwrite", "--device", "cpu", *extra]
        one = {**env, "OMP_NUM_THREADS": str(threads)} if threads else env
        rows[name] = {"wall_seconds": timed(cmd, one), **run_record(run), "threads": threads or os.cpu_count()}
        grids = sorted((run / "samples").glob("step_*.png"))
        if grids and name == "fit":  # what the default GANs draw at this budget
            args.out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(grids[-1], args.out / "fit_time_samples.png")
    for r in rows.values():
        r.update(date=time.strftime("%Y-%m-%d %H:%M"), commit=commit())
    rows = {**kept, **rows}  # --only: the other command's row as it was measured (its date and commit)
    report = {"machine": machine, "date": time.strftime("%Y-%m-%d"), "commands": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fit_time.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# The main job's time with its defaults",
        "",
        f"Written by `benchmarks/fit_time.py` on {machine}; nothing else ran meanwhile. Wall time is the",
        "command's, start-up and decoding included.",
        "",
        "| command | wall time | GAN (steps, seconds) | teacher (kind, iterations, seconds) | measured (commit) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {NAMES[name]} | {r['wall_seconds'] / 60:.1f} min | {r['gan_steps']}, {r['gan_seconds']:.0f} s "
            f"| {r['teacher']} ({r['teacher_architecture']}), {r['teacher_steps']}, {r['teacher_seconds']:.0f} s "
            f"| {r.get('date', report['date'])} ({r.get('commit', '?')}) |"
        )
    lines += ["", "GAN sizes: " + "; ".join(f"{n}: {r['gan_sizes']}" for n, r in rows.items()), ""]
    if (args.out / "fit_time_samples.png").is_file():
        lines += ["The fit run's last sample grid (one row per class):", "", "![](fit_time_samples.png)", ""]
    notes = os.path.relpath(ROOT / "docs" / "results_notes.md", args.out.resolve()) + "#notes-on-the-main-jobs-time"
    lines += [f"Notes on these numbers: [results_notes.md]({notes}).", ""]
    (args.out / "fit_time.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
