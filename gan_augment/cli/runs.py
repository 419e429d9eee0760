"""Commands that read a run: ``sample`` (grids and ImageFolders of synthetic images) and ``info``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import typer

from ..device import resolve_device
from ..errors import GanAugmentError
from ..io.checkpoint import load_checkpoint
from ..io.classifier_record import ClassifierRecord, NetworkRecord, classifier_record
from ..io.images import save_image_atomic
from ..io.outdir import check_new_output
from ..io.rebuild import load_generator
from ..io.record import RunRecord, is_run_checkpoint, load_run
from ..progress import printable
from ..sampling import check_empty_folder, class_grid, remove_interrupted, write_image_folder
from ..train.teacher_status import describe_teacher, teacher_line
from .app import DeviceOpt, app, expected_errors, out_console_line


@app.command()
@expected_errors
def sample(
    run: Path = typer.Argument(..., help="Run directory (or checkpoint.pt) from `gan-augment fit`."),
    n: int = typer.Option(
        100, "--n", min=1, max=1_000_000, help="Images in the grid (rounded up to full rows, one row per class)."
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write a PNG grid here."),
    per_class: Optional[int] = typer.Option(
        None, "--per-class", min=1, max=1_000_000, help="Write this many PNGs per class into --out-dir."
    ),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Folder for --per-class images (an ImageFolder)."),
    seed: int = typer.Option(0, help="Seed of the noise; the same seed gives the same images."),
    device: DeviceOpt = "auto",
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the --out grid if it exists."),
) -> None:
    """Draw synthetic images: a grid (one row per class) or an ImageFolder of PNGs."""
    if (per_class is None) != (out_dir is None):
        raise GanAugmentError("--per-class and --out-dir go together: pass both to write an ImageFolder")
    if out is None and out_dir is None:
        raise GanAugmentError("nothing to write: pass --out grid.png, or --per-class N --out-dir DIR")
    if out is not None:
        check_new_output(out, overwrite)  # before anything is loaded or written
    if out_dir is not None:
        check_empty_folder(out_dir)
        for left in remove_interrupted(out_dir):
            out_console_line(f"removed {printable(str(left))}/, the incomplete set an interrupted earlier run left")
    gen, info = load_generator(run, device=resolve_device(device))
    if out is not None:
        if info.class_names:  # one row per class
            rows = len(info.class_names)
            per_row = math.ceil(n / rows)
        else:  # a near-square grid
            per_row = math.ceil(math.sqrt(n))
            rows = math.ceil(n / per_row)
        upscale = max(1, 64 // info.image_size)
        title = f"{Path(str(run)).name}: step {info.step}, seed {seed}"
        grid = class_grid(gen, per_row, seed, upscale, rows=rows, class_names=info.class_names, title=title)
        save_image_atomic(grid, out)
        out_console_line(f"wrote {out} ({rows} rows, {info.image_size}×{info.image_size}, step {info.step})")
    if out_dir is not None and per_class is not None:
        total = write_image_folder(gen, out_dir, per_class, info.class_names, seed=seed)
        out_console_line(f"wrote {total} images to {out_dir}/")


@app.command()
@expected_errors
def info(
    run: Path = typer.Argument(..., help="Run directory (or checkpoint.pt) from `gan-augment fit`."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Show a run's configuration, classes, progress and the data it was trained on."""
    ckpt = load_checkpoint(run)
    if is_run_checkpoint(ckpt):  # a run of `fit` (not a classifier): its record, its weights fit its models
        record = load_run(run, ckpt)  # wrong contents are one line naming the file, as in every command
        load_generator(run, device="cpu")
        summary = _run_summary(record)
        summary["teacher"] = describe_teacher(Path(run))
        lines = [json.dumps(summary, indent=2)] if as_json else _info_lines(summary)
    else:  # a classifier: its typed record (a wrong field is one line naming the file)
        summary = _classifier_summary(classifier_record(ckpt, run), ckpt)
        lines = [json.dumps(summary, indent=2, default=str)] if as_json else _classifier_lines(summary)
    for line in lines:
        out_console_line(line)


