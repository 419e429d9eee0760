"""Every seed the package derives from a user's seed, in one place: each purpose gets its own stream, so
changing how one is drawn never moves another. The values are those the measured runs used."""

from __future__ import annotations

# BatchNorm recalibration of the EMA generator (at each save, and of the pre-trained shared model): its noise.
BATCHNORM_RECALIBRATION = 7919
# A bank's per-class sampling streams: class c draws with seed + BANK_CLASS_STRIDE * (c + 1).
BANK_CLASS_STRIDE = 7919
# GANAugmentedDataset's teacher-labelling rounds: round r draws with seed + DATASET_ROUND_STRIDE * r.
DATASET_ROUND_STRIDE = 104_729
# The evaluation's generator-quality samples (CAS, diversity): seed + QUALITY_SAMPLES.
QUALITY_SAMPLES = 10_000
