"""The same loop with an albumentations pipeline (synthetic images arrive as numpy arrays, like real ones).

Usage: python albumentations_loop.py RUN_DIR LABELED_DIR [EPOCHS]
"""

import sys

import albumentations as A
import torch
from albumentations.pytorch import ToTensorV2
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from gan_augment import GANAugmentedDataset

run_dir, labeled_dir = sys.argv[1], sys.argv[2]
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 10

train_tf = A.Compose(
    [
        A.Resize(32, 32),
        A.PadIfNeeded(40, 40),
        A.RandomCrop(32, 32),
        A.HorizontalFlip(p=0.5),
        A.Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        ToTensorV2(),
    ]
)
base = ImageFolder(labeled_dir)
# balance=True: every class is brought up to the largest class's count with synthetic images
train_ds = GANAugmentedDataset(base, run_dir, balance=True, transform=train_tf)
print(train_ds)

model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, len(base.classes)))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loader = DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=2)
for epoch in range(epochs):
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"epoch {epoch}: loss {loss.item():.3f}")
