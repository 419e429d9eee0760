"""The run's teacher: trained by ``fit``, saved and resumed with the run, and used by
``GANAugmentedDataset(base_ds, run)`` for its labels, with fresh images on every pass."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_CLI, gray_runs, tiny_config
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2
from typer.testing import CliRunner

from gan_augment import GANAugmentedDataset, fit
from gan_augment.cli import app
from gan_augment.config import CPU_SIZES, TrainConfig, for_device
from gan_augment.errors import GanAugmentError
from gan_augment.io import load_checkpoint
from gan_augment.io.checkpoint import TEACHER_NAME, TEACHER_TRAINING_NAME, save_checkpoint
from gan_augment.plugins.teacher import load_run_teacher
from gan_augment.progress import Reporter
from gan_augment.train import ssl as ssl_module
from gan_augment.train.fit import default_config

runner = CliRunner()
TEACHER_STEPS = 12


def teacher_config(**changes: Any) -> TrainConfig:
    """A tiny run with a tiny teacher (grayscale: the fast MLP discriminator)."""
    base: dict[str, Any] = {"steps": 2, "channels": 1, "teacher": "auto", "teacher_steps": TEACHER_STEPS}
    return tiny_config(**{**base, **changes})


@pytest.fixture(scope="module")
def gray(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Grayscale folders (dark, light; 6 labeled each, 8 unlabeled) and a run with its ssl teacher."""
    return gray_runs(tmp_path_factory.mktemp("teacher"), {"run": teacher_config()})


def always_light(run: Path, out: Path) -> Path:
    """A copy of ``run`` whose teacher says "light" (class 1) with probability ≈ 1 on every image."""
    shutil.copytree(run, out)
    state = load_checkpoint(out / TEACHER_NAME)
    state["d"]["head.scale"].zero_()  # weight = scale · v / ‖v‖ = 0: the logits are the bias
    state["d"]["head.bias"].copy_(torch.tensor([-10.0, 10.0]))
    save_checkpoint(
        {k: v for k, v in state.items() if k not in ("format_version", "package_version")}, out / TEACHER_NAME
    )
    return out


@contextlib.contextmanager
def teacher_interrupted_at(step: int) -> Iterator[None]:
    """Ctrl-C in the semi-supervised teacher's iteration ``step`` (its labels-only rival trains on) while the
    block runs, which must raise it."""
    original, mp = ssl_module.SSLRun.train_step, pytest.MonkeyPatch()

    def stop(self: ssl_module.SSLRun) -> dict[str, torch.Tensor]:
        if not self.supervised and self.step == step:
            raise KeyboardInterrupt
        return original(self)

    mp.setattr(ssl_module.SSLRun, "train_step", stop)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        mp.undo()


class TestTheRunKeepsATeacher:
    def test_ssl_with_an_unlabeled_folder(self, gray: dict[str, Path]) -> None:
        state = load_checkpoint(gray["run"] / TEACHER_NAME)
        assert state["kind"] == "ssl" and state["architecture"] == "mlp"
        assert state["metrics"]["steps"] == TEACHER_STEPS and state["metrics"]["num_unlabeled"] == 8
        assert state["class_names"] == ["dark", "light"]
        assert not (gray["run"] / TEACHER_TRAINING_NAME).exists()  # removed once the teacher is written
        assert json.loads((gray["run"] / "config.json").read_text())["teacher"] == "ssl"
        teacher = load_run_teacher(gray["run"])
        assert teacher is not None and teacher(torch.rand(3, 1, 16, 16)).shape == (3, 2)
        assert teacher(torch.rand(3, 3, 40, 40)).shape == (3, 2)  # any size, RGB turned gray

    def test_supervised_without_one_and_none_when_asked(self, gray: dict[str, Path], tmp_path: Path) -> None:
        fit(gray["labeled"], None, tmp_path / "sup", teacher_config(), device="cpu", quiet=True)
        assert load_checkpoint(tmp_path / "sup" / TEACHER_NAME)["kind"] == "supervised"
        fit(gray["labeled"], None, tmp_path / "none", teacher_config(teacher="none"), device="cpu", quiet=True)
        assert not (tmp_path / "none" / TEACHER_NAME).exists()
        assert load_run_teacher(tmp_path / "none") is None

    def test_info_and_report_show_it(self, gray: dict[str, Path], tmp_path: Path) -> None:
        result = runner.invoke(app, ["info", str(gray["run"]), "--json"])
        assert result.exit_code == 0, result.output
        teacher = json.loads(result.stdout)["teacher"]
        assert teacher["state"] == "trained" and teacher["kind"] == "ssl" and teacher["steps"] == TEACHER_STEPS
        assert 0.0 <= teacher["labeled_accuracy"] <= 1.0
        text = runner.invoke(app, ["info", str(gray["run"])]).stdout
        assert "teacher: ssl (mlp network)" in text and "held-out labeled images" in text
        result = runner.invoke(app, ["report", str(gray["run"]), "--out", str(tmp_path / "r.html")])
        assert result.exit_code == 0 and "ssl (mlp network)" in (tmp_path / "r.html").read_text()


