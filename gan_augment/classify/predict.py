"""A saved classifier put to use: class probabilities of images, predictions for a folder as CSV."""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..data import iter_decoded_files, walk_images
from ..data.folders import check_dir
from ..device import resolve_device
from ..errors import CheckpointError, UsageError
from ..io.atomic import atomic_write
from ..io.checkpoint import CHECKPOINT_NAME, CLASSIFIER_NAME, TEACHER_NAME, reading
from ..io.classifier_record import FeaturesRecord, load_classifier_record
from ..io.images import to_unit
from ..io.rebuild import build_discriminator
from ..models import Discriminator
from ..plugins import extract_features
from ..plugins.features import input_shape
from ..progress import Reporter
from ..train.teacher_status import finished_teacher


class Predictor:
    """A classifier saved by :func:`classify`, or a run's teacher, ready to predict class probabilities.

    Args:
        path_or_run_dir: ``classifier.pt`` or the folder holding it (``gan-augment classify``), or a run
            of ``gan-augment fit`` (its teacher, ``teacher.pt``).
        device: Where to run (default CUDA when available).
    """

    def __init__(self, path_or_run_dir: str | os.PathLike[str], device: str | torch.device = "auto") -> None:
        path, found = Path(path_or_run_dir), None
        if path.is_dir() and (path / CHECKPOINT_NAME).is_file() and not (path / CLASSIFIER_NAME).is_file():
            # A run of fit: its teacher, when finished (an interrupted or missing one says what to do).
            found = finished_teacher(path, "pass a folder written by `gan-augment classify`")
            path = found[0] if found is not None else path / TEACHER_NAME
        elif path.is_dir():
            path = path / (TEACHER_NAME if (path / TEACHER_NAME).is_file() else CLASSIFIER_NAME)
        if not path.is_file():
            raise CheckpointError(
                f"no classifier at {str(path)!r}: pass a folder written by `gan-augment classify`, or a run of "
                "`gan-augment fit` that kept its teacher"
            )
        self.record = found[1] if found is not None else load_classifier_record(path)
        self.device = resolve_device(device)
        self.class_names: list[str] = list(self.record.class_names)
        self.image_size, self.channels = self.record.image_size, self.record.channels
        with reading(path):  # right keys, wrong contents: one line, found here and not mid-prediction
            if isinstance(self.record, FeaturesRecord):
                d = build_discriminator(self.record.gan)
                if not isinstance(d, Discriminator):
                    raise TypeError("its discriminator is not one model")
                self.model: torch.nn.Module = d.to(self.device).eval()
            else:
                self.model = self.record.build().to(self.device)
            if (self.image_size, self.channels) != input_shape(self.model):  # the size decoded to: the model's own
                raise ValueError(f"image size {self.image_size} and {self.channels} channels are not its network's")
            probs = self.predict_proba(
                torch.zeros(1, self.channels, self.image_size, self.image_size, dtype=torch.uint8)
            )
            if probs.shape != (1, len(self.class_names)):
                raise UsageError(f"it gives {probs.shape[1]} class probabilities for {len(self.class_names)} classes")

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor) -> np.ndarray:
        """Class probabilities (N, K) of uint8 images (N, C, H, W) at the classifier's size."""
        x = to_unit(images)
        record = self.record
        if not isinstance(record, FeaturesRecord):  # a network (classify --method ssl's, or a run's teacher)
            logits = torch.cat(
                [self.model(x[i : i + 512].to(self.device)).float().cpu() for i in range(0, len(x), 512)]
            )
        else:
            assert isinstance(self.model, Discriminator)
            feats = extract_features(self.model, x, record.layers, record.grid)
            feats = (feats - record.scaler_mean) / record.scaler_scale
            logits = feats @ record.coef.T + record.intercept
            if logits.shape[1] == 1:  # scikit-learn's binary form: one logit for the second class
                logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
        return torch.softmax(logits, dim=1).numpy()


def csv_cell(text: str) -> str:
    """A text cell that a spreadsheet shows as text: one starting with ``=``, ``+``, ``-``, ``@``, a tab
    or a carriage return would run as a formula (CSV injection), so it gets a leading ``'``."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class Predicted(NamedTuple):
    """What :func:`predict_folder` wrote: ``rows`` predictions; ``skipped``: ``(file, reason)`` of each image
    that could not be read."""

    rows: int
    skipped: list[tuple[str, str]]


def predict_folder(
    run: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    device: str = "auto",
    reporter: Reporter | None = None,
) -> Predicted:
    """Write ``file,class,probability`` for every image under ``images_dir``; returns the row count and the
    files that could not be read (skipped). ``reporter``: a progress bar over the images (images/s, time left)."""
    predictor = Predictor(run, device=device)
    reporter = reporter or Reporter(quiet=True)
    files_in, _ = walk_images(check_dir(images_dir, "images"))
    count, unread, t0 = 0, [], time.perf_counter()

    def write(f: Any) -> None:  # streamed: a chunk of images in memory at a time, rows written as they come
        nonlocal count
        text = io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline="")
        w = csv.writer(text)
        w.writerow(["file", "class", "probability"])
        where = f"under {str(images_dir)!r}"
        with reporter.progress(len(files_in), closing=False) as bar:  # the command says "wrote N predictions"
            for files, images, skipped in iter_decoded_files(
                files_in, predictor.image_size, predictor.channels, where=where
            ):
                probs = predictor.predict_proba(images) if len(images) else []
                for path, p in zip(files, probs):
                    c = int(p.argmax())
                    w.writerow([csv_cell(path), csv_cell(predictor.class_names[c]), f"{p[c]:.6f}"])
                count = count + len(files)
                unread.extend(skipped)
                bar.update(count + len(unread), {"img_per_s": count / max(time.perf_counter() - t0, 1e-9)})
        text.flush()
        text.detach()

    atomic_write(out_csv, write)
    return Predicted(count, unread)
