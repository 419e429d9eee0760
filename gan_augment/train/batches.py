"""Batches drawn on the training device: the images stay there, indices are drawn with the run's generator."""

from __future__ import annotations

import torch

from ..data import ImageData
from ..io.images import to_unit
from .distributed import DistContext


class DeviceBatches:
    """The run's images resident on ``device``, with the index pools every phase draws from.

    In a data-parallel job every rank draws the whole job's batch and keeps its slice; per-class
    draws are made for every class and each rank keeps its own classes', so a sharded run draws
    exactly what a single process draws.

    Args:
        data: The decoded images.
        device: The training device.
        gen: The run's random stream (on ``device``).
        dist: This process's place in the job.
        my_classes: The classes whose models this rank trains.
    """

    def __init__(
        self, data: ImageData, device: torch.device, gen: torch.Generator, dist: DistContext, my_classes: list[int]
    ) -> None:
        self.device, self.gen, self.dist = device, gen, dist
        self.num_classes = len(data.class_names)
        self.images = data.images.to(device)  # (N, C, H, W) uint8
        self.labels = data.labels.to(device)  # (N,) int64, -1 = unlabeled
        self.labeled_idx = (self.labels >= 0).nonzero(as_tuple=True)[0]
        self.unlabeled_idx = (self.labels < 0).nonzero(as_tuple=True)[0]
        self.all_idx = torch.arange(len(self.labels), device=device)
        class_idx = [(self.labels == c).nonzero(as_tuple=True)[0] for c in range(self.num_classes)]
        self.min_class_size = min(len(i) for i in class_idx)
        # Per-class batches for all class models at once: indices sorted by class, offsets, counts.
        self.class_sorted = torch.cat(class_idx)
        self.class_counts = torch.tensor([len(i) for i in class_idx], device=device)
        self.class_offsets = torch.cumsum(self.class_counts, 0) - self.class_counts
        self.my_class_idx = torch.tensor(my_classes, device=device)

    def _slice(self, x: torch.Tensor, n: int) -> torch.Tensor:
        r = self.dist.rank
        return x[r * n : (r + 1) * n]

    def real(self, pool: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch drawn with replacement from ``pool``: images (n, C, H, W) in [-1, 1], labels (n,)."""
        pick = torch.randint(0, len(pool), (n * self.dist.world,), device=self.device, generator=self.gen)
        idx = pool[self._slice(pick, n)]
        return to_unit(self.images[idx]), self.labels[idx]

    def real_per_class(self, n: int) -> torch.Tensor:
        """n images of each of this rank's classes, drawn with replacement: (n, K, C, H, W) in [-1, 1]."""
        u = torch.rand(n, self.num_classes, device=self.device, generator=self.gen)  # drawn for all classes
        pick = (u * self.class_counts).long().clamp_(max=self.class_counts - 1)  # (n, K_all)
        idx = (self.class_sorted[self.class_offsets + pick])[:, self.my_class_idx]  # (n, K)
        return to_unit(self.images[idx])

    def noise(self, n: int, z_shape: tuple[int, ...]) -> torch.Tensor:
        """Noise (n, *z_shape) for a data-parallel generator (this rank's slice of the job's draw)."""
        return self._slice(torch.randn(n * self.dist.world, *z_shape, device=self.device, generator=self.gen), n)

    def noise_per_class(self, n: int, z_dim: int) -> torch.Tensor:
        """Noise (n, K, z_dim) for this rank's grouped class models (drawn for all classes)."""
        z = torch.randn(n, self.num_classes, z_dim, device=self.device, generator=self.gen)
        return z[:, self.my_class_idx] if self.dist.enabled else z

    def labels_like_data(self, n: int) -> torch.Tensor:
        """n labels drawn as often as they occur in the labeled data (a conditional generator's batch)."""
        pick = torch.randint(0, len(self.labeled_idx), (n * self.dist.world,), device=self.device, generator=self.gen)
        return self.labels[self.labeled_idx[self._slice(pick, n)]]

    def cycle_labels(self, n: int) -> torch.Tensor:
        """0, 1, ..., K-1, 0, ... (n labels; for BatchNorm recalibration of a conditional generator)."""
        return torch.arange(n, device=self.device) % self.num_classes