class TestResume:
    def test_an_interrupted_teacher_resumes_to_the_same_weights(self, gray: dict[str, Path], tmp_path: Path) -> None:
        run = tmp_path / "run"
        cfg = teacher_config(checkpoint_every=4)
        with teacher_interrupted_at(7):
            fit(gray["labeled"], gray["unlabeled"], run, cfg, device="cpu", quiet=True)
        partial = load_checkpoint(run / TEACHER_TRAINING_NAME)
        assert partial["training"]["step"] == 7 and not (run / TEACHER_NAME).exists()
        result = runner.invoke(
            app, ["fit", str(gray["labeled"]), str(gray["unlabeled"]), "--out", str(run), "--resume"]
        )
        assert result.exit_code == 0, result.output
        assert "resuming the ssl teacher at iteration 7" in result.output
        fit(gray["labeled"], gray["unlabeled"], tmp_path / "straight", cfg, device="cpu", quiet=True)
        resumed, straight = (load_checkpoint(p / TEACHER_NAME)["d"] for p in (run, tmp_path / "straight"))
        assert resumed.keys() == straight.keys()
        assert all(torch.equal(resumed[k], straight[k]) for k in straight)
        assert not (run / TEACHER_TRAINING_NAME).exists()

    def test_resume_trains_a_teacher_of_other_settings_and_refuses_other_options(
        self, gray: dict[str, Path], tmp_path: Path
    ) -> None:
        run = tmp_path / "run"
        shutil.copytree(gray["run"], run)
        before = load_checkpoint(run / TEACHER_NAME)["d"]
        args = ["fit", str(gray["labeled"]), str(gray["unlabeled"]), "--out", str(run), "--resume", "--quiet"]
        assert runner.invoke(app, args).exit_code == 0  # nothing changed: the teacher is kept
        assert all(torch.equal(before[k], v) for k, v in load_checkpoint(run / TEACHER_NAME)["d"].items())
        result = runner.invoke(app, [*args, "--teacher-steps", "5"])
        assert result.exit_code == 0, result.output
        assert load_checkpoint(run / TEACHER_NAME)["metrics"]["steps"] == 5
        result = runner.invoke(app, [*args, "--g-width", "32"])
        assert (
            result.exit_code == 2
            and "only --steps, --teacher, --teacher-steps and --checkpoint-minutes" in result.output
        )

    def test_overwrite_removes_the_teacher_it_wrote(self, gray: dict[str, Path], tmp_path: Path) -> None:
        run = tmp_path / "run"
        shutil.copytree(gray["run"], run)
        args = ["fit", str(gray["labeled"]), "--out", str(run), "--overwrite", *TINY_CLI, "--steps", "1"]
        assert runner.invoke(app, args).exit_code == 0  # TINY_CLI: --teacher none
        assert not (run / TEACHER_NAME).exists()


