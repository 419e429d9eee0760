"""Several processes, one run: ``torchrun --nproc-per-node N -m gan_augment.cli fit ...``.

Per-class training shards the class models across ranks (each rank trains its contiguous share
of classes as one grouped computation; the models are independent, so nothing is exchanged until a
checkpoint gathers them). Pre-training, conditional and unconditional training are data-parallel:
every rank holds the same model, draws its own batches, and gradients are averaged across ranks
(one all-reduce per backward pass, the scheme StyleGAN2-ADA uses instead of wrapping G and D in
DistributedDataParallel, whose hooks fit the alternating D/G updates of a GAN badly). BatchNorm
statistics stay per rank; checkpoints take rank 0's. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: ``rank`` of ``world`` processes (``world`` 1: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this context started the process group and must destroy it

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self, *, clean: bool = True) -> None:
        """End this process's part in the job: wait for the others (``clean``) and destroy the group.

        A process that exits with a live gloo group can abort in the interpreter's teardown
        ("terminate called without an active exception"); destroying it first avoids that. After
        an error no barrier is attempted (the other ranks may be gone).
        """
        if not (self.owns_group and dist.is_initialized()):
            return
        try:
            if clean:
                dist.barrier()
        finally:
            dist.destroy_process_group()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank (just ``[obj]`` when not distributed)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def average_gradients(self, module: nn.Module) -> None:
        """Average the gradients of ``module``'s parameters across ranks (one flat all-reduce)."""
        if not self.enabled:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def from_environment(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the job that ``torchrun`` describes in the environment (if any); pick this rank's GPU.

    Uses NCCL on CUDA and gloo on the CPU. Without ``WORLD_SIZE`` > 1 returns a single-process
    context and ``device`` unchanged. A group started here is the caller's to end with
    :meth:`DistContext.close`; one that already existed is left alone.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, world, local, owns), device


def shard(n: int, rank: int, world: int) -> list[int]:
    """Rank ``rank``'s contiguous share of ``range(n)``; shares differ in size by at most one."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return list(range(start, start + base + (rank < extra)))
