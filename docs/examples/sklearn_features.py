"""A linear classifier on discriminator features (the DCGAN paper's recipe), scored by cross-validation.

Usage: python sklearn_features.py UNCONDITIONAL_RUN_DIR LABELED_DIR
(train the run with `gan-augment fit LABELED UNLABELED --mode unconditional`)
"""

import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torchvision.datasets import ImageFolder

from gan_augment import DiscriminatorFeatures

run_dir, labeled_dir = sys.argv[1], sys.argv[2]
ds = ImageFolder(labeled_dir)
images = [img for img, _ in ds]  # PIL images; arrays (N, H, W, C) and tensors work too
labels = np.array(ds.targets)

pipe = make_pipeline(DiscriminatorFeatures(run_dir), StandardScaler(), LogisticRegression(max_iter=2000))
folds = min(5, np.bincount(labels).min())
scores = cross_val_score(pipe, images, labels, cv=folds)
print(f"{folds}-fold accuracy: {scores.mean():.3f} ± {scores.std():.3f}")
