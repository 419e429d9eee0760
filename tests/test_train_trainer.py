"""The batched per-class engine computes what separate per-class models would."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import tiny_config, write_folder

from gan_augment.data import load_image_data
from gan_augment.io import load_checkpoint
from gan_augment.models import Discriminator, Generator
from gan_augment.progress import Reporter
from gan_augment.train import Checkpointer, Trainer, TrainState, loop
from gan_augment.train import trainer as step_module
from gan_augment.train.losses import d_loss, g_loss, gradient_penalty


@pytest.mark.parametrize("loss", ["bce", "hinge", "wgan-gp"])
def test_trainer_step_equals_separate_models(loss: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One grouped D + G step: the same losses and gradients as K separate DCGANs given the same inputs."""
    folder = write_folder(tmp_path / "lab", ["a", "b", "c"], [5, 6, 7])
    data = load_image_data(folder, None, image_size=16)
    cfg = tiny_config(mode="per-class", steps=1, pretrain_steps=0, diffaugment="off", loss=loss, batch_size=4)
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, d_dropout=0.0))
    trainer = Trainer(cfg, data, torch.device("cpu"), Reporter(quiet=True))
    pair = trainer.pair
    assert pair.groups == 3
    before = pair.states()
    # Record the grouped step's inputs: real batches, noise, and (WGAN-GP) the interpolation weights.
    reals: list[torch.Tensor] = []
    zs: list[torch.Tensor] = []
    draw = trainer.batches.real_per_class
    monkeypatch.setattr(trainer.batches, "real_per_class", lambda n: reals.append(draw(n)) or reals[-1])
    pair.g.register_forward_pre_hook(lambda m, args: zs.append(args[0].clone()))
    alphas: list[torch.Tensor] = []  # the gradient penalty's interpolation weights, as the step drew them
    weights = step_module.penalty_weights
    monkeypatch.setattr(step_module, "penalty_weights", lambda *a, **kw: alphas.append(weights(*a, **kw)) or alphas[-1])
    stats = trainer.train_step()
    grouped = pair.states()
    real, z_d, z_g = reals[0], zs[0], zs[1]

    d_losses, g_losses = [], []
    for i, state in enumerate(before):
        g, d = Generator(pair.g.config), Discriminator(pair.d.config)
        g.load_state_dict(state["g"])
        d.load_state_dict(state["d"])
        with torch.no_grad():
            fake = g(z_d[:, i])
        ld = d_loss(loss, d(real[:, i]), d(fake))
        if loss == "wgan-gp":
            a = alphas[0].view(-1, 3)[:, i].view(-1, 1, 1, 1)  # the grouped step's per-image weights
            ld = ld + cfg.gp_weight * gradient_penalty(d, real[:, i], fake, alpha=a)
        d.zero_grad()
        ld.backward()
        d_grads = [p.grad.clone() for p in d.parameters()]
        # G's step is taken against the updated D: use the grouped run's, so that Adam's first
        # step (about ±lr whatever the gradient's size) cannot amplify float noise into the check.
        d.load_state_dict(grouped[i]["d"])
        d.requires_grad_(False)
        lg = g_loss(loss, d(g(z_g[:, i])))
        lg.backward()
        g_grads = [p.grad.clone() for p in g.parameters()]
        d_losses.append(ld.item())
        g_losses.append(lg.item())
        for module, grads in ((pair.d, d_grads), (pair.g, g_grads)):
            packed = [p.grad.view(3, *q.shape)[i] for p, q in zip(module.parameters(), grads)]
            assert len(packed) == len(grads)
            for mine, theirs in zip(packed, grads):
                torch.testing.assert_close(mine, theirs, rtol=1e-3, atol=1e-5)  # float summation order differs
    assert stats["loss_d"].item() == pytest.approx(sum(d_losses) / 3, rel=1e-4, abs=1e-6)
    assert stats["loss_g"].item() == pytest.approx(sum(g_losses) / 3, rel=1e-4, abs=1e-6)
    copy.deepcopy(grouped)  # plain, picklable states


def test_resume_restores_the_spent_rollback_and_memory_budgets(tmp_path: Path) -> None:
    """A resumed run keeps the roll-backs and out-of-memory retries it has used (it saved them, and got a
    fresh budget back before)."""
    folder = write_folder(tmp_path / "lab", ["a", "b"], [4, 4])
    data = load_image_data(folder, None, image_size=16)
    cfg = tiny_config(steps=2, pretrain_steps=0)
    first = Trainer(cfg, data, torch.device("cpu"), Reporter(quiet=True))
    loop.train(first, Checkpointer.for_run(first, tmp_path / "run"))
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["train_state"]["rollbacks"] == 0 and ckpt["train_state"]["oom_retries"] == 0
    ckpt["train_state"].update(rollbacks=2, oom_retries=1)
    again = Trainer(cfg.replace(steps=3), data, torch.device("cpu"), Reporter(quiet=True))
    Checkpointer.for_run(again, tmp_path / "run").restore(again, ckpt)
    assert (again.state.rollbacks, again.state.oom_retries) == (2, 1)


