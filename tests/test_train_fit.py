from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from conftest import requires_cuda, tiny_config

from gan_augment import CheckpointError, RunDirError, fit, load_generator, load_image_data, sample
from gan_augment.io import load_checkpoint
from gan_augment.progress import Reporter
from gan_augment.train import Trainer


def _states(path: Path) -> list[dict[str, torch.Tensor]]:
    ckpt = load_checkpoint(path)
    return [{f"{part}.{k}": v for part in ("g", "g_ema", "d") for k, v in m[part].items()} for m in ckpt["models"]]


def _full_and_resumed(labeled: Path, unlabeled: Path, tmp_path: Path, mode: str, device: str) -> tuple[Path, Path]:
    """6 steps straight through, and 3 steps then resumed to 6: the two run directories."""
    cfg = tiny_config(mode=mode, steps=6, pretrain_steps=2, checkpoint_every=100, sample_every=100)
    fit(labeled, unlabeled, tmp_path / "full", cfg, device=device, quiet=True)
    fit(labeled, unlabeled, tmp_path / "half", cfg.replace(steps=3), device=device, quiet=True)
    fit(labeled, unlabeled, tmp_path / "half", cfg, device=device, quiet=True, resume=True)
    return tmp_path / "full", tmp_path / "half"


class TestFit:
    @pytest.mark.parametrize("mode", ["per-class", "conditional", "unconditional"])
    @pytest.mark.parametrize("loss", ["bce", "wgan-gp", "hinge"])
    def test_modes_and_losses_train(self, labeled: Path, unlabeled: Path, tmp_path: Path, mode: str, loss: str) -> None:
        cfg = tiny_config(mode=mode, loss=loss, pretrain_steps=2)
        fit(labeled, unlabeled, tmp_path / "run", cfg, device="cpu", quiet=True)
        rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        assert rows and all(torch.isfinite(torch.tensor([r["loss_d"], r["loss_g"]])).all() for r in rows)
        expected_steps = 3 + (2 if mode == "per-class" else 0)
        assert rows[-1]["step"] == expected_steps
        ckpt = load_checkpoint(tmp_path / "run")
        assert ckpt["step"] == expected_steps
        assert len(ckpt["models"]) == (2 if mode == "per-class" else 1)
        assert (tmp_path / "run" / "samples" / f"step_{expected_steps:06d}.png").is_file()
        assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["mode"] == mode

    @pytest.mark.parametrize("unroll", [0, 2])
    def test_unrolled(self, labeled: Path, tmp_path: Path, unroll: int) -> None:
        """With unrolling, G is scored by a copy of D advanced ``unroll`` steps; the pair's D is left as it was."""
        data = load_image_data(labeled, None, image_size=16)
        t = Trainer(tiny_config(unroll=unroll, mode="unconditional"), data, torch.device("cpu"), Reporter(quiet=True))
        t.d_step(t.pair.d, t.pair.opt_d)
        d_before = {k: v.clone() for k, v in t.pair.d.named_parameters()}
        g_before = {k: v.clone() for k, v in t.pair.g.state_dict().items()}
        calls: list[torch.nn.Module] = []
        t.pair.d.register_forward_hook(lambda module, args, out: calls.append(module))  # copied with D, too
        t.g_step()
        assert all(torch.equal(v, d_before[k]) for k, v in t.pair.d.named_parameters())
        assert any(not torch.equal(v, g_before[k]) for k, v in t.pair.g.state_dict().items())
        critic = calls[-1]  # the D that scored G's step
        if unroll:
            assert critic is not t.pair.d and len(calls) == unroll * 2 + 1  # real and fake per D step, then G's
            assert any(not torch.equal(v, d_before[k]) for k, v in critic.named_parameters())
        else:
            assert critic is t.pair.d and len(calls) == 1
        fit(labeled, None, tmp_path / "fit", tiny_config(unroll=unroll, steps=2), device="cpu", quiet=True)
        assert load_checkpoint(tmp_path / "fit")["step"] == 2

    def test_unlabeled_is_used(self, labeled: Path, unlabeled: Path, tmp_path: Path) -> None:
        """Per-class mode pre-trains on labeled + unlabeled images; without UNLABELED it does not."""
        fit(labeled, unlabeled, tmp_path / "a", tiny_config(steps=4), device="cpu", quiet=True)
        a = load_checkpoint(tmp_path / "a")
        assert a["pretrain_steps"] == 2 and a["data"]["num_unlabeled"] == 8
        phases = [json.loads(r)["phase"] for r in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
        assert phases[:2] == ["pretrain", "pretrain"] and phases[-1] == "per-class"
        fit(labeled, None, tmp_path / "b", tiny_config(steps=4), device="cpu", quiet=True)
        assert load_checkpoint(tmp_path / "b")["pretrain_steps"] == 0

    def test_per_class_models_start_from_pretraining(self, labeled: Path, unlabeled: Path, tmp_path: Path) -> None:
        cfg = tiny_config(steps=1, pretrain_steps=3, checkpoint_every=3, sample_every=100)
        fit(labeled, unlabeled, tmp_path / "pre", cfg.replace(steps=1), device="cpu", quiet=True)
        # One Adam step (lr 2e-4) away from the same pre-trained model, the classes' weights are
        # nearly equal; two independently initialised models would differ by ~0.03.
        ckpt = load_checkpoint(tmp_path / "pre")
        w0 = ckpt["models"][0]["g"]["fc.weight"]
        w1 = ckpt["models"][1]["g"]["fc.weight"]
        assert (w0 - w1).abs().max() < 1e-3  # independent N(0, 0.02) inits differ by ~0.03


class TestCheckpoint:
    def test_round_trip_and_contents(self, labeled: Path, tmp_path: Path) -> None:
        fit(labeled, None, tmp_path / "run", tiny_config(), device="cpu", quiet=True)
        raw = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
        for key in (
            "format_version",
            "package_version",
            "config",
            "model_config",
            "models",
            "step",
            "rng",
            "class_names",
            "image_size",
            "channels",
            "normalization",
            "data",
        ):
            assert key in raw, key
        assert raw["class_names"] == ["class_0", "class_1"]
        assert raw["data"]["num_images"] == 12 and len(raw["data"]["files_sha256"]) == 64
        assert set(raw["models"][0]) == {"g", "g_ema", "d", "opt_g", "opt_d"}

    @pytest.mark.parametrize("mode", ["per-class", "conditional"])
    def test_resume_equals_uninterrupted(self, labeled: Path, unlabeled: Path, tmp_path: Path, mode: str) -> None:
        full_dir, half_dir = _full_and_resumed(labeled, unlabeled, tmp_path, mode, "cpu")
        full, resumed = _states(full_dir), _states(half_dir)
        assert load_checkpoint(tmp_path / "half")["step"] == load_checkpoint(tmp_path / "full")["step"]
        for a, b in zip(full, resumed):
            for key in a:
                assert torch.equal(a[key], b[key]), key
        kept = [load_checkpoint(d).get("pretrained") for d in (full_dir, half_dir)]
        if mode == "per-class":  # the shared pre-trained models, kept through the resume
            assert kept[0] is not None and kept[1] is not None
            for part in ("g_ema", "d"):
                assert all(torch.equal(v, kept[1][part][k]) for k, v in kept[0][part].items()), part
        else:
            assert kept == [None, None]

    def test_checkpoint_from_before_train_state_resumes(self, labeled: Path, tmp_path: Path) -> None:
        """Checkpoints written before ``train_state`` (rates and batch size then lived in ``config``) still
        load, sample and resume, taking those values from their config."""
        fit(labeled, None, tmp_path / "run", tiny_config(steps=2), device="cpu", quiet=True)
        path = tmp_path / "run" / "checkpoint.pt"
        old = torch.load(path, weights_only=True)
        del old["train_state"]
        old["config"].update(lr_d=1e-4, batch_size=2)  # what a roll-back and an OOM retry used to leave there
        old["model_config"]["d_norm"] = "batch"  # never "auto" then
        torch.save(old, path)
        generator, info = load_generator(tmp_path / "run", device="cpu")
        assert info.step == 2 and sample(generator, 2, labels=[0, 1], seed=0).shape == (2, 3, 16, 16)
        fit(labeled, None, tmp_path / "run", tiny_config(steps=4), device="cpu", quiet=True, resume=True)
        resumed = load_checkpoint(tmp_path / "run")
        assert resumed["step"] == 4
        assert resumed["train_state"]["lr_d"] == 1e-4 and resumed["train_state"]["batch_size"] == 2

    def test_refuses_existing_run(self, labeled: Path, tmp_path: Path) -> None:
        fit(labeled, None, tmp_path / "run", tiny_config(steps=1), device="cpu", quiet=True)
        with pytest.raises(RunDirError, match="already holds a run"):
            fit(labeled, None, tmp_path / "run", tiny_config(steps=1), device="cpu", quiet=True)
        fit(labeled, None, tmp_path / "run", tiny_config(steps=2), device="cpu", quiet=True, overwrite=True)
        assert load_checkpoint(tmp_path / "run")["step"] == 2

    def test_resume_needs_same_data(self, labeled: Path, make_image_folder, tmp_path: Path) -> None:
        fit(labeled, None, tmp_path / "run", tiny_config(steps=1), device="cpu", quiet=True)
        other = make_image_folder("other", per_class=3)
        with pytest.raises(RunDirError, match="differ from those"):
            fit(other, None, tmp_path / "run", tiny_config(steps=2), device="cpu", quiet=True, resume=True)

    def test_untrusted_pickle_is_refused(self, tmp_path: Path) -> None:
        marker = tmp_path / "pwned"

        class Evil:
            def __reduce__(self):  # runs `open(marker, "w")` when unpickled unsafely
                return (open, (str(marker), "w"))

        bad = tmp_path / "evil.pt"
        torch.save({"format_version": 1, "x": Evil()}, bad)  # pickling stores the call, does not run it
        with pytest.raises(CheckpointError, match="not a trusted checkpoint"):
            load_checkpoint(bad)
        bad.write_bytes(pickle.dumps({"format_version": 1, "x": Evil()}, protocol=2))  # a bare pickle
        with pytest.raises(CheckpointError, match="not a readable checkpoint"):
            load_checkpoint(bad)
        assert not marker.exists()

    def test_not_a_checkpoint(self, tmp_path: Path) -> None:
        junk = tmp_path / "junk.pt"
        junk.write_bytes(b"hello")
        with pytest.raises(CheckpointError, match="not a readable checkpoint"):
            load_checkpoint(junk)
        torch.save({"weights": torch.zeros(1)}, tmp_path / "plain.pt")
        with pytest.raises(CheckpointError, match="not a gan-augment checkpoint"):
            load_checkpoint(tmp_path / "plain.pt")
        torch.save({"format_version": 99}, tmp_path / "future.pt")
        with pytest.raises(CheckpointError, match="upgrade gan-augment"):
            load_checkpoint(tmp_path / "future.pt")
        with pytest.raises(CheckpointError, match="no checkpoint"):
            load_checkpoint(tmp_path / "missing")


@requires_cuda
class TestCuda:
    def test_fit_on_cuda_loads_on_cpu(self, labeled: Path, tmp_path: Path) -> None:
        fit(labeled, None, tmp_path / "run", tiny_config(steps=2), device="cuda", quiet=True)
        ckpt = load_checkpoint(tmp_path / "run", map_location="cpu")
        assert ckpt["models"][0]["g"]["fc.weight"].device.type == "cpu"
        g, _ = load_generator(tmp_path / "run", device="cpu")
        assert sample(g, 2, seed=0).shape == (2, 3, 16, 16)

    @pytest.mark.parametrize("mode", ["per-class", "conditional"])
    def test_resume_on_cuda(self, labeled: Path, unlabeled: Path, tmp_path: Path, mode: str) -> None:
        """CUDA RNG states and fused Adam survive a checkpoint: resuming equals running on (within float noise)."""
        full_dir, half_dir = _full_and_resumed(labeled, unlabeled, tmp_path, mode, "cuda")
        for a, b in zip(_states(full_dir), _states(half_dir)):
            for key in a:
                torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4, msg=key)

    def test_grouped_step_on_cuda_is_finite_with_bf16(self, labeled: Path, tmp_path: Path) -> None:
        fit(labeled, None, tmp_path / "run", tiny_config(steps=5, batch_size=8), device="cuda", quiet=True)
        ckpt = load_checkpoint(tmp_path / "run")
        assert ckpt["step"] == 5 and len(ckpt["models"]) == 2
        assert all(torch.isfinite(v).all() for m in ckpt["models"] for v in m["g"].values() if v.is_floating_point())


def test_training_leaves_the_callers_random_stream_alone(labeled: Path, tmp_path: Path) -> None:
    """fit seeds the global random state for its own reproducibility, on a fork: the caller's stream
    goes on where it was (it was reseeded to the run's seed before), and the run is the same either way."""
    from gan_augment.evaluate import ArrayDataset, ClassifierConfig, train_classifier

    cfg = tiny_config(steps=2)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(labeled, None, tmp_path / "a", cfg, device="cpu", quiet=True)
    data = load_image_data(labeled, None, image_size=16)
    clf = ClassifierConfig(steps=2, width=4, batch_size=4, workers=0)
    train_classifier(ArrayDataset(data.images, data.labels, data.class_names), 3, 2, clf, torch.device("cpu"), 0)
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(999)  # another caller state: the same run
    fit(labeled, None, tmp_path / "b", cfg, device="cpu", quiet=True)
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert all(torch.equal(a["models"][0]["g"][k], b["models"][0]["g"][k]) for k in a["models"][0]["g"])
