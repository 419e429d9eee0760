"""The typer application, its error handling and the option choices (generated from the configurations)."""

from __future__ import annotations

import enum
import functools
from typing import Any, Callable, TypeVar

import typer

from ..config import COMPILE_MODES, LOSSES, MODES, SWITCHES, UPSAMPLES
from ..errors import GanAugmentError

app = typer.Typer(
    name="gan-augment",
    help="Train DCGANs on labeled (and unlabeled) image folders and put them to work for a classifier.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def _choices(name: str, values: tuple[str, ...]) -> type[enum.Enum]:
    """A ``str`` enum of ``values`` for typer (the one list of choices lives in the configuration)."""
    return enum.Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


ModeChoice: Any = _choices("ModeChoice", MODES)
LossChoice: Any = _choices("LossChoice", LOSSES)
UpsampleChoice: Any = _choices("UpsampleChoice", UPSAMPLES)
CompileChoice: Any = _choices("CompileChoice", COMPILE_MODES)
SwitchChoice: Any = _choices("SwitchChoice", SWITCHES)


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


def out_console_line(text: str) -> None:
    """One line of the command's result on standard output."""
    typer.echo(text)
