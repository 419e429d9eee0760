"""``evaluate_folders``: the limited-labels A/B on a user's own folders, with its report."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..data import (
    ImageData,
    content_digest,
    copies_of,
    decode_folder,
    load_image_data,
    stratified_split,
    without_copies,
)
from ..data.cache import file_digest
from ..data.folders import normalisation_note
from ..errors import UsageError
from ..io.checkpoint import TEACHER_NAME
from ..io.lock import FolderLock
from ..io.outdir import EVALUATION, check_apart, check_output_folder, mark, prepare_output
from ..io.rebuild import load_generator
from ..io.record import load_run
from ..progress import Reporter
from ..train.board import Board, require_tensorboard
from ..train.teacher_status import describe_teacher
from .arms import ArmSettings, SeedArms, default_settings, with_gan
from .budget import tell_expected
from .classifier import Split
from .imbalance import is_imbalanced
from .journal import Journal, progress_line
from .registry import IMBALANCED_DEFAULT_ARMS, check_arms, default_arms, get_arm
from .report import settings_dict, write_report


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
    arms: Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    test_fraction: float = 0.3,
    settings: ArmSettings | None = None,
    run: str | Path | None = None,
    reporter: Reporter | None = None,
    *,
    overwrite: bool = False,
    test_dir: str | Path | None = None,
    resume: bool = False,
    tensorboard: bool = False,
    imbalanced_arms: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The limited-labels A/B on a user's own folders: held-out split per seed, arms, table, plot.

    With ``run``, that run serves the arm of its mode (and, when it kept a teacher, the default,
    teacher-unlabeled and teacher arms) instead of a GAN trained per seed (faster, but the run has
    seen the held-out images if it was trained on the same folder: optimistic); the report records
    that run's settings. With ``test_dir`` (an ImageFolder of the same classes), every seed trains on
    all of LABELED and tests on it, instead of holding out ``test_fraction`` of each class.
    Each (arm, seed) result is written as it completes (``evaluation-progress.json``); ``resume``
    continues an interrupted evaluation in ``out`` with the same data and settings, reusing what
    it finished (seeds may be added); ``tensorboard`` logs each result in ``out/tensorboard``.
    ``out`` is checked before any work: an evaluation there is replaced only with ``overwrite``
    (or continued with ``resume``), and files the package did not write never are. An imbalanced
    LABELED (``is_imbalanced``) is scored by balanced accuracy and recall per class, ``imbalanced_arms`` added.
    The defaults are the CLI's: ``arms`` :func:`default_arms`, with :data:`IMBALANCED_DEFAULT_ARMS` for an
    imbalanced LABELED; ``settings`` :func:`default_settings` (the CPU's).
    Returns the report written to ``out/evaluation.json`` (summary rows, runs, verdicts, caveats).
    """
    reporter = reporter or Reporter()
    if imbalanced_arms is None:  # the CLI's defaults: with the default arms, those for an imbalanced LABELED
        imbalanced_arms = IMBALANCED_DEFAULT_ARMS if arms is None else ()
    arms = check_arms(default_arms(unlabeled is not None) if arms is None else arms, has_pool=unlabeled is not None)
    settings = settings or default_settings()
    out_dir = Path(out)
    _check_first(out_dir, labeled, unlabeled, test_dir, overwrite or resume, tensorboard)
    with FolderLock(out_dir):  # one evaluation per folder: a second would drop the first's results
        job = (labeled, unlabeled, out_dir, arms, seeds, test_fraction, settings, run, reporter)
        options = dict(overwrite=overwrite, test_dir=test_dir, resume=resume, tensorboard=tensorboard)
        return _evaluate(*job, imbalanced_arms=imbalanced_arms, **options)


