"""Progress output: a rich progress bar on a terminal, plain messages otherwise, nothing when quiet."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class _Bar:
    def __init__(self, progress: Progress | None, task: Any) -> None:
        self._progress = progress
        self._task = task

    def update(self, step: int, row: dict[str, Any] | None) -> None:
        if self._progress is None:
            return
        fields = {}
        if row is not None:
            fields["stats"] = (
                f"{row.get('img_per_s', 0):,.0f} img/s  D {row.get('loss_d', 0):.3f}  G {row.get('loss_g', 0):.3f}"
                f"  D(x) {row.get('d_real', 0):.2f}  D(G(z)) {row.get('d_fake', 0):.2f}"
            )
        self._progress.update(self._task, completed=step, **fields)


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
    """

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or _Console(stderr=True)

    def message(self, text: str) -> None:
        """Print one line unless quiet. When the output is gone (a closed pipe: ``fit ... | head``,
        a closed terminal), the reporter goes quiet and the work goes on."""
        if self.quiet:
            return
        try:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        except (OSError, ValueError):  # EPIPE, EBADF, or "I/O operation on closed file"
            self.quiet = True

    @contextlib.contextmanager
    def progress(self, total: int, completed: int = 0) -> Iterator[_Bar]:
        """A progress bar over ``total`` steps (a no-op when quiet or not on a terminal)."""
        if self.quiet or not self.console.is_terminal:
            yield _Bar(None, None)
            return
        columns = (
            TextColumn("[bold]step"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task("train", total=total, completed=completed, stats="")
            yield _Bar(progress, task)
