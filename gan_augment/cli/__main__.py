"""``python -m gan_augment.cli`` (as ``torchrun ... -m gan_augment.cli fit`` runs it)."""

from . import main

main()
