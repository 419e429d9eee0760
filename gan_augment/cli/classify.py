"""Commands that put a GAN to work for a classifier: ``classify``, ``predict``, ``features``, ``evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from ..classify import METHODS, predict_folder
from ..classify import classify as run_classify
from ..config import (
    CPU_SIZES,
    EVALUATE_CLF_STEPS,
    SSL_ARCHITECTURES,
    SSLConfig,
    TrainConfig,
    default,
)
from ..data import is_image_folder, iter_decoded, iter_decoded_files, native_image_size, scan_folders
from ..device import resolve_device
from ..evaluate.registry import DEFAULT_ARMS, IMBALANCED_DEFAULT_ARMS, arm_names, check_arms, default_arms
from ..io.atomic import atomic_write
from ..io.outdir import check_new_output
from ..plugins import DiscriminatorFeatures
from ..plugins.features import FEATURE_SOURCES
from ..progress import Reporter, printable
from .app import (
    DataImageSizeOpt,
    DeviceOpt,
    ImageSizeOpt,
    LabeledArg,
    QuietOpt,
    SeedOpt,
    TensorBoardOpt,
    UnlabeledArg,
    app,
    choices,
    expected_errors,
    out_console_line,
)
from .train import BatchSize, DWidth, GWidth, PretrainSteps, ZDim, config_from_options

TestDirOpt = Annotated[
    Optional[Path],
    typer.Option("--test-dir", help="A labeled test folder (same classes): every seed tests on it, none held out."),
]
EvaluationResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue the evaluation in --out, reusing its finished (arm, seed) results.")
]

T = TrainConfig
MethodChoice: Any = choices("MethodChoice", METHODS)
SSLArchChoice: Any = choices("SSLArchChoice", SSL_ARCHITECTURES)
SourceChoice: Any = choices("SourceChoice", FEATURE_SOURCES)
SSLSteps = Annotated[
    Optional[int],
    typer.Option(
        min=1, help="ssl: iterations (default: by device and networks; mlp 24,000 on the CPU, 60,000 on a GPU)."
    ),
]
SSLArch = Annotated[
    SSLArchChoice, typer.Option(help="ssl: mlp (small grayscale), conv (RGB), or auto (picked from the images).")
]
SSLConsistency = Annotated[
    float, typer.Option(min=0.0, help="ssl: weight of a consistency term between two noisy passes (0 = off).")
]
SSLEntropy = Annotated[float, typer.Option(min=0.0, help="ssl: weight of entropy minimisation (0 = off).")]


@app.command()
@expected_errors
def classify(
    labeled: LabeledArg,
    unlabeled: UnlabeledArg = None,
    out: Path = typer.Option(Path("runs/classifier"), "--out", "-o", help="Folder for the classifier and its GAN."),
    method: MethodChoice = typer.Option(
        "features", help="features: linear model on discriminator features; ssl: semi-supervised GAN."
    ),
    image_size: ImageSizeOpt = default(T, "image_size"),
    steps: int = typer.Option(default(T, "steps"), min=1, help="GAN training steps."),
    batch_size: int = typer.Option(default(T, "batch_size"), min=2, max=65536, help="Images per step."),
    val_fraction: float = typer.Option(0.2, min=0.0, max=0.9, help="ssl: labeled images held out to measure accuracy."),
    seed: SeedOpt = default(T, "seed"),
    device: DeviceOpt = "auto",
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a classifier already in --out."),
    quiet: QuietOpt = False,
    ssl_steps: SSLSteps = None,
    ssl_architecture: SSLArch = "auto",
    ssl_consistency: SSLConsistency = 0.0,
    ssl_entropy: SSLEntropy = 0.0,
    run: Optional[Path] = typer.Option(
        None, "--run", help="ssl: take this fit run's teacher as the classifier instead of training one again."
    ),
) -> None:
    """Few labels, many unlabeled images: train a classifier from a GAN and report its accuracy."""
    config = TrainConfig(image_size=image_size, steps=steps, batch_size=batch_size, seed=seed)
    ssl = SSLConfig(
        steps=ssl_steps or 0,
        architecture=ssl_architecture.value,
        consistency=ssl_consistency,
        entropy=ssl_entropy,
        seed=seed,
    )
    kwargs = dict(ssl=ssl, val_fraction=val_fraction, device=device, overwrite=overwrite, quiet=quiet, run=run)
    metrics = run_classify(labeled, unlabeled, out, method.value, config, **kwargs)
    out_console_line(_accuracy_line(metrics))
    out_console_line(
        f"classifier: {out}/classifier.pt; next: gan-augment predict {out} IMAGES_DIR --out predictions.csv"
    )


def _accuracy_line(metrics: dict[str, Any]) -> str:
    if metrics["method"] == "features":
        acc = metrics["cv_accuracy_mean"]
        if acc is None:
            return "too few labels per class to cross-validate"
        return (
            f"{metrics['cv_folds']}-fold cross-validated accuracy on {metrics['num_labeled']} labeled images: "
            f"{acc:.3f} ± {metrics['cv_accuracy_std']:.3f}"
        )
    acc = metrics["val_accuracy"]
    if metrics.get("run") and acc is not None:
        return f"the run's teacher: {acc:.3f} on {metrics['num_val']} labeled images held out of it by fit"
    if metrics.get("run"):
        return (
            f"the run's teacher: {metrics['labeled_accuracy']:.3f} on the {metrics['num_train_labeled']} labeled "
            "images it trained on (optimistic: none held out; `gan-augment evaluate` measures it on held-out images)"
        )
    if acc is None:
        return "no labeled image held out (val_fraction 0): accuracy not measured"
    return f"held-out accuracy on {metrics['num_val']} labeled images: {acc:.3f}"


OverwriteFile = Annotated[bool, typer.Option("--overwrite", help="Replace --out if it exists.")]


@app.command()
@expected_errors
def predict(
    run: Path = typer.Argument(..., help="Folder written by `gan-augment classify`, or a fit run with a teacher."),
    images_dir: Path = typer.Argument(..., help="Folder of images to classify (searched recursively)."),
    out: Path = typer.Option(Path("predictions.csv"), "--out", "-o", help="CSV to write: file, class, probability."),
    device: DeviceOpt = "auto",
    overwrite: OverwriteFile = False,
) -> None:
    """Classify a folder of images with a classifier from `gan-augment classify`, or a fit run's teacher."""
    check_new_output(out, overwrite, inputs={"images folder": images_dir, "run": run})  # before anything is loaded
    rows, skipped = predict_folder(run, images_dir, out, device=device, reporter=Reporter())
    out_console_line(
        f"wrote {rows} predictions to {out}"
        + (
            f"; {len(skipped)} unreadable file(s) skipped, the first: {printable(skipped[0][0])} ({skipped[0][1]})"
            if skipped
            else ""
        )
    )


