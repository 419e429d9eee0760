"""Train a small classifier on an ImageFolder with a run's knowledge mixed in (torchvision v2 transforms).

``GANAugmentedDataset(base, run)`` adds synthetic images labelled by the run's teacher (its
probabilities, a float vector per item; real items get one-hot vectors), drawn anew on every pass.
The loop stays plain.

Usage: python torchvision_loop.py RUN_DIR LABELED_DIR [EPOCHS]
"""

import sys

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from gan_augment import GANAugmentedDataset

run_dir, labeled_dir = sys.argv[1], sys.argv[2]
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 10

train_tf = v2.Compose(
    [
        v2.ToImage(),
        v2.RandomResizedCrop(32, scale=(0.8, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([0.5] * 3, [0.5] * 3),
    ]
)
base = ImageFolder(labeled_dir)  # no transform here: the wrapper applies it to real and synthetic alike
train_ds = GANAugmentedDataset(base, run_dir, transform=train_tf)  # the run's defaults: its teacher's labels
print(train_ds)
loader = DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=2)

model = nn.Sequential(
    nn.Conv2d(3, 32, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1),
    nn.ReLU(),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.Linear(64, len(base.classes)),
)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
for epoch in range(epochs):  # each pass draws other synthetic images: no call needed
    correct = seen = 0
    for x, y in loader:
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)  # y: class indices, or (B, K) probabilities
        opt.zero_grad()
        loss.backward()
        opt.step()
        hard = y.argmax(1) if y.ndim == 2 else y  # training accuracy against the most probable class
        correct += int((logits.argmax(1) == hard).sum())
        seen += len(y)
    print(f"epoch {epoch}: loss {loss.item():.3f}, training accuracy {correct / seen:.3f}")