def _evaluate(
    labeled: str | Path,
    unlabeled: str | Path | None,
    out_dir: Path,
    arms: list[str],
    seeds: Sequence[int],
    test_fraction: float,
    settings: ArmSettings,
    run: str | Path | None,
    reporter: Reporter,
    **options: Any,
) -> dict[str, Any]:
    """``evaluate_folders`` once its output folder is checked and held."""
    test_dir = options["test_dir"]
    runs: dict[str, Path] = {}
    caveats: list[str] = []
    labeled_data, unlabeled_images = _load(labeled, unlabeled, settings, run, runs, reporter, caveats, test_dir)
    test = _test_data(test_dir, labeled_data, caveats, reporter) if test_dir is not None else None
    arms = _with_imbalanced_arms(arms, options["imbalanced_arms"], labeled_data, unlabeled is not None, reporter)
    unlabeled_images = _without_test_copies(unlabeled_images, test, caveats, reporter)
    _say_data(labeled_data, unlabeled_images, test, test_dir, test_fraction, arms, reporter)
    settings = with_gan(settings, image_size=int(labeled_data.images.shape[-1]))
    used = _run_settings(run)
    identity = {  # the data by its content (the same folder spelled another way is the same data), the settings
        "labeled": content_digest(labeled_data.images, labeled_data.labels, labeled_data.class_names),
        "unlabeled": content_digest(unlabeled_images),
        "test": None if test is None else content_digest(test.images, test.labels, test.class_names),
        "test_fraction": None if test is not None else test_fraction,
        "settings": settings_dict(settings),
        "run": _run_identity(run, used),
    }
    journal = _open_journal(out_dir, identity, options["resume"], options["overwrite"])
    journal.board = Board(out_dir) if options["tensorboard"] else None
    expected: dict[str, float] | None = None  # each arm's expected seconds, once the first arm to run is timed
    for seed in seeds:
        split = _split(labeled_data, unlabeled_images, test, test_fraction, seed)
        seed_arms = SeedArms(split, settings, seed, out_dir / "runs", reporter, runs, reuse=options["resume"])
        expected = _run_seed(seed_arms, journal, arms, seeds, Path(labeled).name, reporter, expected)
    records = journal.chosen(arms, seeds)
    setup = {"settings": settings, "seeds": seeds, "test_fraction": test_fraction, "test_dir": test_dir}
    return write_report(out_dir, Path(labeled).name, records, caveats, used, labeled_data.class_names, **setup)


