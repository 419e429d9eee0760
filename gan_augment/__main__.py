"""``python -m gan_augment``: the command line."""

from .cli import main

main()
