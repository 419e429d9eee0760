"""Commands that train: ``fit`` (the main job) and ``demo`` (the main job on scikit-learn's digits)."""

from __future__ import annotations

import dataclasses
import enum
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..config import CPU_SIZES, TEACHER_KINDS, ModelConfig, TrainConfig, default, for_device
from ..data import native_image_size
from ..data.demo import write_digits_folders
from ..device import resolve_device
from ..errors import GanAugmentError
from ..io.outdir import DEMO, MARKER_NAME, is_marked, mark, prepare_output
from ..train import fit as run_fit
from .app import (
    CompileChoice,
    DataImageSizeOpt,
    DeviceOpt,
    LabeledArg,
    LossChoice,
    ModeChoice,
    QuietOpt,
    SeedOpt,
    SwitchChoice,
    TensorBoardOpt,
    UnlabeledArg,
    UpsampleChoice,
    app,
    choices,
    err_line,
    expected_errors,
    out_console_line,
)

T = TrainConfig
M = ModelConfig


# Options named exactly as TrainConfig's (or ModelConfig's) fields, so they build the configuration.
Mode = Annotated[ModeChoice, typer.Option(help="One GAN per class, one conditional GAN, or one GAN ignoring labels.")]
Channels = Annotated[int, typer.Option(min=0, max=3, help="1 or 3; 0 picks 1 when all images are grayscale.")]


def _by_device(name: str, cls: type = T) -> str:
    return f"\\[default: {default(cls, name)}; {CPU_SIZES[name]} on a CPU]"


Steps = Annotated[
    Optional[int],
    typer.Option(min=1, help=f"Training steps (per class model in per-class mode). {_by_device('steps')}"),
]
PretrainSteps = Annotated[
    int,
    typer.Option(
        min=-1,
        help="Per-class mode: unconditional pre-training steps on all images; -1 = steps/2 if UNLABELED is given.",
    ),
]
BatchSize = Annotated[
    Optional[int],
    typer.Option(min=2, max=65536, help=f"Real images per step (per class model). {_by_device('batch_size')}"),
]
Loss = Annotated[LossChoice, typer.Option(help="GAN loss.")]
Unroll = Annotated[int, typer.Option(min=0, max=100, help="Unrolled-GAN steps (0 = off).")]
LrG = Annotated[float, typer.Option(min=1e-8, max=1.0, help="Generator learning rate.")]
LrD = Annotated[float, typer.Option(min=1e-8, max=1.0, help="Discriminator learning rate.")]
EmaDecay = Annotated[float, typer.Option(min=0.0, max=0.99999, help="EMA decay of generator weights (0 = off).")]
DiffAug = Annotated[SwitchChoice, typer.Option(help="Differentiable augmentation before D (auto: on for small data).")]
Upsample = Annotated[
    UpsampleChoice, typer.Option(help="Generator upsampling: nearest+conv (the article) or transposed conv.")
]
GWidth = Annotated[
    Optional[int],
    typer.Option(min=1, max=4096, help=f"Generator width (channels of its last block). {_by_device('g_width', M)}"),
]
DWidth = Annotated[
    Optional[int],
    typer.Option(
        min=1, max=4096, help=f"Discriminator width (channels of its first block). {_by_device('d_width', M)}"
    ),
]
ZDim = Annotated[Optional[int], typer.Option(min=1, max=4096, help=f"Noise vector length. {_by_device('z_dim', M)}")]
DDropout = Annotated[float, typer.Option(min=0.0, max=0.99, help="Dropout after each discriminator activation.")]
SampleEvery = Annotated[int, typer.Option(min=1, help="Steps between sample grids.")]
CheckpointEvery = Annotated[int, typer.Option(min=1, help="Steps between checkpoints.")]
CheckpointMinutes = Annotated[
    float,
    typer.Option(min=0.0, max=10_000.0, help="Minutes between checkpoints as well, the teacher's too (0: steps only)."),
]
Compile = Annotated[
    CompileChoice,
    typer.Option(
        "--compile", help="torch.compile the models (GPU; reduce-overhead adds CUDA graphs). Not with wgan-gp."
    ),
]
TeacherChoice: Any = choices("TeacherChoice", TEACHER_KINDS)
Teacher = Annotated[
    TeacherChoice,
    typer.Option(
        help="The classifier the run keeps (teacher.pt), whose labels GANAugmentedDataset(base, run) uses: "
        "self-training (a small ResNet, then rounds on UNLABELED), ssl (semi-supervised GAN), supervised (labels "
        "only), none; auto: with UNLABELED self-training on colour images, ssl on gray ones, else supervised."
    ),
]
TeacherSteps = Annotated[
    int,
    typer.Option(
        min=0,
        help="The teacher's iterations (self-training: the steps of each of its two stages); 0 = by device, "
        "network and data (mlp: 16,000 on the CPU).",
    ),
]
Flag = Annotated[bool, typer.Option()]


def config_from_options(options: dict[str, Any], device_type: str = "cuda") -> TrainConfig:
    """A TrainConfig from CLI options named as its fields or its model's (choices give their values); the
    sizes not given (None) are those for ``device_type`` (:func:`~gan_augment.config.for_device`)."""
    values = {k: v.value if isinstance(v, enum.Enum) else v for k, v in options.items() if v is not None}
    names = {f.name for f in dataclasses.fields(TrainConfig)} | {f.name for f in dataclasses.fields(ModelConfig)}
    return for_device(device_type, **{k: v for k, v in values.items() if k in names})


