"""Commands that train: ``fit`` (the main job) and ``demo`` (the main job on scikit-learn's digits)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Optional

import typer

from ..config import ModelConfig, TrainConfig, default
from ..errors import GanAugmentError
from ..train import fit as run_fit
from .app import CompileChoice, LossChoice, ModeChoice, SwitchChoice, UpsampleChoice, app, expected_errors, out_console_line

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
    compile: CompileChoice = typer.Option("off", "--compile", help="torch.compile the models (GPU; reduce-overhead adds CUDA graphs). Not with wgan-gp."),
) -> None:
    """Train DCGAN(s) on LABELED (and UNLABELED) and write a run directory."""
    if resume:
        config = TrainConfig(steps=steps) if steps is not None else None
    else:
        model = ModelConfig(upsample=upsample.value, g_width=g_width, d_width=d_width, z_dim=z_dim, d_dropout=d_dropout)
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
def demo(
    out: Path = typer.Option(Path("demo-run"), "--out", "-o", help="Folder for the demo data and run."),
    steps: int = typer.Option(300, min=1, help="Per-class training steps (unconditional pre-training adds twice as many)."),
    labels_per_class: int = typer.Option(20, min=1, max=150, help="Labeled digits per class; the rest are unlabeled."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or messages."),
) -> None:
    """The main job on scikit-learn's bundled digits: a few labels per class, the rest unlabeled."""
    from ..data.demo import write_digits_folders

    data_dir, run_dir = out / "data", out / "run"
    if out.exists() and any(out.iterdir()) and not (data_dir / "README.txt").is_file():
        raise GanAugmentError(f"{str(out)!r} exists and is not a demo folder: pass another --out")
    if data_dir.exists():
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
        model=ModelConfig(channels=1, g_width=16, d_width=16, z_dim=32),
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
