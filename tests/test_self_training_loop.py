"""The self-trained colour teacher steps through the one training loop (issue 33): a diverging phase is rolled back
with a lower learning rate and CUDA running out of memory retries at half the batch, as the GANs and the
semi-supervised teacher do. Before, a NaN loss trained on to a NaN teacher and running out of memory was a traceback."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gan_augment.errors import GanAugmentError
from gan_augment.progress import Reporter
from gan_augment.train import self_training
from gan_augment.train.self_training import SelfTrainingConfig, StudentJob, train_self_training

CONFIG = SelfTrainingConfig(width=4, labels_steps=25, round_steps=(15,), shares=(0.5,), batch_size=8)


def _train(monkeypatch: pytest.MonkeyPatch, fault: Any) -> tuple[list[str], list[int], Any]:
    """Train a tiny self-trained teacher with ``fault(job)`` run before every step; the messages, each
    step's batch, and the two networks."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 3, 16, 16), dtype=torch.uint8, generator=g)
    pool = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8, generator=g)
    messages: list[str] = []
    reporter = Reporter(quiet=True)
    reporter.message = messages.append  # type: ignore[method-assign]
    original, batches = StudentJob.train_step, []

    def step(job: StudentJob) -> dict[str, torch.Tensor]:
        fault(job)
        stats = original(job)
        batches.append(job.s.batch)
        if getattr(job, "spoil", False):
            job.loss, job.spoil = float("nan"), False
        return stats

    monkeypatch.setattr(self_training.StudentJob, "train_step", step)
    nets = train_self_training(images, torch.arange(12) % 3, pool, CONFIG, torch.device("cpu"), reporter)
    return messages, batches, nets


def test_a_diverging_phase_goes_back_to_its_last_finite_state_with_half_the_learning_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: set[int] = set()

    def nan_once_at_23(job: StudentJob) -> None:
        if job.s.steps == 25 and job.step == 22 and 23 not in seen:
            seen.add(23)
            job.spoil = True  # type: ignore[attr-defined]

    messages, _, (first, last) = _train(monkeypatch, nan_once_at_23)
    assert messages[0] == (
        "the self-trained teacher diverged at step 23 of a phase (loss not finite): rolled back to step 20, "
        "learning rate halved to 5.00e-02 [1/3]"
    )
    assert all(torch.isfinite(p).all() for net in (first, last) for p in net.parameters())

    def nan_always(job: StudentJob) -> None:
        job.spoil = job.step >= 12  # type: ignore[attr-defined]

    with pytest.raises(GanAugmentError, match=r"diverged at step 13 .* after 3 roll-backs"):
        _train(monkeypatch, nan_always)


def test_out_of_memory_retries_the_phase_at_half_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    def once_at_full_batch(job: StudentJob) -> None:
        if job.step == 14 and job.s.batch == 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    messages, batches, _ = _train(monkeypatch, once_at_full_batch)
    assert messages[0] == (
        "out of GPU memory in the self-trained teacher: back to step 10 of its phase, retrying at batch 4 [1/3]"
    )
    assert batches[:14] == [8] * 14 and batches[14:18] == [4] * 4  # steps 11-14 again at batch 4

    def always(job: StudentJob) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(GanAugmentError, match=r"out of GPU memory in the self-trained teacher \(batch 2\)"):
        _train(monkeypatch, always)