class TestTheDefaultDataset:
    def test_labels_come_from_the_run_teacher(self, gray: dict[str, Path], tmp_path: Path) -> None:
        run = always_light(gray["run"], tmp_path / "run")
        base = ImageFolder(gray["labeled"])  # classes dark (0), light (1)
        ds = GANAugmentedDataset(base, run, output_format="tensor")
        assert ds.labels == "soft" and ds.fresh and ds.n_extra == ds.n_real  # the default share: a half
        assert ds.pool is not None and ds.pool.soft is not None
        assert torch.allclose(ds.pool.soft, torch.tensor([0.0, 1.0]).expand_as(ds.pool.soft), atol=1e-6)
        # the per-class generators drew "dark" images too: the teacher's labels replace the generator's
        plain = GANAugmentedDataset(base, run, labels="generator", output_format="tensor")
        assert 0 in plain.synthetic_targets.tolist()
        assert torch.allclose(ds[len(ds) - 1][1], torch.tensor([0.0, 1.0]), atol=1e-6)
        assert ds[0][1].tolist() == F.one_hot(torch.tensor(base[0][1]), 2).float().tolist()

    def test_the_teacher_speaks_the_base_datasets_label_order(self, gray: dict[str, Path], tmp_path: Path) -> None:
        run = always_light(gray["run"], tmp_path / "run")
        folder = ImageFolder(gray["labeled"])

        class Reversed(Dataset):  # the same images, classes named in the other order
            classes = ["light", "dark"]
            targets = [1 - t for t in folder.targets]

            def __len__(self) -> int:
                return len(folder)

            def __getitem__(self, i: int) -> tuple[Any, int]:
                return folder[i][0], 1 - folder[i][1]

        ds = GANAugmentedDataset(Reversed(), run, output_format="tensor")
        assert ds.pool is not None and ds.pool.soft is not None
        assert torch.allclose(ds.pool.soft, torch.tensor([1.0, 0.0]).expand_as(ds.pool.soft), atol=1e-6)

    @pytest.mark.parametrize("workers", [0, 2])
    def test_each_pass_draws_other_images_and_a_seed_repeats_them(self, gray: dict[str, Path], workers: int) -> None:
        base = ImageFolder(gray["labeled"])
        ds = GANAugmentedDataset(base, gray["run"], transform=v2.ToImage())
        loader = DataLoader(ds, batch_size=len(ds), shuffle=False, num_workers=workers)
        torch.manual_seed(0)
        first, second = next(iter(loader))[0], next(iter(loader))[0]
        n = ds.n_real
        assert torch.equal(first[:n], second[:n])  # the real images
        assert not torch.equal(first[n:], second[n:])  # new synthetic ones
        torch.manual_seed(0)
        assert torch.equal(next(iter(loader))[0], first)

    def test_unlabeled_images_join_the_pool(self, gray: dict[str, Path]) -> None:
        base = ImageFolder(gray["labeled"])
        alone = GANAugmentedDataset(base, gray["run"], output_format="tensor", unlabeled=False)
        ds = GANAugmentedDataset(base, gray["run"], output_format="tensor", unlabeled=True)  # the run's folder
        assert ds.pool is not None and alone.pool is not None and len(ds.pool) == len(alone.pool) + 8
        default = GANAugmentedDataset(base, gray["run"], output_format="tensor")  # the run names its folder
        assert default.pool is not None and len(default.pool) == len(ds.pool)
        given = torch.zeros(5, 1, 16, 16, dtype=torch.uint8)
        ds = GANAugmentedDataset(base, gray["run"], output_format="tensor", unlabeled=given)
        assert ds.pool is not None and len(ds.pool) == len(alone.pool) + 5
        assert ds.pool.images[-5:].shape[-2:] == (16, 16) and int(ds.pool.images[-5:].max()) == 0  # the ones given
        alone_real = GANAugmentedDataset(base, gray["run"], output_format="tensor", unlabeled=given, fresh_passes=0)
        assert alone_real.pool is not None and len(alone_real.pool) == 5  # the control: no synthetic image
        assert alone_real.n_extra == alone.n_extra  # as many extra items; and what they are, counted:
        assert alone_real.n_synthetic == 0 and alone.n_synthetic == alone.n_extra  # only unlabeled / only synthetic
        synthetic_share = len(alone.pool) / len(ds.pool)  # ds: the same synthetic images and the 5 given
        assert ds.n_synthetic == round(ds.n_extra * synthetic_share) and synthetic_share < 1  # 12 × 768/773

    def test_bad_extra_options_are_refused(self, gray: dict[str, Path], tmp_path: Path) -> None:
        base = ImageFolder(gray["labeled"])
        with pytest.raises(ValueError, match="needs a teacher"):
            GANAugmentedDataset(base, gray["run"], labels="generator", unlabeled=True)
        with pytest.raises(ValueError, match="drop fresh=False"):
            GANAugmentedDataset(base, gray["run"], fresh=False, unlabeled=True)
        with pytest.raises(ValueError, match="fresh_passes=-1"):
            GANAugmentedDataset(base, gray["run"], fresh_passes=-1)
        with pytest.raises(ValueError, match="fresh_passes=0 leaves no synthetic image"):
            GANAugmentedDataset(base, gray["run"], fresh_passes=0, unlabeled=False)
        with pytest.raises(ValueError, match="uint8 images"):
            GANAugmentedDataset(base, gray["run"], unlabeled=torch.zeros(2, 1, 16, 16))

    def test_a_run_without_teacher_keeps_the_generator_labels(self, gray: dict[str, Path], tmp_path: Path) -> None:
        run = tmp_path / "run"
        fit(gray["labeled"], gray["unlabeled"], run, teacher_config(teacher="none"), device="cpu", quiet=True)
        ds = GANAugmentedDataset(ImageFolder(gray["labeled"]), run)
        assert ds.labels == "generator" and not ds.fresh and ds.pool is None
        with pytest.raises(Exception, match="names no unlabeled folder|needs a teacher"):
            GANAugmentedDataset(ImageFolder(gray["labeled"]), run, unlabeled=True)


