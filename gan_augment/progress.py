"""Progress output: a rich progress bar on a terminal, a plain line every so often otherwise (logs,
nohup, schedulers), nothing when quiet."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def printable(text: object, newlines: bool = False) -> str:
    """``text`` safe to show on a terminal or in an image: control characters (``\\x1b`` starts a
    terminal escape sequence), bidirectional overrides and bytes that are not UTF-8 (file names read
    from disk) are written as escapes; with ``newlines``, line breaks are kept. Names are data."""
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\n" and newlines:
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= o <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o < 32 or 0x7F <= o < 0xA0 or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069 or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


SecondsLeft = Callable[[int], "float | None"]  # step → seconds left (None: not known yet)


class _Bar:
    def __init__(self, progress: Progress | None, task: Any, left: SecondsLeft | None = None) -> None:
        self._progress = progress
        self._task = task
        self._left = left

    def update(self, step: int, row: dict[str, Any] | None) -> None:
        if self._progress is None:
            return
        fields = {}
        if row is not None:
            fields["stats"] = _stats(row)
        if self._left is not None:
            seconds = self._left(step)
            fields["left"] = f"{duration(seconds)} left" if seconds is not None else "timing…"
        self._progress.update(self._task, completed=step, **fields)


def _stats(row: dict[str, Any]) -> str:
    if "loss_lab" in row:  # a classifier (the SSL GAN's discriminator, a run's teacher)
        names = (
            ("loss_lab", "labeled loss"),
            ("loss_unl", "unlabeled loss"),
            ("loss_g", "G"),
            ("train_acc", "acc on its training batch"),
        )
        return "  ".join(f"{label} {float(row[k]):.3f}" for k, label in names if k in row)
    if "loss_d" in row:  # a GAN
        return (
            f"{row.get('img_per_s', 0):,.0f} img/s  D {row.get('loss_d', 0):.3f}  G {row.get('loss_g', 0):.3f}"
            f"  D(x) {row.get('d_real', 0):.2f}  D(G(z)) {row.get('d_fake', 0):.2f}"
        )
    # anything else (predict: images/s): each number it has, and nothing it has not
    return "  ".join(f"{float(v):,.0f} img/s" if k == "img_per_s" else f"{k} {float(v):.3g}" for k, v in row.items())


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class _PlainBar:
    """Progress for a log file: one plain line every ``every`` seconds (and at the end) with the
    step, the share done, img/s and losses of the last logged window, and the time left."""

    def __init__(
        self,
        reporter: Reporter,
        total: int,
        completed: int,
        every: float,
        left: SecondsLeft | None = None,
        closing: bool = True,
    ) -> None:
        self.reporter, self.total, self.every, self.left, self.closing = reporter, total, every, left, closing
        self.start, self.t0 = completed, time.monotonic()
        self.t_last, self.row = self.t0, None

    def update(self, step: int, row: dict[str, Any] | None) -> None:
        self.row = row or self.row
        now = time.monotonic()
        if step >= self.total and not self.closing:  # the job's own last line says it is done
            return
        if now - self.t_last < self.every and step < self.total:
            return
        self.t_last = now
        rate = (step - self.start) / max(now - self.t0, 1e-9)
        seconds = self.left(step) if self.left is not None else ((self.total - step) / rate if rate > 0 else None)
        left = "done" if step >= self.total else (f"{duration(seconds)} left" if seconds is not None else "timing")
        stats = f"  {_stats(self.row)}" if self.row else ""
        self.reporter.message(f"step {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%){stats}  {left}")


class _Console(Console):
    """A rich console that goes quiet when its reader goes away (rich's default exits the process)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True


class Reporter:
    """Where the trainer's progress and messages go.

    Args:
        quiet: Print nothing.
        console: A rich console (default: standard error). The progress bar is shown only when
            it is a terminal.
        plain_every: Otherwise (a log file, a pipe), seconds between plain progress lines
            (default: ``$GAN_AUGMENT_PROGRESS_EVERY`` or 60).
    """

    def __init__(self, quiet: bool = False, console: Console | None = None, plain_every: float | None = None) -> None:
        self.quiet = quiet
        self.console = console or _Console(stderr=True)
        self.plain_every = (
            float(os.environ.get("GAN_AUGMENT_PROGRESS_EVERY", 60)) if plain_every is None else plain_every
        )

    def message(self, text: str) -> None:
        """Print one line unless quiet. When the output is gone (a closed pipe: ``fit ... | head``,
        a closed terminal), the reporter goes quiet and the work goes on."""
        if self.quiet:
            return
        try:
            self.console.print(printable(text, newlines=True), markup=False, highlight=False, soft_wrap=True)
        except (OSError, ValueError):  # EPIPE, EBADF, or "I/O operation on closed file"
            self.quiet = True

    @contextlib.contextmanager
    def progress(
        self, total: int, completed: int = 0, left: SecondsLeft | None = None, closing: bool = True
    ) -> Iterator[_Bar | _PlainBar]:
        """A progress bar over ``total`` steps on a terminal, plain lines elsewhere, nothing when quiet.
        ``left``: the job's own time-left estimate (a step → seconds), for jobs whose steps do not all cost
        the same (the default is the mean rate so far). ``closing=False``: no plain line at the end (a
        job whose own last line says it is done)."""
        if self.quiet:
            yield _Bar(None, None)
            return
        if not self.console.is_terminal:
            yield _PlainBar(self, total, completed, self.plain_every, left, closing)
            return
        remaining = TextColumn("{task.fields[left]}") if left is not None else TimeRemainingColumn()
        columns = (
            TextColumn("[bold]step"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("{task.fields[stats]}"),
            remaining,
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task("train", total=total, completed=completed, stats="", left="timing…")
            yield _Bar(progress, task, left)