def test_restore_brings_back_every_field_of_the_training_state(tmp_path: Path) -> None:
    """Each field of TrainState, set to a value a fresh trainer does not have, comes back from the
    checkpoint file: a field added to TrainState but not to the checkpoint fails here."""
    folder = write_folder(tmp_path / "lab", ["a", "b"], [4, 4])
    data = load_image_data(folder, None, image_size=16)
    cfg = tiny_config(mode="per-class", steps=1, pretrain_steps=1)
    first = Trainer(cfg, data, torch.device("cpu"), Reporter(quiet=True))
    saver = Checkpointer.for_run(first, tmp_path / "run")
    loop.train(first, saver)  # two steps: through pre-training into the per-class phase
    first.state = dataclasses.replace(
        first.state, lr_g=1.25e-4, lr_d=3.5e-5, batch_size=3, rollbacks=2, oom_retries=1, elapsed_s=12.5
    )
    saver.save(first)
    again = Trainer(cfg, data, torch.device("cpu"), Reporter(quiet=True))
    fresh = dataclasses.asdict(again.state)
    Checkpointer.for_run(again, tmp_path / "run").restore(again)
    saved = dataclasses.asdict(first.state)
    for name in (f.name for f in dataclasses.fields(TrainState)):
        assert fresh[name] != saved[name], f"{name}: the test must set a value a fresh trainer lacks"
        assert getattr(again.state, name) == saved[name], name
    assert again.adam.lr_g == 1.25e-4 and again.pair.opt_d.param_groups[0]["lr"] == pytest.approx(3.5e-5)


def test_checkpoints_follow_the_clock_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --checkpoint-every longer than the run, a checkpoint is still written once ``checkpoint_minutes``
    have passed (the clock is faked: one minute per step), by the GAN's loop and by the teacher's."""
    import gan_augment.train.checkpointer as checkpointer_module
    import gan_augment.train.ssl as ssl_module
    import gan_augment.train.ssl_steps as ssl_steps

    clock = {"now": 0.0}

    class FakeTime:
        @staticmethod
        def monotonic() -> float:
            return clock["now"]

    folder = write_folder(tmp_path / "lab", ["a", "b"], [4, 4])
    data = load_image_data(folder, None, image_size=16)
    cfg = tiny_config(steps=7, pretrain_steps=0, checkpoint_every=1000, checkpoint_minutes=2.5)
    trainer = Trainer(cfg, data, torch.device("cpu"), Reporter(quiet=True))
    monkeypatch.setattr(checkpointer_module, "time", FakeTime)
    saver = Checkpointer.for_run(trainer, tmp_path / "run")
    saved: list[int] = []
    real_save = Checkpointer.save
    monkeypatch.setattr(Checkpointer, "save", lambda self, t: saved.append(t.state.step) or real_save(self, t))
    real_step = Trainer.train_step

    def step_a_minute(self: Trainer) -> dict[str, torch.Tensor]:
        clock["now"] += 60.0
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", step_a_minute)
    loop.train(trainer, saver)
    assert saved == [0, 3, 6, 7]  # the start, 3 minutes after it, 3 after that, the end

    run = ssl_module.SSLRun.__new__(ssl_module.SSLRun)  # the teacher's loop, on a stand-in run
    run.config, run.step = type("C", (), {"steps": 5})(), 0

    def ssl_step() -> dict[str, torch.Tensor]:
        clock["now"] += 60.0
        run.step += 1
        return {"loss_lab": torch.tensor(0.0)}

    run.train_step = ssl_step  # type: ignore[method-assign]
    run.state_dict = lambda: {"step": run.step}  # type: ignore[method-assign]  # what a roll-back would return to
    monkeypatch.setattr(
        ssl_steps, "time", type("T", (), {"monotonic": FakeTime.monotonic, "perf_counter": FakeTime.monotonic})
    )
    teacher_saves: list[int] = []
    ssl_steps.run_steps(run, Reporter(quiet=True), save=lambda: teacher_saves.append(run.step), save_seconds=150.0)
    assert teacher_saves == [3]  # after 3 minutes; the end is saved by the caller as teacher.pt