def _run_summary(run: RunRecord) -> dict[str, Any]:
    return {
        "checkpoint_format": run.format_version,
        "package_version": run.package_version,
        "mode": run.mode,
        "phase": run.state.phase,
        "step": run.state.step,
        "total_steps": run.total_steps,
        "pretrain_steps": run.pretrain_steps,
        "image_size": run.image_size,
        "channels": run.channels,
        "num_classes": len(run.class_names),
        "class_names": run.class_names,
        "diffaugment": run.diffaugment,
        "elapsed_s": round(run.state.elapsed_s, 1),
        "data": run.data,
        "config": run.config.to_dict(),
        "model_config": run.model.to_dict(),
    }


def _classifier_summary(record: ClassifierRecord, ckpt: dict[str, Any]) -> dict[str, Any]:
    """A classifier's file (``classify``'s, or a run's teacher.pt): its own fields, from its typed record."""
    network = isinstance(record, NetworkRecord)
    return {
        "checkpoint_format": ckpt["format_version"],
        "package_version": ckpt.get("package_version"),
        "classifier": record.kind if network else "features",
        "architecture": record.architecture if network else "DCGAN discriminator features + logistic regression",
        "image_size": record.image_size,
        "channels": record.channels,
        "num_classes": len(record.class_names),
        "class_names": record.class_names,
        "metrics": record.metrics,
    }


def _classifier_lines(summary: dict[str, Any]) -> list[str]:
    names = [printable(n) for n in summary["class_names"]]
    rows = [
        ("classifier", f"{summary['classifier']}: {summary['architecture']}"),
        (
            "classes",
            f"{len(names)}: {', '.join(names[:20])}" + (f", … ({len(names) - 20} more)" if len(names) > 20 else ""),
        ),
        ("images", f"{summary['image_size']}×{summary['image_size']}, {summary['channels']} channel(s)"),
        ("metrics", ", ".join(f"{k}={v}" for k, v in summary["metrics"].items() if not isinstance(v, (dict, list)))),
        ("format", f"checkpoint {summary['checkpoint_format']}, gan-augment {summary['package_version']}"),
    ]
    return [f"{key:>10}: {value}" for key, value in rows]


def _info_lines(summary: dict[str, Any]) -> list[str]:
    """What a person reads first: the run, its classes, its images, its data; then the settings."""
    names = [printable(n) for n in summary["class_names"] or []]
    shown = ", ".join(names[:20]) + (f", … ({len(names) - 20} more)" if len(names) > 20 else "")
    channels = int(summary["channels"] or 0)
    data = dict(summary["data"] or {})
    pre = int(summary["pretrain_steps"] or 0)
    config = {k: v for k, v in dict(summary["config"] or {}).items() if k != "model"}
    rows = [
        (
            "run",
            f"{summary['mode']}, step {summary['step']} of {summary['total_steps']}"
            + (f" ({pre} of them unconditional pre-training)" if pre else ""),
        ),
        ("classes", f"{len(names)}: {shown}"),
        (
            "images",
            f"{summary['image_size']}×{summary['image_size']}, {channels} channel"
            + ("" if channels == 1 else "s")
            + (" (grayscale)" if channels == 1 else " (RGB)"),
        ),
        (
            "data",
            f"{data.get('num_labeled', '?')} labeled + {data.get('num_unlabeled', '?')} unlabeled images"
            + "".join(f"; {k}: {data[k]}" for k in ("labeled", "unlabeled") if data.get(k)),
        ),
        ("trained", f"{summary['elapsed_s']} s; DiffAugment {'on' if summary['diffaugment'] else 'off'}"),
        *([("teacher", teacher_line(summary["teacher"]))] if "teacher" in summary else []),
        ("config", ", ".join(f"{k}={v}" for k, v in config.items())),
        ("model", ", ".join(f"{k}={v}" for k, v in dict(summary["model_config"] or {}).items())),
        ("format", f"checkpoint {summary['checkpoint_format']}, gan-augment {summary['package_version']}"),
    ]
    return [f"{key:>8}: {value}" for key, value in rows]


@app.command()
@expected_errors
def report(
    source: Path = typer.Argument(
        ..., help="A run directory of `gan-augment fit`, or a folder of `gan-augment evaluate`."
    ),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write (self-contained)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """One HTML page to look at: configuration, data, sample grids over training and loss curves of a
    run, or the arms table, verdict and plot of an evaluation (images embedded, nothing fetched)."""
    from ..evaluate.html import write_report

    check_new_output(out, overwrite)
    out_console_line(f"wrote {write_report(source, out)}")
