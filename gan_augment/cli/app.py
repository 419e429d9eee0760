"""The typer application, its error handling and the option choices (generated from the configurations)."""

from __future__ import annotations

import enum
import functools
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer

from ..config import COMPILE_MODES, LOSSES, MODES, SWITCHES, UPSAMPLES
from ..errors import GanAugmentError
from ..progress import printable
from ..version import __version__

app = typer.Typer(
    name="gan-augment",
    help="Train DCGANs on labeled (and unlabeled) image folders and put them to work for a classifier.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gan-augment {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Train DCGANs on labeled (and unlabeled) image folders and put them to work for a classifier."""


def choices(name: str, values: tuple[str, ...]) -> type[enum.Enum]:
    """A ``str`` enum of ``values`` for typer (the one list of choices lives in the configuration)."""
    return enum.Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


ModeChoice: Any = choices("ModeChoice", MODES)
LossChoice: Any = choices("LossChoice", LOSSES)
UpsampleChoice: Any = choices("UpsampleChoice", UPSAMPLES)
CompileChoice: Any = choices("CompileChoice", COMPILE_MODES)
SwitchChoice: Any = choices("SwitchChoice", SWITCHES)


# Arguments and options several commands share.
LabeledArg = Annotated[Path, typer.Argument(help="Folder with one sub-folder of images per class.")]
UnlabeledArg = Annotated[
    Optional[Path], typer.Argument(help="Optional folder of unlabeled images (searched recursively).")
]
ImageSizeOpt = Annotated[int, typer.Option(min=8, max=1024, help="Side of the images (16, 28, 32, 64, 128, ...).")]
DataImageSizeOpt = Annotated[
    Optional[int],
    typer.Option(
        min=8,
        max=1024,
        help="Side of the images (16, 28, 32, 64, 128, ...). \\[default: the labeled images' own side when they "
        "are all squares of 16 to 32 px, else 32]",
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Random seed.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or messages.")]
TensorBoardOpt = Annotated[
    bool,
    typer.Option(
        "--tensorboard",
        help="Also write TensorBoard logs under OUT/tensorboard (pip install 'gan-augment[tensorboard]').",
    ),
]


def expected_errors(fn: F) -> F:
    """Print expected errors as one line and exit 2; Ctrl-C exits 130 without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        warnings.showwarning = _warning_line
        try:
            return fn(*args, **kwargs)
        except GanAugmentError as exc:  # the package's own: bad input, said in one line
            err_line(f"Error: {exc}")
            raise typer.Exit(2) from None
        except BrokenPipeError:  # the reader of our output went away (`| head -1`): click exits quietly
            raise
        except OSError as exc:  # a full disk or an unwritable folder; atomic writes left the old files intact
            where = f" {str(exc.filename)!r}" if exc.filename else ""
            err_line(
                f"Error: cannot write or read{where}: {exc.strerror or exc}; check free disk space and "
                "permissions (files already written are intact)"
            )
            raise typer.Exit(2) from None
        except KeyboardInterrupt as exc:  # SIGINT → 130, SIGTERM → 143 (a checkpoint was written)
            raise typer.Exit(128 + int(getattr(exc, "signum", 2))) from None
        except CLI_EXITS:
            raise  # the command line's own ways out (typer.Exit, a bad option): not ours to report
        except Exception as exc:  # anything else is a bug: a short traceback, and say so
            report_bug(exc)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


# The command line's exceptions for leaving a command (typer's; click's in older typer versions), passed
# through as they are: ``typer.Exit``, ``typer.Abort`` and click's ``ClickException`` (a bad option).
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
CLI_EXITS: tuple[type[BaseException], ...] = (typer.Exit, typer.Abort, _CLICK_EXCEPTION)
BUG_FRAMES = 6  # the innermost frames of an unexpected exception's traceback: where it happened


def report_bug(exc: BaseException) -> None:
    """An unexpected exception on standard error: its innermost frames, and that it is a bug to report."""
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-BUG_FRAMES)
    for line in "".join(lines).rstrip().splitlines():
        err_line(line)
    err_line(
        f"This is a bug in gan-augment {__version__}, not a problem with your input: please report it with the "
        "command line and the lines above"
    )


def _warning_line(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """The package's warnings on the command line: one line each, without Python's source excerpt."""
    err_line(f"Warning: {message}")


def out_console_line(text: str) -> None:
    """One line of the command's result on standard output."""
    typer.echo(printable(text, newlines=True))  # names and paths are data: no raw control characters


def err_line(text: str) -> None:
    """One line on standard error; nothing if it is closed or its reader went away (a message must
    never turn a finished job into a failed one)."""
    try:
        typer.echo(printable(text, newlines=True), err=True)
    except (OSError, ValueError):
        pass