@app.command()
@expected_errors
def features(
    run: Path = typer.Argument(..., help="Run directory of `gan-augment fit` (a per-class run: its pre-trained D)."),
    images_dir: Path = typer.Argument(
        ..., help="Folder of images; with one sub-folder per class, labels are saved too."
    ),
    out: Path = typer.Option(Path("features.npz"), "--out", "-o", help="NPZ to write: features, labels, files."),
    grid: int = typer.Option(4, min=1, max=64, help="Side of each pooled feature map."),
    device: DeviceOpt = "auto",
    overwrite: OverwriteFile = False,
    source: SourceChoice = typer.Option(
        "auto", help="teacher (the run's teacher.pt), discriminator (the DCGAN's), auto (the teacher if kept)."
    ),
) -> None:
    """Discriminator features (every block max-pooled to grid×grid) of a folder of images."""
    check_new_output(out, overwrite, inputs={"images folder": images_dir, "run": run})  # before anything is loaded
    dev = str(resolve_device(device))
    extractor = DiscriminatorFeatures(run, grid=grid, device=dev, source=source.value).fit()
    size, channels = extractor.image_size_, extractor.channels_
    arrays: dict[str, Any] = {}
    if is_image_folder(images_dir):  # labels as torchvision's ImageFolder gives them
        paths, labels, class_names, _ = scan_folders(images_dir)
        chunks = iter_decoded_files(paths, size, channels, where=f"under {str(images_dir)!r}")
        arrays.update(classes=np.array(class_names))
    else:
        chunks, labels = iter_decoded(images_dir, size, channels), None
    files: list[str] = []
    parts: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    for kept, images, bad in chunks:  # a chunk of images in memory at a time; the features are the result
        files += kept
        parts += [extractor.transform(images)] if len(images) else []
        skipped += bad
    feats = np.concatenate(parts)
    if labels is not None:
        label_of = dict(zip(map(str, paths), labels))
        arrays["labels"] = np.array([label_of[f] for f in files], dtype=np.int64)
    arrays.update(features=feats, files=np.array(files), feature_names=extractor.get_feature_names_out().astype(str))
    atomic_write(out, lambda f: np.savez(f, **arrays))
    out_console_line(
        f"wrote {feats.shape[0]}×{feats.shape[1]} features to {out}"
        + (f" ({len(skipped)} unreadable skipped)" if skipped else "")
    )