class TestSizesByDevice:
    def test_the_cpu_gets_smaller_models_and_explicit_values_win(self) -> None:
        cpu = for_device("cpu")
        assert (cpu.steps, cpu.batch_size, cpu.model.g_width, cpu.model.d_width, cpu.model.z_dim) == (
            CPU_SIZES["steps"], CPU_SIZES["batch_size"], CPU_SIZES["g_width"], CPU_SIZES["d_width"],
            CPU_SIZES["z_dim"],
        )  # fmt: skip
        assert for_device("cuda") == TrainConfig()
        assert for_device("cpu", g_width=48, steps=7).model.g_width == 48
        assert for_device("cpu", g_width=48, steps=7).steps == 7

    def test_without_an_image_size_fit_trains_at_the_images_own_side(self, make_image_folder, tmp_path: Path) -> None:
        folder = make_image_folder(size=28, per_class=2, channels=1)
        assert default_config(folder, "cpu").image_size == 28 and default_config(folder, "cuda").image_size == 28
        common = ["--steps", "1", "--batch-size", "2", "--teacher", "none", "--device", "cpu", "--quiet"]
        for given, expected in (([], 28), (["--image-size", "32"], 32)):
            out = tmp_path / f"run{expected}"
            result = runner.invoke(app, ["fit", str(folder), "--out", str(out), *given, *common])
            assert result.exit_code == 0, result.output
            assert json.loads((out / "config.json").read_text())["config"]["image_size"] == expected

    def test_the_cli_says_the_sizes_it_trains_with(self, gray: dict[str, Path], tmp_path: Path) -> None:
        args = ["fit", str(gray["labeled"]), "--out", str(tmp_path / "r"), "--image-size", "16", "--steps", "1"]
        result = runner.invoke(app, [*args, "--teacher", "none", "--device", "cpu", "--sample-every", "1"])
        assert result.exit_code == 0, result.output
        cfg = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
        assert cfg["batch_size"] == CPU_SIZES["batch_size"] and cfg["model"]["g_width"] == CPU_SIZES["g_width"]
        assert f"widths G {CPU_SIZES['g_width']} / D {CPU_SIZES['d_width']}" in result.output


