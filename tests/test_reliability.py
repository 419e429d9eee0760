"""Every foreseeable bad input and fault: a one-line error (exit 2) or a documented recovery, nothing lost.

The case numbers follow docs/reliability.md.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_CLI, tiny_config, write_folder
from PIL import Image
from typer.testing import CliRunner

import gan_augment.data.folders as data_module
from gan_augment import GanAugmentError, fit
from gan_augment.cli import app
from gan_augment.data import load_image_data
from gan_augment.io import load_checkpoint
from gan_augment.train import Trainer

runner = CliRunner()
TINY = [*TINY_CLI[:-1], "--steps", "2", "--quiet"]  # without the last item: not quiet


def fit_cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["fit", *TINY, *args])  # later options win
    return result.exit_code, result.output


def one_line_error(code: int, output: str, *needles: str) -> None:
    """Exit code 2, exactly one line of output, starting with "Error:", naming what it should."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert code == 2, output
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def png_bytes(size: tuple[int, int] = (20, 20), mode: str = "RGB", color: object = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")  # type: ignore[arg-type]
    return buf.getvalue()


# ----------------------------------------------------------------------------- 1. paths
class TestPaths:
    def test_missing_labeled(self, tmp_path: Path) -> None:
        one_line_error(*fit_cli(str(tmp_path / "nope"), "--out", str(tmp_path / "run")), "nope", "does not exist")
        assert not (tmp_path / "run").exists()

    def test_labeled_is_a_file(self, tmp_path: Path) -> None:
        f = tmp_path / "file.png"
        f.write_bytes(png_bytes())
        one_line_error(*fit_cli(str(f), "--out", str(tmp_path / "run")), "file.png", "not a folder")

    def test_missing_unlabeled(self, labeled: Path, tmp_path: Path) -> None:
        one_line_error(
            *fit_cli(str(labeled), str(tmp_path / "pool"), "--out", str(tmp_path / "run")), "pool", "unlabeled"
        )
        assert not (tmp_path / "run").exists()

    def test_unreadable_folder(self, labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # Running as root ignores permission bits, so the operating system's refusal is simulated.
        real_scandir = os.scandir

        def scandir(path: object = ".") -> object:
            if str(path).endswith("class_1"):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_scandir(path)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "scandir", scandir)
        one_line_error(
            *fit_cli(str(labeled), "--out", str(tmp_path / "run")), "class_1", "cannot be listed", "permissions"
        )
        assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- 2. folder layouts
class TestLayouts:
    def test_empty_folder(self, tmp_path: Path) -> None:
        (tmp_path / "empty").mkdir()
        one_line_error(*fit_cli(str(tmp_path / "empty"), "--out", str(tmp_path / "run")), "empty", "no class folders")

    def test_class_without_images(self, labeled: Path, tmp_path: Path) -> None:
        (labeled / "ghost").mkdir()
        (labeled / "ghost" / "notes.txt").write_text("x")
        one_line_error(*fit_cli(str(labeled), "--out", str(tmp_path / "run")), "ghost", "no images")

    def test_single_image_class_trains_and_says_so(self, tmp_path: Path) -> None:
        labeled = write_folder(tmp_path / "lab", ["many", "one"], [5, 1])
        result = runner.invoke(app, ["fit", str(labeled), "--out", str(tmp_path / "run"), *TINY[:-1]])
        assert result.exit_code == 0, result.output
        assert "a single image in class(es) 'one'" in result.output
        assert len(load_checkpoint(tmp_path / "run")["models"]) == 2

    def test_too_many_classes(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(data_module, "MAX_CLASSES", 3)
        labeled = write_folder(tmp_path / "lab", ["a", "b", "c", "d"], [1, 1, 1, 1])
        one_line_error(*fit_cli(str(labeled), "--out", str(tmp_path / "run")), "4 class folders", "more than 3")


# ----------------------------------------------------------------------------- 3-4. files
class TestFiles:
    def test_non_images_and_hidden_are_skipped_with_a_count(self, labeled: Path, tmp_path: Path) -> None:
        for name in ("notes.txt", ".DS_Store", "Thumbs.db"):
            (labeled / "class_0" / name).write_bytes(b"junk")
        (labeled / "class_1" / ".cache").mkdir()
        (labeled / "class_1" / ".cache" / "y.png").write_bytes(png_bytes())
        result = runner.invoke(app, ["fit", str(labeled), "--out", str(tmp_path / "run"), *TINY[:-1]])
        assert result.exit_code == 0, result.output
        assert "12 labeled images in 2 classes" in result.output and "non-image files ignored" in result.output

    @pytest.fixture
    def broken(self, labeled: Path) -> Path:
        d = labeled / "class_0"
        (d / "truncated.png").write_bytes(png_bytes()[:40])
        (d / "empty.jpg").write_bytes(b"")
        (d / "lies.png").write_bytes(b"%PDF-1.4 not an image at all")
        (d / "random.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
        return labeled

    def test_broken_files_are_skipped_and_listed(self, broken: Path) -> None:
        data = load_image_data(broken, image_size=16)
        names = {Path(p).name for p, _ in data.skipped}
        assert names == {"truncated.png", "empty.jpg", "lies.png", "random.jpg"}
        assert len(data.labels) == 12 and all("cannot decode" in reason for _, reason in data.skipped)

    def test_strict_makes_them_fatal(self, broken: Path, tmp_path: Path) -> None:
        code, out = fit_cli(str(broken), "--out", str(tmp_path / "run"), "--strict")
        one_line_error(code, out, "cannot be used", "--strict", "and 3 more")
        assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- 5, 7. image kinds and sizes
class TestImageKinds:
    def test_mixed_modes_become_the_runs_channels(self, tmp_path: Path) -> None:
        d = tmp_path / "lab" / "mixed"
        d.mkdir(parents=True)
        Image.new("L", (20, 20), 128).save(d / "gray.png")
        Image.new("RGB", (20, 20), (255, 0, 0)).save(d / "rgb.png")
        Image.new("RGBA", (20, 20), (0, 255, 0, 0)).save(d / "transparent.png")  # on white
        Image.new("P", (20, 20), 3).save(d / "palette.png")
        Image.fromarray(np.full((20, 20), 65535, dtype=np.uint16)).save(d / "sixteen.png")
        Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(d / "cmyk.jpg")
        data = load_image_data(tmp_path / "lab", image_size=16)
        assert data.images.shape == (6, 3, 16, 16) and not data.skipped
        px = {Path(f).stem: data.images[i, :, 8, 8].tolist() for i, f in enumerate(data.files)}
        assert px["gray"] == [128, 128, 128] and px["rgb"] == [255, 0, 0]
        assert px["transparent"] == [255, 255, 255] and px["sixteen"] == [255, 255, 255]
        assert px["cmyk"][0] > 200 and px["cmyk"][1] < 60  # CMYK red is RGB red
        gray = load_image_data(tmp_path / "lab", image_size=16, channels=1)
        assert gray.images.shape == (6, 1, 16, 16)

    def test_exif_rotation_is_applied(self, tmp_path: Path) -> None:
        d = tmp_path / "lab" / "rotated"
        d.mkdir(parents=True)
        arr = np.zeros((20, 40, 3), dtype=np.uint8)
        arr[:, :20] = (255, 0, 0)  # left half red, right half blue, as stored
        arr[:, 20:] = (0, 0, 255)
        im = Image.fromarray(arr)
        exif = im.getexif()
        exif[0x0112] = 6  # "rotate 90° clockwise to display"
        im.save(d / "phone.jpg", exif=exif, quality=95)
        x = load_image_data(tmp_path / "lab", image_size=16).images[0]
        top, bottom = x[:, 2, 8].tolist(), x[:, 13, 8].tolist()
        assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60  # red now on top

    def test_tiny_and_extreme_aspect_images(self, tmp_path: Path) -> None:
        d = tmp_path / "lab" / "odd"
        d.mkdir(parents=True)
        Image.new("RGB", (3, 3), (10, 20, 30)).save(d / "tiny.png")
        Image.new("RGB", (2000, 5), (40, 50, 60)).save(d / "strip.png")
        Image.new("RGB", (1, 900), (70, 80, 90)).save(d / "needle.png")
        data = load_image_data(tmp_path / "lab", image_size=32)
        assert data.images.shape == (3, 3, 32, 32) and not data.skipped


# ----------------------------------------------------------------------------- 8. class names
class TestClassNames:
    def test_spaces_unicode_and_digits(self, tmp_path: Path) -> None:
        names = ["red fox", "café ☕", "007"]
        labeled = write_folder(tmp_path / "lab", names, [3, 3, 3])
        code, out = fit_cli(str(labeled), "--out", str(tmp_path / "run"))
        assert code == 0, out
        assert load_checkpoint(tmp_path / "run")["class_names"] == sorted(names)
        result = runner.invoke(
            app, ["sample", str(tmp_path / "run"), "--per-class", "2", "--out-dir", str(tmp_path / "syn")]
        )
        assert result.exit_code == 0, result.output
        classes = sorted(p.name for p in (tmp_path / "syn").iterdir() if p.is_dir())  # beside them: the marker
        assert classes == sorted(names)

    def test_names_differing_only_in_case_are_refused(self, tmp_path: Path) -> None:
        labeled = write_folder(tmp_path / "lab", ["Cat", "cat", "dog"], [2, 2, 2])
        one_line_error(*fit_cli(str(labeled), "--out", str(tmp_path / "run")), "'Cat' and 'cat'", "differ only in case")


# ----------------------------------------------------------------------------- 9. option values
@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("fit", "--image-size", "0"),
        ("fit", "--batch-size", "1"),
        ("fit", "--steps", "0"),
        ("fit", "--steps", "many"),
        ("fit", "--lr-g", "5"),
        ("fit", "--channels", "2"),
        ("fit", "--mode", "magic"),
        ("evaluate", "--synthetic-ratio", "1.5"),
        ("evaluate", "--seeds", "0"),
        ("evaluate", "--test-fraction", "1"),
        ("sample", "--n", "-1"),
    ],
)
def test_option_out_of_range(labeled: Path, tmp_path: Path, command: str, option: str, value: str) -> None:
    target = str(labeled) if command != "sample" else str(tmp_path)
    result = runner.invoke(app, [command, target, option, value, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert (option in text or f"{option.lstrip('-').replace('-', '_')}={value}" in text) and "Traceback" not in text
    if "Invalid value" in text:  # typer's check, with the bound, the type or the choices
        assert any(
            s in text for s in ("greater than", "less than", "range", "valid integer", "valid float", "'per-class'")
        ), text
    else:  # a rule typer cannot express (channels 0, 1 or 3): the configuration's one-line error
        one_line_error(result.exit_code, result.output, "use 0 (auto), 1 or 3")
    assert not (tmp_path / "out").exists()


def test_unsupported_image_size_value(labeled: Path, tmp_path: Path) -> None:
    one_line_error(*fit_cli(str(labeled), "--out", str(tmp_path / "run"), "--image-size", "18"), "18")


# ----------------------------------------------------------------------------- 10-11. checkpoints
class TestCheckpoints:
    def test_not_a_checkpoint(self, tmp_path: Path) -> None:
        (tmp_path / "x.pt").write_bytes(b"\x00" * 100)
        result = runner.invoke(app, ["info", str(tmp_path / "x.pt")])
        one_line_error(result.exit_code, result.output, "x.pt", "not a readable checkpoint")

    def test_truncated(self, tiny_run: Path, tmp_path: Path) -> None:
        blob = (tiny_run / "checkpoint.pt").read_bytes()
        (tmp_path / "half.pt").write_bytes(blob[: len(blob) // 2])
        result = runner.invoke(app, ["sample", str(tmp_path / "half.pt"), "--n", "4", "--out", str(tmp_path / "g.png")])
        one_line_error(result.exit_code, result.output, "half.pt", "not a readable checkpoint", "corrupt, truncated")
        assert not (tmp_path / "g.png").exists()

    def test_newer_format(self, tiny_run: Path, tmp_path: Path) -> None:
        ckpt = load_checkpoint(tiny_run)
        ckpt["format_version"] = 99
        torch.save(ckpt, tmp_path / "future.pt")
        result = runner.invoke(app, ["info", str(tmp_path / "future.pt")])
        one_line_error(result.exit_code, result.output, "format 99", "upgrade gan-augment")

    def test_other_class_set_or_size(self, tiny_run: Path, tmp_path: Path) -> None:
        from torchvision.datasets import ImageFolder

        from gan_augment import GANAugmentedDataset

        other = ImageFolder(str(write_folder(tmp_path / "other", ["apple", "pear"], [2, 2])))
        with pytest.raises(GanAugmentError, match="apple"):
            GANAugmentedDataset(other, tiny_run, synthetic_ratio=0.5)
        labeled_32 = write_folder(tmp_path / "l32", ["class_0", "class_1"], [3, 3], size=32)
        code, out = fit_cli(str(labeled_32), "--out", str(tiny_run), "--resume")
        one_line_error(code, out, "differ from those")

    def test_code_in_a_pickle_never_runs(self, tmp_path: Path) -> None:
        marker = tmp_path / "pwned"

        class Evil:
            def __reduce__(self):  # type: ignore[no-untyped-def]
                return (os.system, (f"touch {marker}",))

        torch.save({"format_version": 1, "models": Evil()}, tmp_path / "evil.pt")  # as a checkpoint would be
        (tmp_path / "bare.pt").write_bytes(pickle.dumps({"format_version": 1, "models": Evil()}))  # a bare pickle
        for name, message in (("evil.pt", "not a trusted checkpoint"), ("bare.pt", "not a readable checkpoint")):
            for cmd in (
                ["info", str(tmp_path / name)],
                ["sample", str(tmp_path / name), "--n", "1", "--out", str(tmp_path / "g.png")],
            ):
                result = runner.invoke(app, cmd)
                one_line_error(result.exit_code, result.output, name, message)
        assert not marker.exists() and not (tmp_path / "g.png").exists()


# ----------------------------------------------------------------------------- 12-13. run directory
class TestRunDirectory:
    def test_existing_run_refused_unless_resume_or_overwrite(self, labeled: Path, tmp_path: Path) -> None:
        out = str(tmp_path / "run")
        assert fit_cli(str(labeled), "--out", out)[0] == 0
        before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
        one_line_error(*fit_cli(str(labeled), "--out", out), "already holds a run", "--resume", "--overwrite")
        assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
        assert fit_cli(str(labeled), "--out", out, "--overwrite")[0] == 0

    @pytest.mark.parametrize("failure", ["disk full", "unwritable"])
    def test_failed_checkpoint_write_keeps_the_previous(
        self, labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
    ) -> None:
        out = tmp_path / "run"
        fit(labeled, None, out, tiny_config(steps=2), device="cpu", quiet=True)
        good = load_checkpoint(out)
        import gan_augment.io.atomic as ck

        if failure == "disk full":  # the disk fills up while the checkpoint is being written

            def save(obj: object, f: io.BufferedWriter) -> None:
                f.write(b"PK\x03\x04 partial")
                raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(ck.torch, "save", save)
            expected = ("could not write the checkpoint", "No space left on device", "previous checkpoint is intact")
        else:  # the run directory became read-only

            def mkstemp(*a: object, **k: object) -> None:
                raise PermissionError(errno.EACCES, "Permission denied", str(out))

            monkeypatch.setattr(ck.tempfile, "mkstemp", mkstemp)
            expected = ("Permission denied", str(out), "intact")
        code, output = fit_cli(str(labeled), "--out", str(out), "--resume", "--steps", "4")
        one_line_error(code, output, *expected)
        monkeypatch.undo()
        kept = load_checkpoint(out)
        assert kept["step"] == good["step"] == 2
        assert torch.equal(kept["models"][0]["g"]["fc.weight"], good["models"][0]["g"]["fc.weight"])
        assert not list(out.glob(".*.tmp"))  # no temporary file left behind


# ----------------------------------------------------------------------------- faults during training
def _start(labeled: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "gan_augment.cli",
        "fit",
        str(labeled),
        "--out",
        str(out),
        "--image-size",
        "16",
        "--batch-size",
        "4",
        "--g-width",
        "8",
        "--d-width",
        "8",
        "--z-dim",
        "8",
        "--device",
        "cpu",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _wait_for(predicate, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    t0 = time.time()
    while not predicate():
        if time.time() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _metrics_rows(out: Path) -> int:
    p = out / "metrics.jsonl"
    return len(p.read_text().splitlines()) if p.is_file() else 0


@pytest.mark.slow  # a training subprocess, signalled
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_signal_writes_a_checkpoint_and_says_how_to_resume(labeled: Path, tmp_path: Path, sig: int, code: int) -> None:
    out = tmp_path / "run"
    proc = _start(labeled, out, "--steps", "100000", "--checkpoint-every", "100000", "--sample-every", "100000")
    _wait_for(lambda: _metrics_rows(out) >= 1)  # 50 steps done (the default --log-every)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, output
    assert "--resume" in output and "Traceback" not in output
    step = load_checkpoint(out)["step"]
    assert 3 <= step < 100000
    resumed = runner.invoke(
        app,
        ["fit", str(labeled), "--out", str(out), "--resume", "--steps", str(step + 2), "--quiet", "--device", "cpu"],
    )
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(out)["step"] == step + 2


@pytest.mark.slow  # a training subprocess, killed
def test_kill_9_then_resume(labeled: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start(labeled, out, "--steps", "100000", "--checkpoint-every", "3", "--sample-every", "100000", "--quiet")

    def saved_past_start() -> bool:
        try:
            return load_checkpoint(out)["step"] >= 3
        except Exception:
            return False

    _wait_for(saved_past_start)
    time.sleep(float(np.random.default_rng().uniform(0, 0.5)))  # a random moment, perhaps mid-write
    proc.kill()
    proc.wait(timeout=60)
    step = load_checkpoint(out)["step"]  # atomic writes: the last complete checkpoint
    assert step >= 3 and step % 3 == 0
    resumed = runner.invoke(
        app,
        ["fit", str(labeled), "--out", str(out), "--resume", "--steps", str(step + 3), "--quiet", "--device", "cpu"],
    )
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(out)["step"] == step + 3
    assert not list(out.glob(".*.tmp"))


class TestDivergence:
    def _events(self, out: Path) -> list[dict[str, object]]:
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return [r for r in rows if "event" in r]

    def test_nan_rolls_back_with_lower_learning_rate(
        self, labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        step = Trainer.train_step
        poisoned = []

        def train_step(self: Trainer) -> dict[str, torch.Tensor]:
            stats = step(self)
            if self.state.step == 7 and not poisoned:  # once: a weight goes NaN (as after an overflow)
                poisoned.append(True)
                with torch.no_grad():
                    next(self.pair.d.parameters()).view(-1)[0] = float("nan")
            return stats

        monkeypatch.setattr(Trainer, "train_step", train_step)
        cfg = tiny_config(steps=20, checkpoint_every=5, sample_every=100, log_every=100)
        fit(labeled, None, tmp_path / "run", cfg, device="cpu", quiet=True)
        events = self._events(tmp_path / "run")
        assert [e["event"] for e in events] == ["rollback"]
        assert events[0]["step"] <= 10 and events[0]["to_step"] == 5  # caught within a few steps
        ckpt = load_checkpoint(tmp_path / "run")
        assert ckpt["step"] == 20 and ckpt["train_state"]["lr_d"] == pytest.approx(cfg.lr_d / 2)
        assert ckpt["config"]["lr_d"] == cfg.lr_d  # the configuration as given; the change is training state
        assert all(
            torch.isfinite(v).all()
            for m in ckpt["models"]
            for part in ("g", "d")
            for v in m[part].values()
            if v.is_floating_point()
        )

    def test_endless_nan_stops_with_the_last_good_checkpoint(
        self, labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        step = Trainer.train_step

        def train_step(self: Trainer) -> dict[str, torch.Tensor]:
            stats = step(self)
            if self.state.step >= 6:
                stats["loss_g"] = torch.tensor(float("nan"))
            return stats

        monkeypatch.setattr(Trainer, "train_step", train_step)
        code, out = fit_cli(
            str(tiny_folder := write_folder(tmp_path / "lab", ["a", "b"], [3, 3])),
            "--out",
            str(tmp_path / "run"),
            "--steps",
            "30",
            "--checkpoint-every",
            "5",
        )
        one_line_error(code, out, "diverged at step", "roll-backs", "intact")
        assert tiny_folder.is_dir()
        ckpt = load_checkpoint(tmp_path / "run")
        assert ckpt["step"] == 5 and len(self._events(tmp_path / "run")) == 3

    def test_collapsed_discriminator_counts_as_divergence(
        self, labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        step = Trainer.train_step

        def train_step(self: Trainer) -> dict[str, torch.Tensor]:
            stats = step(self)
            if self.state.step > 10:
                stats["loss_d"] = torch.tensor(0.0)
            return stats

        monkeypatch.setattr(Trainer, "train_step", train_step)
        cfg = tiny_config(
            steps=60, checkpoint_every=10, sample_every=100, log_every=100, collapse_steps=20, max_rollbacks=1
        )
        with pytest.raises(GanAugmentError, match="discriminator loss below 1e-3"):
            fit(labeled, None, tmp_path / "run", cfg, device="cpu", quiet=True)
        events = self._events(tmp_path / "run")
        assert events and "discriminator loss" in str(events[0]["reason"])


class TestOutOfMemory:
    def test_retries_at_half_the_batch(self, labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        step = Trainer.train_step

        def train_step(self: Trainer) -> dict[str, torch.Tensor]:
            if self.state.batch_size > 4:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return step(self)

        monkeypatch.setattr(Trainer, "train_step", train_step)
        fit(labeled, None, tmp_path / "run", tiny_config(steps=3, batch_size=16), device="cpu", quiet=True)
        ckpt = load_checkpoint(tmp_path / "run")
        assert ckpt["step"] == 3 and ckpt["train_state"]["batch_size"] == 4 and ckpt["config"]["batch_size"] == 16
        rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        assert [r["batch_size"] for r in rows if r.get("event") == "oom"] == [8, 4]

    def test_gives_up_with_a_batch_size_to_try(
        self, labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def train_step(self: Trainer) -> dict[str, torch.Tensor]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

        monkeypatch.setattr(Trainer, "train_step", train_step)
        code, out = fit_cli(str(labeled), "--out", str(tmp_path / "run"), "--batch-size", "4")
        one_line_error(code, out, "out of GPU memory", "--batch-size 2")


# ----------------------------------------------------------------------------- the decode cache
def test_cache_follows_changed_and_removed_files(labeled: Path, private_cache: Path) -> None:
    first = load_image_data(labeled, image_size=16)
    (labeled / "class_0" / "img_000.png").unlink()
    second = load_image_data(labeled, image_size=16)
    assert not second.from_cache and len(second.labels) == len(first.labels) - 1
    for f in private_cache.glob("*/*.pt"):
        f.write_bytes(f.read_bytes()[:100])  # truncated cache entry
    third = load_image_data(labeled, image_size=16)
    assert not third.from_cache and torch.equal(third.images, second.images)
    assert load_image_data(labeled, image_size=16).from_cache  # rebuilt, then used