@app.command()
@expected_errors
def fit(
    ctx: typer.Context,
    labeled: LabeledArg,
    unlabeled: UnlabeledArg = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")] = Path("runs/run"),
    mode: Mode = default(T, "mode"),
    image_size: DataImageSizeOpt = None,
    channels: Channels = default(T, "channels"),
    steps: Steps = None,
    pretrain_steps: PretrainSteps = default(T, "pretrain_steps"),
    batch_size: BatchSize = None,
    loss: Loss = default(T, "loss"),
    unroll: Unroll = default(T, "unroll"),
    lr_g: LrG = default(T, "lr_g"),
    lr_d: LrD = default(T, "lr_d"),
    ema_decay: EmaDecay = default(T, "ema_decay"),
    diffaugment: DiffAug = default(T, "diffaugment"),
    upsample: Upsample = default(M, "upsample"),
    g_width: GWidth = None,
    d_width: DWidth = None,
    z_dim: ZDim = None,
    d_dropout: DDropout = default(M, "d_dropout"),
    seed: SeedOpt = default(T, "seed"),
    device: DeviceOpt = "auto",
    sample_every: SampleEvery = default(T, "sample_every"),
    checkpoint_every: CheckpointEvery = default(T, "checkpoint_every"),
    checkpoint_minutes: CheckpointMinutes = default(T, "checkpoint_minutes"),
    teacher: Teacher = default(T, "teacher"),
    teacher_steps: TeacherSteps = default(T, "teacher_steps"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its checkpoint.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a run already in --out.")] = False,
    quiet: QuietOpt = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop on an unreadable image file, not skip it.")] = False,
    compile: Compile = "off",
    tensorboard: TensorBoardOpt = False,
) -> None:
    """Train DCGAN(s) on LABELED (and UNLABELED), then the run's teacher, and write a run directory."""
    options = {k: v for k, v in locals().items() if k not in RUN_OPTIONS}
    if image_size is None and not resume:
        options["image_size"] = native_image_size(labeled)
    config = config_from_options(options, resolve_device(device).type)
    # --resume: the run's own configuration; an option given that differs from the run's is refused, by name.
    given = {k for k in options if getattr(ctx.get_parameter_source(k), "name", "") == "COMMANDLINE"}
    t0 = time.perf_counter()
    kwargs = dict(device=device, resume=resume, overwrite=overwrite, quiet=quiet, strict=strict)
    kwargs.update(tensorboard=tensorboard, explicit=given if resume else None)
    ckpt = run_fit(labeled, unlabeled, out, config, compile=compile.value, **kwargs)
    if not quiet:
        err_line(f"done in {time.perf_counter() - t0:.1f} s: {ckpt}")
        err_line(f"next: gan-augment sample {out} --n 100 --out grid.png")


# fit's options that say how to run, not what to train.
RUN_OPTIONS = {
    "ctx",
    "labeled",
    "unlabeled",
    "out",
    "device",
    "resume",
    "overwrite",
    "quiet",
    "strict",
    "compile",
    "tensorboard",
}


# The demo's teacher budget: the semi-supervised MLP on 16 px digits took 45-61 ms an iteration on 2 CPU
# cores (the same machine on two days), the GANs 43-52 s; 500 iterations keep the demo's training within
# 90 s on the slower day (docs/results/fit_time.md).
DEMO_TEACHER_STEPS = 500


def adopt_demo_folder(out: Path) -> None:
    """Mark a demo folder written before output folders had markers (its README says it is the demo's)."""
    readme = out / "data" / "README.txt"
    if readme.is_file() and not readme.is_symlink() and not (out / MARKER_NAME).exists():
        if readme.read_bytes()[:64].startswith(b"scikit-learn load_digits:"):
            mark(out, DEMO)


@app.command()
@expected_errors
def demo(
    out: Path = typer.Option(Path("demo-run"), "--out", "-o", help="Folder for the demo data and run."),
    steps: int = typer.Option(
        200, min=1, help="Per-class training steps (unconditional pre-training adds twice as many)."
    ),
    labels_per_class: int = typer.Option(20, min=1, max=150, help="Labeled digits per class; the rest are unlabeled."),
    teacher_steps: int = typer.Option(DEMO_TEACHER_STEPS, min=1, help="The run's teacher's iterations."),
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """The main job on scikit-learn's bundled digits: a few labels per class, the rest unlabeled."""
    data_dir, run_dir = out / "data", out / "run"
    adopt_demo_folder(out)
    if out.is_dir() and any(out.iterdir()) and not is_marked(out, DEMO):
        raise GanAugmentError(f"{str(out)!r} exists and is not a demo folder: pass another --out")
    prepare_output(out, DEMO, overwrite=True)  # the demo's own files only, rewritten each time; others stay
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
        teacher_steps=teacher_steps,
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
        f"  teacher:     {run_dir}/teacher.pt (labels the synthetic images of GANAugmentedDataset(base, run))",
        "next:",
        f"  gan-augment info {run_dir}",
        f"  gan-augment sample {run_dir} --n 100 --out digits.png",
        f"  gan-augment sample {run_dir} --per-class 100 --out-dir synthetic/",
    ]
    if not quiet:
        for line in lines:
            out_console_line(line)
