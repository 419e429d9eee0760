"""The ``gan-augment`` command line: fit, sample, info, demo."""

from __future__ import annotations

import enum
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer

from .checkpoint import load_checkpoint
from .config import ModelConfig, TrainConfig, default
from .errors import GanAugmentError

app = typer.Typer(
    name="gan-augment",
    help="Train DCGANs on labeled (and unlabeled) image folders and put them to work for a classifier.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


class ModeChoice(str, enum.Enum):
    per_class = "per-class"
    conditional = "conditional"
    unconditional = "unconditional"


class LossChoice(str, enum.Enum):
    bce = "bce"
    wgan_gp = "wgan-gp"
    hinge = "hinge"


class UpsampleChoice(str, enum.Enum):
    nearest = "nearest"
    transposed = "transposed"


class CompileChoice(str, enum.Enum):
    off = "off"
    default = "default"
    reduce_overhead = "reduce-overhead"
    max_autotune = "max-autotune"


class SwitchChoice(str, enum.Enum):
    auto = "auto"
    on = "on"
    off = "off"


def expected_errors(fn: F) -> F:
    """Print expected errors as one line and exit 2; Ctrl-C exits 130 without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (GanAugmentError, ValueError) as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # a full disk or an unwritable folder; atomic writes left the old files intact
            where = f" {str(exc.filename)!r}" if exc.filename else ""
            typer.echo(f"Error: cannot write or read{where}: {exc.strerror or exc}; check free disk space and "
                       "permissions (files already written are intact)", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as exc:  # SIGINT → 130, SIGTERM → 143 (a checkpoint was written)
            raise typer.Exit(128 + int(getattr(exc, "signum", 2))) from None

    return wrapper  # type: ignore[return-value]


T = TrainConfig
M = ModelConfig


@app.command()
@expected_errors
def fit(
    labeled: Path = typer.Argument(..., help="Folder with one sub-folder of images per class."),
    unlabeled: Optional[Path] = typer.Argument(None, help="Optional folder of unlabeled images (searched recursively)."),
    out: Path = typer.Option(Path("runs/run"), "--out", "-o", help="Run directory to write."),
    mode: ModeChoice = typer.Option(default(T, "mode"), help="One GAN per class, one conditional GAN, or one GAN ignoring labels."),
    image_size: int = typer.Option(default(T, "image_size"), min=8, max=1024, help="Side of the training images (16, 28, 32, 64, 128, ...)."),
    channels: int = typer.Option(default(T, "channels"), min=0, max=3, help="1 or 3; 0 picks 1 when all images are grayscale."),
    steps: Optional[int] = typer.Option(None, min=1, help=f"Training steps (per class model in per-class mode). [default: {default(T, 'steps')}]"),
    pretrain_steps: int = typer.Option(default(T, "pretrain_steps"), min=-1, help="Per-class mode: unconditional pre-training steps on all images; -1 = steps/2 if UNLABELED is given, else 0."),
    batch_size: int = typer.Option(default(T, "batch_size"), min=2, max=65536, help="Real images per step (per class model)."),
    loss: LossChoice = typer.Option(default(T, "loss"), help="GAN loss."),
    unroll: int = typer.Option(default(T, "unroll"), min=0, max=100, help="Unrolled-GAN steps (0 = off)."),
    lr_g: float = typer.Option(default(T, "lr_g"), min=1e-8, max=1.0, help="Generator learning rate."),
    lr_d: float = typer.Option(default(T, "lr_d"), min=1e-8, max=1.0, help="Discriminator learning rate."),
    ema_decay: float = typer.Option(default(T, "ema_decay"), min=0.0, max=0.99999, help="EMA decay of generator weights (0 = off)."),
    diffaugment: SwitchChoice = typer.Option(default(T, "diffaugment"), help="Differentiable augmentation before D (auto: on for small data)."),
    upsample: UpsampleChoice = typer.Option(default(M, "upsample"), help="Generator upsampling: nearest+conv (the article) or transposed conv."),
    g_width: int = typer.Option(default(M, "g_width"), min=1, max=4096, help="Generator width (channels of its last block)."),
    d_width: int = typer.Option(default(M, "d_width"), min=1, max=4096, help="Discriminator width (channels of its first block)."),
    z_dim: int = typer.Option(default(M, "z_dim"), min=1, max=4096, help="Noise vector length."),
    d_dropout: float = typer.Option(default(M, "d_dropout"), min=0.0, max=0.99, help="Dropout after each discriminator activation."),
    seed: int = typer.Option(default(T, "seed"), help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    sample_every: int = typer.Option(default(T, "sample_every"), min=1, help="Steps between sample grids."),
    checkpoint_every: int = typer.Option(default(T, "checkpoint_every"), min=1, help="Steps between checkpoints."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or messages."),
    strict: bool = typer.Option(False, "--strict", help="Stop on an unreadable image file instead of skipping it."),
    compile: CompileChoice = typer.Option(CompileChoice.off, "--compile", help="torch.compile the models (GPU; reduce-overhead adds CUDA graphs). Not with wgan-gp."),
) -> None:
    """Train DCGAN(s) on LABELED (and UNLABELED) and write a run directory."""
    from .training import fit as run_fit

    if resume:
        config = TrainConfig(steps=steps) if steps is not None else None
    else:
        model = ModelConfig(
            image_size=image_size,
            upsample=upsample.value,  # type: ignore[arg-type]
            g_width=g_width,
            d_width=d_width,
            z_dim=z_dim,
            d_dropout=d_dropout,
            d_norm="none" if loss == LossChoice.wgan_gp else "batch",
        )
        config = TrainConfig(
            mode=mode.value,  # type: ignore[arg-type]
            image_size=image_size,
            channels=channels,
            steps=steps if steps is not None else default(T, "steps"),
            pretrain_steps=pretrain_steps,
            batch_size=batch_size,
            loss=loss.value,  # type: ignore[arg-type]
            unroll=unroll,
            lr_g=lr_g,
            lr_d=lr_d,
            ema_decay=ema_decay,
            diffaugment=diffaugment.value,  # type: ignore[arg-type]
            seed=seed,
            sample_every=sample_every,
            checkpoint_every=checkpoint_every,
            model=model,
        )
    t0 = time.perf_counter()
    ckpt = run_fit(labeled, unlabeled, out, config, device=device, resume=resume, overwrite=overwrite, quiet=quiet,
                   strict=strict, compile=compile.value)
    if not quiet:
        typer.echo(f"done in {time.perf_counter() - t0:.1f} s: {ckpt}", err=True)
        typer.echo(f"next: gan-augment sample {out} --n 100 --out grid.png", err=True)


@app.command()
@expected_errors
def sample(
    run: Path = typer.Argument(..., help="Run directory (or checkpoint.pt) from `gan-augment fit`."),
    n: int = typer.Option(100, "--n", min=1, max=1_000_000, help="Images in the grid (rounded up to full rows, one row per class)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write a PNG grid here."),
    per_class: Optional[int] = typer.Option(None, "--per-class", min=1, max=1_000_000, help="Write this many PNGs per class into --out-dir."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Folder for --per-class images (an ImageFolder)."),
    seed: int = typer.Option(0, help="Seed of the noise; the same seed gives the same images."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Draw synthetic images: a grid (one row per class) or an ImageFolder of PNGs."""
    import math

    from .sampling import class_grid, load_generator, save_image_atomic, write_image_folder
    from .training import resolve_device

    if (per_class is None) != (out_dir is None):
        raise GanAugmentError("--per-class and --out-dir go together: pass both to write an ImageFolder")
    if out is None and out_dir is None:
        raise GanAugmentError("nothing to write: pass --out grid.png, or --per-class N --out-dir DIR")
    gen, info = load_generator(run, device=resolve_device(device))
    if out is not None:
        if info.class_names:  # one row per class
            rows = len(info.class_names)
            per_row = math.ceil(n / rows)
        else:  # a near-square grid
            per_row = math.ceil(math.sqrt(n))
            rows = math.ceil(n / per_row)
        grid = class_grid(gen, per_row=per_row, rows=rows, seed=seed, upscale=max(1, 64 // info.image_size))
        save_image_atomic(grid, out)
        out_console_line(f"wrote {out} ({rows} rows, {info.image_size}×{info.image_size}, step {info.step})")
    if out_dir is not None and per_class is not None:
        total = write_image_folder(gen, out_dir, per_class, info.class_names, seed=seed)
        out_console_line(f"wrote {total} images to {out_dir}/")


def out_console_line(text: str) -> None:
    typer.echo(text)


@app.command()
@expected_errors
def info(
    run: Path = typer.Argument(..., help="Run directory (or checkpoint.pt) from `gan-augment fit`."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Show a run's configuration, classes, progress and the data it was trained on."""
    ckpt = load_checkpoint(run)
    summary = {
        "checkpoint_format": ckpt["format_version"],
        "package_version": ckpt.get("package_version"),
        "mode": ckpt.get("mode"),
        "phase": ckpt.get("phase"),
        "step": ckpt.get("step"),
        "total_steps": ckpt.get("total_steps"),
        "pretrain_steps": ckpt.get("pretrain_steps"),
        "image_size": ckpt.get("image_size"),
        "channels": ckpt.get("channels"),
        "class_names": ckpt.get("class_names"),
        "diffaugment": ckpt.get("diffaugment"),
        "elapsed_s": round(float(ckpt.get("elapsed_s", 0.0)), 1),
        "data": ckpt.get("data"),
        "config": ckpt.get("config"),
    }
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        if key == "config":
            continue
        out_console_line(f"{key:>18}: {value}")
    out_console_line(f"{'config':>18}: " + ", ".join(f"{k}={v}" for k, v in (ckpt.get("config") or {}).items() if k != "model"))
    out_console_line(f"{'model':>18}: " + ", ".join(f"{k}={v}" for k, v in (ckpt.get("model_config") or {}).items()))


@app.command()
@expected_errors
def demo(
    out: Path = typer.Option(Path("demo-run"), "--out", "-o", help="Folder for the demo data and run."),
    steps: int = typer.Option(300, min=1, help="Per-class training steps (unconditional pre-training adds twice as many)."),
    labels_per_class: int = typer.Option(20, min=1, max=150, help="Labeled digits per class; the rest are unlabeled."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or messages."),
) -> None:
    """The main job on scikit-learn's bundled digits: a few labels per class, the rest unlabeled."""
    from .demo import write_digits_folders
    from .training import fit as run_fit

    data_dir, run_dir = out / "data", out / "run"
    if out.exists() and any(out.iterdir()) and not (data_dir / "README.txt").is_file():
        raise GanAugmentError(f"{str(out)!r} exists and is not a demo folder: pass another --out")
    if data_dir.exists():
        import shutil

        shutil.rmtree(data_dir)  # the demo's own data, rewritten each time
    labeled, unlabeled = write_digits_folders(data_dir, labels_per_class=labels_per_class)
    config = TrainConfig(
        mode="per-class",
        image_size=16,
        channels=1,
        steps=steps,
        pretrain_steps=2 * steps,  # one model, so ten times cheaper a step than the per-class phase
        batch_size=32,
        sample_every=max(1, steps // 2),
        checkpoint_every=max(1, steps),
        model=ModelConfig(image_size=16, channels=1, g_width=16, d_width=16, z_dim=32),
    )
    t0 = time.perf_counter()
    run_fit(labeled, unlabeled, run_dir, config, device=device, overwrite=True, quiet=quiet)
    elapsed = time.perf_counter() - t0
    grid = run_dir / "samples" / f"step_{config.steps + config.pretrain_steps:06d}.png"
    lines = [
        f"demo done in {elapsed:.0f} s",
        f"  data:        {data_dir}/ (labeled/, unlabeled/)",
        f"  run:         {run_dir}/ (checkpoint.pt, metrics.jsonl, config.json)",
        f"  sample grid: {grid} (one row per digit)",
        "next:",
        f"  gan-augment info {run_dir}",
        f"  gan-augment sample {run_dir} --n 100 --out digits.png",
        f"  gan-augment sample {run_dir} --per-class 100 --out-dir synthetic/",
    ]
    if not quiet:
        for line in lines:
            out_console_line(line)


class MethodChoice(str, enum.Enum):
    features = "features"
    ssl = "ssl"


@app.command()
@expected_errors
def classify(
    labeled: Path = typer.Argument(..., help="Folder with one sub-folder of images per class."),
    unlabeled: Optional[Path] = typer.Argument(None, help="Folder of unlabeled images (searched recursively)."),
    out: Path = typer.Option(Path("runs/classifier"), "--out", "-o", help="Folder for the classifier and its GAN."),
    method: MethodChoice = typer.Option(MethodChoice.features, help="features: linear model on discriminator features; ssl: semi-supervised GAN."),
    image_size: int = typer.Option(default(T, "image_size"), min=8, max=1024, help="Side of the images."),
    steps: int = typer.Option(default(T, "steps"), min=1, help="GAN training steps."),
    batch_size: int = typer.Option(default(T, "batch_size"), min=2, max=65536, help="Images per step."),
    val_fraction: float = typer.Option(0.2, min=0.0, max=0.9, help="ssl: labeled images held out to measure accuracy."),
    seed: int = typer.Option(default(T, "seed"), help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a classifier already in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or messages."),
) -> None:
    """Few labels, many unlabeled images: train a classifier from a GAN and report its accuracy."""
    from .classify import classify as run_classify

    config = TrainConfig(
        image_size=image_size, steps=steps, batch_size=batch_size, seed=seed, model=ModelConfig(image_size=image_size)
    )
    metrics = run_classify(labeled, unlabeled, out, method.value, config, val_fraction=val_fraction,  # type: ignore[arg-type]
                           device=device, overwrite=overwrite, quiet=quiet)
    if metrics["method"] == "features":
        acc = metrics["cv_accuracy_mean"]
        line = (f"{metrics['cv_folds']}-fold cross-validated accuracy on {metrics['num_labeled']} labeled images: "
                f"{acc:.3f} ± {metrics['cv_accuracy_std']:.3f}" if acc is not None else "too few labels per class to cross-validate")
    else:
        acc = metrics["val_accuracy"]
        line = (f"held-out accuracy on {metrics['num_val']} labeled images: {acc:.3f}" if acc is not None
                else "no labeled image held out (val_fraction 0): accuracy not measured")
    out_console_line(line)
    out_console_line(f"classifier: {out}/classifier.pt; next: gan-augment predict {out} IMAGES_DIR --out predictions.csv")


@app.command()
@expected_errors
def predict(
    run: Path = typer.Argument(..., help="Folder written by `gan-augment classify`."),
    images_dir: Path = typer.Argument(..., help="Folder of images to classify (searched recursively)."),
    out: Path = typer.Option(Path("predictions.csv"), "--out", "-o", help="CSV to write: file, class, probability."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Classify a folder of images with a classifier from `gan-augment classify`."""
    from .classify import predict_folder

    n = predict_folder(run, images_dir, out, device=device)
    out_console_line(f"wrote {n} predictions to {out}")


@app.command()
@expected_errors
def features(
    run: Path = typer.Argument(..., help="Run directory of an unconditional or conditional `gan-augment fit`."),
    images_dir: Path = typer.Argument(..., help="Folder of images; with one sub-folder per class, labels are saved too."),
    out: Path = typer.Option(Path("features.npz"), "--out", "-o", help="NPZ to write: features, labels, files."),
    grid: int = typer.Option(4, min=1, max=64, help="Side of each pooled feature map."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Discriminator features (every block max-pooled to grid×grid) of a folder of images."""
    import numpy as np

    from .classify import decode_folder
    from .features import DiscriminatorFeatures
    from .training import resolve_device

    extractor = DiscriminatorFeatures(run, grid=grid, device=str(resolve_device(device))).fit()
    files, images, skipped = decode_folder(images_dir, extractor.image_size_, extractor.channels_)
    feats = extractor.transform(images)
    rel = [Path(f).relative_to(images_dir) for f in files]
    arrays = {"features": feats, "files": np.array(files), "feature_names": extractor.get_feature_names_out().astype(str)}
    if all(len(r.parts) > 1 for r in rel):  # an ImageFolder: the first folder is the class
        classes = sorted({r.parts[0] for r in rel})
        arrays["labels"] = np.array([classes.index(r.parts[0]) for r in rel])
        arrays["classes"] = np.array(classes)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(out)
    out_console_line(f"wrote {feats.shape[0]}×{feats.shape[1]} features to {out}" + (f" ({len(skipped)} unreadable skipped)" if skipped else ""))


@app.command()
@expected_errors
def evaluate(
    labeled: Path = typer.Argument(..., help="Folder with one sub-folder of images per class."),
    unlabeled: Optional[Path] = typer.Argument(None, help="Optional folder of unlabeled images."),
    out: Path = typer.Option(Path("runs/evaluation"), "--out", "-o", help="Folder for the report, plot and GAN runs."),
    run: Optional[Path] = typer.Option(None, "--run", help="Use this fit run for its arm instead of training a GAN per seed."),
    arms: str = typer.Option("baseline,gan-per-class", help="Comma-separated: baseline, gan-per-class, gan-conditional, d-features, ssl."),
    seeds: int = typer.Option(3, min=1, max=20, help="Repeats, each with its own held-out split."),
    test_fraction: float = typer.Option(0.3, min=0.05, max=0.9, help="Fraction of each class held out for testing."),
    image_size: int = typer.Option(default(T, "image_size"), min=8, max=1024, help="Side of the images."),
    gan_steps: int = typer.Option(default(T, "steps"), min=1, help="GAN training steps per arm."),
    clf_steps: int = typer.Option(1000, min=1, help="Secondary classifier steps (the same for every arm)."),
    classifier: str = typer.Option("small-resnet", help="small-resnet, or a torchvision model name (resnet18, ...), trained from scratch."),
    synthetic_ratio: float = typer.Option(0.5, min=0.0, max=0.95, help="Fraction of synthetic images in the GAN arms."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Horizontal flips in the classic augmentation."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the verdicts."),
) -> None:
    """Does GAN augmentation help on YOUR data? Baseline vs. augmentation arms on held-out splits."""
    from .evaluate import ARMS, ArmSettings, ClassifierConfig, check_classifier_name, evaluate_folders, markdown_table
    from .progress import Reporter
    from .training import resolve_device

    arm_list = [a.strip() for a in arms.split(",") if a.strip()]
    bad = [a for a in arm_list if a not in ARMS]
    if bad:
        raise GanAugmentError(f"unknown arm(s) {bad}: choose from {', '.join(ARMS)}")
    if "baseline" not in arm_list:
        arm_list.insert(0, "baseline")
    check_classifier_name(classifier)  # before any decoding
    dev = resolve_device(device)
    settings = ArmSettings(
        gan=TrainConfig(image_size=image_size, steps=gan_steps, model=ModelConfig(image_size=image_size)),
        classifier=ClassifierConfig(steps=clf_steps, workers=0 if dev.type == "cpu" else 4, architecture=classifier),
        synthetic_ratio=synthetic_ratio, flip=flip, device=dev,
    )
    report = evaluate_folders(labeled, unlabeled, out, arm_list, list(range(seeds)), test_fraction, settings, run,
                              Reporter(quiet=quiet))
    if not quiet:
        out_console_line(markdown_table(report["summary"]))
    for v in report["verdicts"]:
        out_console_line(v)
    out_console_line(f"report: {out}/evaluation.json, {out}/evaluation.md, {out}/evaluation.png")


def main() -> None:
    """Entry point of the ``gan-augment`` console script."""
    app()


if __name__ == "__main__":
    sys.exit(main())