def _run_identity(run: str | Path | None, used: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a ``--run`` contributes to an evaluation's identity: its resolved folder, settings and the
    content of its checkpoint files (a run trained further in place is another run)."""
    if run is None or used is None:
        return None
    folder = Path(run) if Path(run).is_dir() else Path(run).parent
    files = {p.name: file_digest(p) for p in sorted(folder.glob("*.pt")) if p.is_file() and not p.is_symlink()}
    return {**used, "path": os.path.realpath(run), "files": files}


def _without_test_copies(
    pool: torch.Tensor | None, test: ImageData | None, caveats: list[str], reporter: Reporter
) -> torch.Tensor | None:
    """The unlabeled pool without copies of the test folder's images (a caveat says how many went)."""
    if test is None or pool is None:
        return pool
    pool, copies = without_copies(pool, test.images)
    if copies:
        caveats.append(f"{copies} unlabeled image(s) equal test images and were left out of the pool")
        reporter.message(caveats[-1])
    return pool


def _with_imbalanced_arms(
    arms: list[str], extra: Sequence[str], data: ImageData, has_pool: bool, reporter: Reporter
) -> list[str]:
    """``arms``, and ``extra`` after them when the labeled images are imbalanced."""
    counts = data.class_counts
    added = [a for a in check_arms(extra, True) if a not in arms and (has_pool or not get_arm(a).needs_pool)]
    if not is_imbalanced(counts) or not added:
        return arms
    reporter.message(
        f"the labeled classes are imbalanced ({max(counts)} to {min(counts)} images): adding {', '.join(added)}"
    )
    return [*arms, *added]


def _check_first(
    out_dir: Path,
    labeled: str | Path,
    unlabeled: str | Path | None,
    test_dir: str | Path | None,
    replace: bool,
    tensorboard: bool,
) -> None:
    """Before any work: the output folder apart from the data and free to write; TensorBoard there if asked for."""
    check_apart(out_dir, labeled, unlabeled)
    check_apart(out_dir, test_dir, None)
    if test_dir is not None:
        check_test_apart(test_dir, labeled)
    check_output_folder(out_dir, EVALUATION, replace)
    if tensorboard:
        require_tensorboard()


def check_test_apart(test_dir: str | Path, labeled: str | Path) -> None:
    """Refuse a ``--test-dir`` that is LABELED, or inside it, or holds it: its images would be trained on."""
    test, data = Path(os.path.realpath(test_dir)), Path(os.path.realpath(labeled))
    if test == data or data in test.parents or test in data.parents:
        raise UsageError(
            f"--test-dir {str(test_dir)!r} is the LABELED folder {str(labeled)!r}, or holds it or is inside it: every "
            "arm would be scored on its own training images; give a folder of images kept out of training"
        )


def _open_journal(out_dir: Path, identity: dict[str, Any], resume: bool, overwrite: bool) -> Journal:
    """The evaluation's journal: continued (``resume``), or new in a folder cleared of an earlier evaluation."""
    if resume:
        mark(out_dir, EVALUATION)
    else:
        prepare_output(out_dir, EVALUATION, overwrite)  # the data is known good: an earlier evaluation's files go
    return Journal(out_dir, identity, resume)


def _run_seed(
    seed_arms: SeedArms,
    journal: Journal,
    arms: Sequence[str],
    seeds: Sequence[int],
    name: str,
    reporter: Reporter,
    expected: dict[str, float] | None,
) -> dict[str, float] | None:
    """The seed's arms not done yet, each written to the journal as it completes (the first seed with an arm
    to run: the whole evaluation's expected duration up front). Returns each arm's expected seconds."""
    seed, split = seed_arms.seed, seed_arms.split
    todo = [a for a in arms if journal.done(a, seed) is None]
    if expected is None and todo:
        left = [[a for a in arms if journal.done(a, s) is None] for s in seeds]
        expected = tell_expected(seed_arms, left, reporter)
    counts = np.bincount(split.train_labels.numpy(), minlength=len(split.class_names))
    tag = {"dataset": name, "labels_per_class": int(counts.min()), "class_counts": counts.tolist()}
    for arm in todo:
        journal.add({**tag, **seed_arms.run(arm)})
        reporter.message(progress_line(journal, arms, seeds, expected))
    return expected


def _say_data(
    data: ImageData,
    pool: torch.Tensor | None,
    test: ImageData | None,
    test_dir: str | Path | None,
    fraction: float,
    arms: Sequence[str],
    reporter: Reporter,
) -> None:
    tested = f"{len(test.labels)} test images from {test_dir}" if test is not None else f"{fraction:.0%} held out"
    reporter.message(
        f"{len(data.labels)} labeled images in {len(data.class_names)} classes; "
        f"{0 if pool is None else len(pool)} unlabeled; {tested}; arms: {', '.join(arms)}"
    )


def _split(data: ImageData, pool: torch.Tensor | None, test: ImageData | None, fraction: float, seed: int) -> Split:
    """The seed's split: a held-out share of every class, or (with a test folder) all labeled images."""
    if test is not None:
        return Split(data.images, data.labels, pool, test.images, test.labels, data.class_names)
    tr, te = _held_out_split(data.labels, fraction, seed)
    return Split(data.images[tr], data.labels[tr], pool, data.images[te], data.labels[te], data.class_names)


def _test_data(test_dir: str | Path, labeled: ImageData, caveats: list[str], reporter: Reporter) -> ImageData:
    """The test folder at the labeled images' size and channels, its labels in the labeled folder's order,
    without copies of labeled images (a caveat says how many went; a folder of nothing but copies is refused:
    every arm would be scored on its own training images)."""
    size, channels = int(labeled.images.shape[-1]), int(labeled.images.shape[1])
    test = load_image_data(test_dir, None, image_size=size, channels=channels)
    if sorted(test.class_names) != sorted(labeled.class_names):
        raise UsageError(
            f"--test-dir {str(test_dir)!r} has the classes {test.class_names}, the labeled folder "
            f"{labeled.class_names}{normalisation_note(test.class_names, labeled.class_names)}: a test folder needs "
            "the same class folders"
        )
    order = torch.tensor([labeled.class_names.index(n) for n in test.class_names])
    test = dataclasses.replace(test, labels=order[test.labels], class_names=list(labeled.class_names))
    copies = copies_of(test.images, labeled.images)
    if bool(copies.all()):
        raise UsageError(
            f"every image in --test-dir {str(test_dir)!r} equals a LABELED image (the same folder, or a copy): every "
            "arm would be scored on its own training images; give a folder of images kept out of training"
        )
    if bool(copies.any()):
        keep = ~copies
        files = [f for f, k in zip(test.files, keep.tolist()) if k]
        test = dataclasses.replace(test, images=test.images[keep], labels=test.labels[keep], files=files)
        caveats.append(
            f"{int(copies.sum())} test image(s) equal LABELED images (the same files, or copies) and were left out "
            f"of the test set: scored on {len(files)} test images"
        )
        reporter.message(caveats[-1])
    return test


def _run_settings(run: str | Path | None) -> dict[str, Any] | None:
    """What the report records of a ``--run``: its path, mode, configuration and teacher."""
    if run is None:
        return None
    record = load_run(run)
    return {
        "path": str(run),
        "mode": record.mode,
        "config": record.config.to_dict(),
        "teacher": describe_teacher(Path(run)),
    }


def _load(
    labeled: str | Path,
    unlabeled: str | Path | None,
    settings: ArmSettings,
    run: str | Path | None,
    runs: dict[str, Path],
    reporter: Reporter,
    caveats: list[str],
    test_dir: str | Path | None = None,
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
        if test_dir is None:  # held out of LABELED, which the run was trained on
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
