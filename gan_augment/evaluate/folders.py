"""``evaluate_folders``: the limited-labels A/B on a user's own folders, with its report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..config import TrainConfig
from ..data import ImageData, decode_folder, load_image_data, stratified_split, without_copies
from ..errors import UsageError
from ..io.atomic import atomic_write_json, atomic_write_text
from ..io.checkpoint import TEACHER_NAME
from ..io.outdir import EVALUATION, check_apart, check_output_folder, prepare_output
from ..io.rebuild import load_generator
from ..progress import Reporter
from .arms import ArmSettings, run_seed, with_gan
from .classifier import ClassifierConfig, Split
from .registry import check_arms
from .report import markdown_table, plot_accuracy, settings_dict
from .stats import route_verdict, samples_verdict, summarize, verdict


def _held_out_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        train, test = stratified_split(labels.numpy(), fraction, seed, min_held_out=1)
    except ValueError as exc:
        raise UsageError(f"{exc}: evaluation needs at least 2 images per class") from None
    return torch.from_numpy(train), torch.from_numpy(test)


def evaluate_folders(
    labeled: str | Path,
    unlabeled: str | Path | None,
    out: str | Path,
    arms: Sequence[str] = ("baseline", "gan-per-class"),
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.3,
    settings: ArmSettings | None = None,
    run: str | Path | None = None,
    reporter: Reporter | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """The limited-labels A/B on a user's own folders: held-out split per seed, arms, table, plot.

    With ``run``, that run serves the arm of its mode (and, when it kept a teacher, the default,
    default-unlabeled and teacher arms) instead of a GAN trained per seed (faster, but the run has
    seen the held-out images if it was trained on the same folder: optimistic).
    ``settings`` is not changed; the report records the settings actually used. ``out`` is checked
    before any work (:func:`~gan_augment.io.outdir.check_output_folder`): an evaluation already
    there is replaced only with ``overwrite``, and files the package did not write never are.

    Returns:
        The report written to ``out/evaluation.json`` (summary rows, runs, verdicts).
    """
    reporter = reporter or Reporter()
    arms = check_arms(arms, has_pool=unlabeled is not None)
    settings = settings or ArmSettings(gan=TrainConfig(), classifier=ClassifierConfig())
    out_dir = Path(out)
    check_apart(out_dir, labeled, unlabeled)
    check_output_folder(out_dir, EVALUATION, overwrite)
    runs: dict[str, Path] = {}
    caveats: list[str] = []
    labeled_data, unlabeled_images = _load(labeled, unlabeled, settings, run, runs, reporter, caveats)
    image_size = int(labeled_data.images.shape[-1])
    reporter.message(
        f"{len(labeled_data.labels)} labeled images in {len(labeled_data.class_names)} classes; "
        f"{0 if unlabeled_images is None else len(unlabeled_images)} unlabeled; arms: {', '.join(arms)}"
    )
    settings = with_gan(settings, image_size=image_size)
    prepare_output(out_dir, EVALUATION, overwrite)  # the data is known good: an earlier evaluation's files go
    records = []
    for seed in seeds:
        tr, te = _held_out_split(labeled_data.labels, test_fraction, seed)
        split = Split(
            labeled_data.images[tr],
            labeled_data.labels[tr],
            unlabeled_images,
            labeled_data.images[te],
            labeled_data.labels[te],
            labeled_data.class_names,
        )
        budget = int(np.bincount(split.train_labels.numpy()).min())
        for rec in run_seed(split, arms, settings, seed, out_dir / "runs", reporter, runs):
            records.append({"dataset": Path(labeled).name, "labels_per_class": budget, **rec})
    return _write_report(out_dir, Path(labeled).name, settings, seeds, test_fraction, records, caveats)


def _load(
    labeled: str | Path,
    unlabeled: str | Path | None,
    settings: ArmSettings,
    run: str | Path | None,
    runs: dict[str, Path],
    reporter: Reporter,
    caveats: list[str],
) -> tuple[ImageData, torch.Tensor | None]:
    """The labeled images and the unlabeled pool (without copies of labeled images), at the size of
    ``run`` when one is given (added to ``runs``); what makes the result less than clean goes to ``caveats``."""
    image_size, channels = settings.gan.image_size, settings.gan.channels
    if run is not None:
        _, info = load_generator(run, device="cpu")
        image_size, channels = info.image_size, info.channels
        runs[info.mode] = Path(run)
        if (Path(run) / TEACHER_NAME).is_file():  # the run of fit with its teacher: the default arms' too
            runs["default"] = Path(run)
        caveats.append(
            f"using {run} ({info.mode}) for its arm; it may have seen the held-out images: gains are optimistic"
        )
    labeled_data = load_image_data(labeled, None, image_size=image_size, channels=channels)
    unlabeled_images = None
    if unlabeled is not None:
        _, pool, _ = decode_folder(unlabeled, image_size, int(labeled_data.images.shape[1]))
        unlabeled_images, copies = without_copies(pool, labeled_data.images)  # held-out images never in the pool
        if copies:
            caveats.append(
                f"{copies} unlabeled image(s) equal labeled ones (the same files, or copies) and were left out of "
                "the pool: held-out test images must never be trained on"
            )
    for caveat in caveats:
        reporter.message(caveat)
    return labeled_data, unlabeled_images


def _write_report(
    out_dir: Path,
    name: str,
    settings: ArmSettings,
    seeds: Sequence[int],
    test_fraction: float,
    records: list[dict[str, Any]],
    caveats: list[str],
) -> dict[str, Any]:
    rows = summarize(records)
    verdicts = [v for v in (*(verdict(r) for r in rows), samples_verdict(rows), route_verdict(rows)) if v]
    report = {
        "settings": settings_dict(settings),
        "seeds": list(seeds),
        "test_fraction": test_fraction,
        "summary": rows,
        "runs": records,
        "verdicts": verdicts,
        "caveats": caveats,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "evaluation.json", report)
    atomic_write_text(
        out_dir / "evaluation.md",
        markdown_table(rows) + "\n\n" + "\n".join(f"- {v}" for v in (*verdicts, *caveats)) + "\n",
    )
    plot_accuracy(rows, out_dir / "evaluation.png", f"{name}: accuracy by arm")
    return report
