"""The ``gan-augment`` command line: fit, sample, info, demo, classify, predict, features, evaluate.

Expected errors print one line and exit with code 2 (see :func:`~gan_augment.cli.app.expected_errors`).
"""

from __future__ import annotations

from . import classify, runs, train  # noqa: F401  (registers the commands)
from .app import app


def main() -> None:
    """Entry point of the ``gan-augment`` console script."""
    app()


__all__ = ["app", "main"]