@contextlib.contextmanager
def teacher_steps_patched(at: int, how: str) -> Iterator[list[int]]:
    """In the semi-supervised teacher's iteration ``at`` (not its labels-only rival's): ``sighup`` sends this
    process SIGHUP (a closed terminal) once; ``nan`` makes that iteration's losses NaN, ``nan-always`` every
    one's from there on. Yields the iterations whose losses were made NaN."""
    original, mp, spoiled = ssl_module.SSLRun.train_step, pytest.MonkeyPatch(), []

    def step(self: ssl_module.SSLRun) -> dict[str, torch.Tensor]:
        stats = original(self)
        once = how != "nan-always"
        if self.supervised or self.step < at or (once and (self.step > at or at in spoiled[:1])):
            return stats
        if how == "sighup":
            spoiled.append(at)
            os.kill(os.getpid(), signal.SIGHUP)
            return stats
        spoiled.append(self.step)
        return {k: v * float("nan") for k, v in stats.items()}

    mp.setattr(ssl_module.SSLRun, "train_step", step)
    try:
        yield spoiled
    finally:
        mp.undo()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_closed_terminal_stops_the_teacher_and_resume_is_exact(gray: dict[str, Path], tmp_path: Path) -> None:
    """SIGHUP in the teacher's iteration 6: it stops after that iteration with its state saved, and --resume
    ends on weights equal, tensor for tensor, to a teacher trained without a stop."""
    cfg = teacher_config(checkpoint_every=100)
    run = tmp_path / "run"
    with teacher_steps_patched(6, "sighup"), pytest.raises(KeyboardInterrupt, match="SIGHUP"):
        fit(gray["labeled"], gray["unlabeled"], run, cfg, device="cpu", quiet=True)
    assert load_checkpoint(run / TEACHER_TRAINING_NAME)["training"]["step"] == 6 and not (run / TEACHER_NAME).exists()
    fit(gray["labeled"], gray["unlabeled"], run, cfg, device="cpu", quiet=True, resume=True)
    fit(gray["labeled"], gray["unlabeled"], tmp_path / "straight", cfg, device="cpu", quiet=True)
    resumed, straight = (load_checkpoint(p / TEACHER_NAME)["d"] for p in (run, tmp_path / "straight"))
    assert resumed.keys() == straight.keys() and all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_a_diverging_teacher_is_rolled_back_with_a_lower_rate(gray: dict[str, Path], tmp_path: Path) -> None:
    """NaN losses in iteration 10 (checked every 10, saved every 4): back to iteration 8 with the learning rate
    halved, and the teacher finishes; NaN in every iteration from 10 on: an error after 3 roll-backs, the run's
    partial teacher as last saved."""
    messages: list[str] = []
    reporter = Reporter(quiet=True)
    reporter.message = messages.append  # type: ignore[method-assign]
    cfg = teacher_config(checkpoint_every=4)
    with teacher_steps_patched(10, "nan") as spoiled:
        fit(gray["labeled"], gray["unlabeled"], tmp_path / "once", cfg, device="cpu", reporter=reporter)
    assert spoiled == [10] and (tmp_path / "once" / TEACHER_NAME).is_file()
    rolled = [m for m in messages if "the teacher diverged" in m]
    assert rolled == [rolled[0]] and "iteration 10 (" in rolled[0] and "rolled back to iteration 8" in rolled[0]
    assert "[1/3]" in rolled[0]
    with teacher_steps_patched(10, "nan-always"), pytest.raises(GanAugmentError, match="after 3 roll-backs"):
        fit(gray["labeled"], gray["unlabeled"], tmp_path / "always", cfg, device="cpu", quiet=True)
    assert load_checkpoint(tmp_path / "always" / TEACHER_TRAINING_NAME)["training"]["step"] == 8


def test_a_teacher_out_of_gpu_memory_retries_at_half_the_batch(
    gray: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CUDA running out of memory used to end the teacher with an error: it goes back to its last save and retries
    at half the batch (at most 3 times, as the GANs do), and the smaller batch is saved with it, so a resume keeps
    it. Out of memory at every batch: an error that says what to change, after 3 retries."""
    original, batches = ssl_module.SSLRun.train_step, []
    messages: list[str] = []
    reporter = Reporter(quiet=True)
    reporter.message = messages.append  # type: ignore[method-assign]

    def step(self: Any) -> dict[str, torch.Tensor]:
        if not self.supervised and self.step == 5 and self.batch == batches[0]:  # once, at iteration 6
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if not self.supervised and self.step == 8:
            os.kill(os.getpid(), signal.SIGHUP)
        if not self.supervised:
            batches.append(self.batch)
        return original(self)

    monkeypatch.setattr(ssl_module.SSLRun, "train_step", step)
    run, cfg = tmp_path / "run", teacher_config(checkpoint_every=4)
    with pytest.raises(KeyboardInterrupt, match="SIGHUP"):
        fit(gray["labeled"], gray["unlabeled"], run, cfg, device="cpu", reporter=reporter)
    full = batches[0]
    assert [m for m in messages if "out of GPU memory" in m] == [
        f"out of GPU memory in the teacher's iteration 6 at batch {full}: back to iteration 4, retrying at batch "
        f"{full // 2} [1/3]"
    ]
    assert batches[:6] == [full] * 5 + [full // 2]  # iterations 1-5, then 5 again at half the batch
    assert load_checkpoint(run / TEACHER_TRAINING_NAME)["training"]["batch"] == full // 2
    batches.clear()
    fit(gray["labeled"], gray["unlabeled"], run, cfg, device="cpu", quiet=True, resume=True)
    assert set(batches) == {full // 2} and (run / TEACHER_NAME).is_file()

    def never(self: Any) -> dict[str, torch.Tensor]:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(ssl_module.SSLRun, "train_step", never)
    with pytest.raises(GanAugmentError, match="out of GPU memory in the teacher's iteration 1") as err:
        fit(gray["labeled"], gray["unlabeled"], tmp_path / "never", cfg, device="cpu", quiet=True)
    assert "--teacher none" in str(err.value) and f"(batch {full // 8})" in str(err.value)