ResampleOpt = Annotated[
    bool, typer.Option("--resample-each-epoch", help="Sample arms: fresh synthetic images every classifier epoch.")
]


ARMS_HELP = (
    f"Comma-separated arms: {', '.join(arm_names())} (docs/usage.md says what each does). [default: "
    f"{','.join(DEFAULT_ARMS)}; without UNLABELED {','.join(default_arms(False))}; "
    f"with {','.join(IMBALANCED_DEFAULT_ARMS)} added when LABELED is imbalanced]"
)
GAN_STEPS_HELP = f"GAN training steps per arm. \\[default: {default(T, 'steps')}; {CPU_SIZES['steps']} on a CPU]"


def _arm_list(arms: str, has_pool: bool) -> list[str]:
    """The comma-separated arms, checked against the registry; the baseline added (every gain is against it)."""
    arm_list = check_arms([a.strip() for a in arms.split(",") if a.strip()], has_pool)
    return arm_list if "baseline" in arm_list else ["baseline", *arm_list]


@app.command()
@expected_errors
def evaluate(
    labeled: LabeledArg,
    unlabeled: UnlabeledArg = None,
    out: Path = typer.Option(Path("runs/evaluation"), "--out", "-o", help="Folder for the report, plot and GAN runs."),
    run: Optional[Path] = typer.Option(
        None, "--run", help="Use this fit run for its arm instead of training a GAN per seed."
    ),
    arms: Optional[str] = typer.Option(None, help=ARMS_HELP),
    seeds: int = typer.Option(3, min=1, max=20, help="Repeats, each with its own held-out split."),
    test_fraction: float = typer.Option(0.3, min=0.05, max=0.9, help="Fraction of each class held out for testing."),
    image_size: DataImageSizeOpt = None,
    gan_steps: Optional[int] = typer.Option(None, min=1, help=GAN_STEPS_HELP),
    pretrain_steps: PretrainSteps = -1,
    batch_size: BatchSize = None,
    g_width: GWidth = None,
    d_width: DWidth = None,
    z_dim: ZDim = None,
    test_dir: TestDirOpt = None,
    resume: EvaluationResumeOpt = False,
    tensorboard: TensorBoardOpt = False,
    clf_steps: int = typer.Option(EVALUATE_CLF_STEPS, min=1, help="Secondary classifier steps (every arm's)."),
    classifier: str = typer.Option(
        "small-resnet", help="small-resnet, or a torchvision model name (resnet18, ...), trained from scratch."
    ),
    synthetic_ratio: float = typer.Option(0.5, min=0.0, max=0.95, help="Fraction of synthetic images in the GAN arms."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Horizontal flips in the classic augmentation."),
    resample: ResampleOpt = False,
    device: DeviceOpt = "auto",
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the verdicts."),
    ssl_steps: SSLSteps = None,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an evaluation already in --out."),
) -> None:
    """Does GAN augmentation help on YOUR data? Baseline vs. augmentation arms on held-out splits."""
    from ..evaluate import ArmSettings, ClassifierConfig, check_classifier_name, evaluate_folders
    from ..evaluate.arms import classifier_workers

    arm_list = _arm_list(arms, unlabeled is not None) if arms is not None else None  # before any decoding
    check_classifier_name(classifier)
    dev = resolve_device(device)
    sizes = dict(steps=gan_steps, pretrain_steps=pretrain_steps, batch_size=batch_size, g_width=g_width)
    sizes.update(d_width=d_width, z_dim=z_dim, image_size=image_size or native_image_size(labeled))
    clf = ClassifierConfig(steps=clf_steps, workers=classifier_workers(dev), architecture=classifier, resample=resample)
    gan = config_from_options(sizes, dev.type)  # fit's sizes, for the device where not given
    ssl, seed_list, reporter = SSLConfig(steps=ssl_steps or 0), list(range(seeds)), Reporter(quiet=quiet)
    settings = ArmSettings(gan, clf, synthetic_ratio=synthetic_ratio, flip=flip, device=dev, ssl=ssl)
    options = dict(overwrite=overwrite, test_dir=test_dir, resume=resume, tensorboard=tensorboard)
    report = evaluate_folders(
        labeled, unlabeled, out, arm_list, seed_list, test_fraction, settings, run, reporter, **options
    )
    _print_report(report, out, quiet)


def _print_report(report: dict[str, Any], out: Path, quiet: bool) -> None:
    from ..evaluate import markdown_table

    if not quiet:
        out_console_line(markdown_table(report["summary"], metric=report.get("metric", "accuracy")))
    for v in report["verdicts"]:
        out_console_line(v)
    out_console_line(f"report: {out}/evaluation.json, {out}/evaluation.md, {out}/evaluation.png")
