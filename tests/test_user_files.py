"""Issue 19: safe with the user's files, second round. One class of tests per fault class of the
issue (the numbers follow docs/reliability.md, section "Second round"); each failed on the code
before the fix (commit 3a63086).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_CLI, tiny_config, write_folder
from PIL import Image
from test_own_files import snapshot
from test_reliability import fit_cli, one_line_error, runner

from gan_augment import fit
from gan_augment.cli import app
from gan_augment.data import load_image_data
from gan_augment.data.cache import ENTRIES_FOLDER
from gan_augment.io import load_checkpoint
from gan_augment.io.atomic import atomic_write_json
from gan_augment.io.checkpoint import save_checkpoint
from gan_augment.io.lock import LOCK_NAME
from gan_augment.io.outdir import MARKER_NAME

CPU = ["--device", "cpu"]


def run_cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args])
    return result.exit_code, result.output


# ----------------------------------------------------------------------------- 1. every output is ours
class TestEveryOutputIsOurs:
    def test_demo_never_removes_a_data_folder_it_did_not_write(self, tmp_path: Path) -> None:
        """A folder with a data/README.txt of the user's (the old test of "a demo folder") is refused;
        the user's data/ stays byte for byte (it used to be removed with shutil.rmtree)."""
        out = tmp_path / "project"
        (out / "data" / "photos").mkdir(parents=True)
        (out / "data" / "README.txt").write_text("my dataset's readme")
        (out / "data" / "photos" / "cat.jpg").write_bytes(b"my cat")
        before = snapshot(out)
        code, output = run_cli("demo", "--out", str(out), "--steps", "1", "--teacher-steps", "2", "--quiet", *CPU)
        one_line_error(code, output, "not a demo folder")
        assert snapshot(out) == before

    @pytest.mark.slow
    def test_demo_rerun_keeps_the_users_files_inside_its_folders(self, tmp_path: Path) -> None:
        out = tmp_path / "demo"
        args = (
            "demo",
            "--out",
            str(out),
            "--steps",
            "1",
            "--teacher-steps",
            "2",
            "--labels-per-class",
            "2",
            "--quiet",
            *CPU,
        )
        assert run_cli(*args)[0] == 0
        mine = {out / "data" / "labeled" / "0" / "my_zero.png": b"mine", out / "data" / "notes.txt": b"notes"}
        for path, data in mine.items():
            path.write_bytes(data)
        code, output = run_cli(*args)
        assert code == 0, output
        assert all(path.read_bytes() == data for path, data in mine.items())
        assert (out / "run" / "checkpoint.pt").is_file()

    def test_classify_never_replaces_a_run_in_its_gan_folder(
        self, trained: dict[str, Path], folders: tuple[Path, Path], tmp_path: Path
    ) -> None:
        """A fit run at OUT/gan (not part of a classifier there) is refused, with or without
        --overwrite, before any work (it used to be replaced by classify's own GAN)."""
        out = tmp_path / "cls"
        (out / "gan").mkdir(parents=True)
        for f in ("checkpoint.pt", "config.json", MARKER_NAME):
            (out / "gan" / f).write_bytes((trained["unconditional"] / f).read_bytes())
        before = snapshot(out)
        labeled, unlabeled = map(str, folders)
        for extra in ([], ["--overwrite"]):
            code, output = run_cli("classify", labeled, unlabeled, "--out", str(out), "--steps", "2",
                                   "--image-size", "16", "--quiet", *CPU, *extra)  # fmt: skip
            one_line_error(code, output, "gan", "not part of")
            assert snapshot(out) == before

    def test_evaluate_never_replaces_the_users_report_files(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        out = tmp_path / "evaluation"
        out.mkdir()
        (out / "evaluation.md").write_text("my own notes")
        (out / "evaluation.png").write_bytes(b"my own plot")
        before = snapshot(out)
        for extra in ([], ["--overwrite"]):
            code, output = run_cli("evaluate", str(folders[0]), "--out", str(out), "--seeds", "1", "--gan-steps", "1",
                                   "--clf-steps", "1", "--image-size", "16", "--quiet", *CPU, *extra)  # fmt: skip
            one_line_error(code, output, "evaluation.md", "never replaced")
            assert snapshot(out) == before


# ----------------------------------------------------------------------------- 2. never through a link
class TestNothingIsWrittenThroughALink:
    @pytest.mark.parametrize("name", ["metrics.jsonl", LOCK_NAME, "samples"])
    def test_a_link_inside_a_run_is_refused_and_its_target_untouched(
        self, name: str, labeled: Path, tmp_path: Path
    ) -> None:
        """metrics.jsonl (appended), the lock file (truncated to hold a pid) and samples/ (grids written
        into it) linked to the user's files: the run refuses, naming the file; the targets keep their bytes."""
        run = tmp_path / "run"
        assert fit_cli(str(labeled), "--out", str(run))[0] == 0
        target = tmp_path / "precious"
        if name == "samples":
            target.mkdir()
            (target / "photo.png").write_bytes(b"holiday")
            for grid in (run / "samples").iterdir():
                grid.unlink()
            (run / "samples").rmdir()
        else:
            target.write_bytes(b"the user's precious file\n")
            (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(target)
        before = snapshot(target) if target.is_dir() else target.read_bytes()
        for extra in (["--resume", "--steps", "4"], ["--overwrite"]):
            code, output = fit_cli(str(labeled), "--out", str(run), *extra)
            one_line_error(code, output, name, "link")
            assert (snapshot(target) if target.is_dir() else target.read_bytes()) == before

    @pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
    def test_appending_never_opens_a_fifo_or_follows_a_link(self, tmp_path: Path) -> None:
        """The one append primitive refuses at once (opening a FIFO for writing used to hang)."""
        from gan_augment.errors import WriteError
        from gan_augment.io.atomic import open_append

        os.mkfifo(tmp_path / "fifo")
        (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
        for name, what in (("fifo", "not a plain file"), ("link", "symbolic link")):
            with pytest.raises(WriteError, match=what):
                with open_append(tmp_path / name) as f:
                    f.write(b"x")
        assert not (tmp_path / "elsewhere").exists()


# ----------------------------------------------------------------------------- 3. runs and data apart
class TestRunsAndDataNeverMix:
    def test_a_run_inside_labeled_is_refused_before_anything_is_written(self, labeled: Path) -> None:
        before = snapshot(labeled)
        code, output = fit_cli(str(labeled), "--out", str(labeled / "run"))
        one_line_error(code, output, "inside the LABELED folder")
        assert snapshot(labeled) == before and not (labeled / "run").exists()

    @pytest.mark.parametrize("where", ["labeled", "unlabeled"])
    def test_a_data_folder_inside_the_run_is_refused(self, where: str, tmp_path: Path) -> None:
        run = tmp_path / "run"
        lab = write_folder(run / "labeled" if where == "labeled" else tmp_path / "lab", ["a", "b"], [3, 3])
        pool = write_folder(run / "pool" if where == "unlabeled" else tmp_path / "pool", ["x"], [3], seed=1)
        code, output = fit_cli(str(lab), str(pool), "--out", str(run))
        one_line_error(code, output, "is inside --out", where.upper())

    def test_a_run_inside_unlabeled_never_trains_on_its_grids_and_resumes(self, labeled: Path, tmp_path: Path) -> None:
        pool = write_folder(tmp_path / "pool", ["any"], [4], seed=3)
        run = pool / "runs" / "mine"
        assert fit_cli(str(labeled), str(pool), "--out", str(run))[0] == 0
        assert len(list((run / "samples").glob("*.png"))) >= 1
        code, output = fit_cli(str(labeled), str(pool), "--out", str(run), "--resume", "--steps", "4")
        assert code == 0, output  # the grids were not taken for new unlabeled images ("the images differ")
        ckpt = load_checkpoint(run)
        assert ckpt["step"] == 4 + ckpt["pretrain_steps"] and ckpt["data"]["num_unlabeled"] == 4

    def test_sample_folders_in_a_pool_are_never_read_as_images(self, trained: dict[str, Path], tmp_path: Path) -> None:
        pool = write_folder(tmp_path / "pool", ["any"], [3], seed=3)
        code, output = run_cli("sample", str(trained["per-class"]), "--per-class", "2", "--out-dir",
                               str(pool / "synthetic"), *CPU)  # fmt: skip
        assert code == 0, output
        data = load_image_data(trained["labeled"], pool, image_size=16)
        assert data.num_unlabeled == 3 and any("output folder" in n for n in data.notes)

    def test_labeled_images_inside_the_pool_are_left_out_and_said(self, tmp_path: Path) -> None:
        root = tmp_path / "everything"
        lab = write_folder(root / "labeled", ["a", "b"], [3, 3])
        write_folder(root / "more", ["x"], [2], seed=5)
        data = load_image_data(lab, root, image_size=16)
        assert data.num_unlabeled == 2 and any("labeled images are not taken" in n for n in data.notes)

    def test_evaluate_never_puts_held_out_images_in_the_pool(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        """A pool that holds copies of the labeled images (say, the labeled folder inside it): every
        copy is left out, for any split, and the report's caveats say so."""
        labeled = folders[0]
        pool = tmp_path / "pool"
        pool.mkdir()
        for p in labeled.rglob("*.png"):
            (pool / f"{p.parent.name}_{p.name}").write_bytes(p.read_bytes())
        write_folder(pool / "own", ["x"], [2], seed=7)
        args = ["--arms", "pseudo-balance-la", "--seeds", "1", "--clf-steps", "1", "--image-size", "16", *CPU]
        code, output = run_cli("evaluate", str(labeled), str(pool), "--out", str(tmp_path / "ev"), *args)
        assert code == 0, output
        report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
        assert any("12 unlabeled image(s) equal labeled ones" in c for c in report["caveats"])

    def test_without_copies_drops_exactly_the_copies(self) -> None:
        from gan_augment.data import without_copies

        g = torch.Generator().manual_seed(0)
        ref = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8, generator=g)
        own = torch.randint(0, 256, (3, 3, 4, 4), dtype=torch.uint8, generator=g)
        kept, dropped = without_copies(torch.cat([own[:2], ref[1:3], own[2:]]), ref)
        assert dropped == 2 and torch.equal(kept, own)


# ----------------------------------------------------------------------------- 4. interrupted output
class TestInterruptedOutputNeverLooksComplete:
    def test_a_killed_per_class_set_is_not_an_image_folder_and_the_rerun_cleans_up(
        self, trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from torchvision.datasets import ImageFolder

        import gan_augment.sampling as sampling

        real, written = sampling.save_image_atomic, []

        def dies_midway(image: Image.Image, path: Path) -> None:
            if len(written) == 3:  # class 0 complete, class 1 begun: a kill here
                raise KeyboardInterrupt
            written.append(path)
            real(image, path)

        out = tmp_path / "synthetic"
        monkeypatch.setattr(sampling, "save_image_atomic", dies_midway)
        runner.invoke(app, ["sample", str(trained["per-class"]), "--per-class", "2", "--out-dir", str(out), *CPU])
        with pytest.raises((FileNotFoundError, RuntimeError)):
            ImageFolder(str(out))  # nothing there loads as a set with a class missing
        assert [p.name for p in tmp_path.glob(".synthetic.incomplete-*")]  # visibly incomplete
        monkeypatch.setattr(sampling, "save_image_atomic", real)
        code, output = run_cli("sample", str(trained["per-class"]), "--per-class", "2", "--out-dir", str(out), *CPU)
        assert code == 0 and "removed" in output and "incomplete" in output, output
        assert len(ImageFolder(str(out))) == 4 and not list(tmp_path.glob(".synthetic.incomplete-*"))


# ----------------------------------------------------------------------------- 5. names are data
def doctored_run(trained: dict[str, Path], tmp_path: Path, names: list[str]) -> Path:
    ckpt = load_checkpoint(trained["per-class"])
    ckpt["class_names"] = names
    run = tmp_path / "doctored"
    run.mkdir()
    save_checkpoint({k: v for k, v in ckpt.items() if k not in ("format_version", "package_version")},
                    run / "checkpoint.pt")  # fmt: skip
    return run


class TestNamesAreData:
    NAMES = ["new\nline", "\x1b[31mred\x1b[0m"]

    def test_control_characters_in_class_names_train_sample_and_report(self, tmp_path: Path) -> None:
        """Sample grids used to crash ("can't measure length of multiline text") before the first
        grid; the terminal got raw escape sequences."""
        lab = write_folder(tmp_path / "lab", self.NAMES, [3, 3])
        run = tmp_path / "run"
        code, output = fit_cli(str(lab), "--out", str(run))
        assert code == 0, output
        assert load_checkpoint(run)["class_names"] == sorted(self.NAMES)
        assert [p.name for p in (run / "samples").iterdir()] == ["step_000002.png"]  # to the last step
        for args in (["info", str(run)], ["sample", str(run), "--n", "4", "--out", str(tmp_path / "g.png"), *CPU],
                     ["report", str(run), "--out", str(tmp_path / "r.html")]):  # fmt: skip
            code, output = run_cli(*args)
            assert code == 0 and "\x1b" not in output, output
        assert "\x1b" not in (tmp_path / "r.html").read_text() and "\\x1b[31mred" in (tmp_path / "r.html").read_text()

    def test_names_never_collide_with_the_packages_files_or_pass_name_limits(
        self, trained: dict[str, Path], tmp_path: Path
    ) -> None:
        run = doctored_run(trained, tmp_path, ["class_names.json", "\U0001f600" * 100])
        out = tmp_path / "syn"
        code, output = run_cli("sample", str(run), "--per-class", "1", "--out-dir", str(out), *CPU)
        assert code == 0, output
        mapping = json.loads((out / "class_names.json").read_text())
        assert sorted(mapping.values()) == sorted(["class_names.json", "\U0001f600" * 100])
        assert all(len(os.fsencode(name)) <= 255 and (out / name).is_dir() for name in mapping)

    def test_printable(self) -> None:
        from gan_augment.progress import printable

        assert printable("a\nb\x1b[0m\t\u202e") == "a\\nb\\x1b[0m\\t\\u202e"
        assert printable("a\nb", newlines=True) == "a\nb" and printable(os.fsdecode(b"caf\xe9")) == "caf\\xe9"


# ----------------------------------------------------------------------------- 6. bounded memory
class TestBoundedMemory:
    def test_recalibration_follows_the_runs_batch(
        self, labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import gan_augment.train.trainer as trainer_module

        real, seen = trainer_module.recalibrate_batchnorm, []

        def spy(g: torch.nn.Module, *args: object, **kwargs: object) -> None:
            hook = g.register_forward_pre_hook(lambda m, inputs: seen.append(int(inputs[0].shape[0])))
            try:
                real(g, *args, **kwargs)  # type: ignore[arg-type]
            finally:
                hook.remove()

        monkeypatch.setattr(trainer_module, "recalibrate_batchnorm", spy)
        fit(labeled, None, tmp_path / "run", tiny_config(batch_size=4), device="cpu", quiet=True)
        assert seen and max(seen) == 4  # it used to draw 256 at a time, whatever --batch-size said

    def test_predict_and_features_stream_the_folder(
        self, trained: dict[str, Path], folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import gan_augment.data.decode as decode

        real, sizes = decode.decode_files, []

        def spy(files: list[Path], *args: object, **kwargs: object) -> list[object]:
            sizes.append(len(files))
            return real(files, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(decode, "decode_files", spy)
        monkeypatch.setattr(decode, "STREAM_CHUNK", 5)
        code, output = run_cli("features", str(trained["unconditional"]), str(folders[0]), "--out",
                               str(tmp_path / "f.npz"), *CPU)  # fmt: skip
        assert code == 0, output
        feats = np.load(tmp_path / "f.npz")
        assert sizes and max(sizes) <= 5 and feats["features"].shape[0] == 12 == len(feats["labels"])
        assert list(feats["labels"]) == [0] * 6 + [1] * 6

    def test_the_decode_cache_is_bounded(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        cache = Path(os.environ["GAN_AUGMENT_CACHE"])
        monkeypatch.setenv("GAN_AUGMENT_CACHE_MAX_GB", str(1e-9))  # room for the newest entry only
        (cache / "mine.txt").parent.mkdir(parents=True, exist_ok=True)
        (cache / "mine.txt").write_text("not the cache's")
        for i in range(3):
            load_image_data(write_folder(tmp_path / f"lab{i}", ["a"], [2], seed=i), image_size=16)
        entries = [p.name for p in (cache / ENTRIES_FOLDER).iterdir()]
        assert len([e for e in entries if e.endswith(".pt")]) == 1 and (cache / "mine.txt").is_file()

    @pytest.mark.parametrize("where", ["cache folder", "entries folder"])
    def test_the_decode_cache_never_removes_a_file_named_like_an_entry(
        self, where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A user's ``<32 hex digits>.pt`` in a shared cache folder (or even among the entries) is not the
        cache's: eviction judged by the name alone used to delete it."""
        cache = tmp_path / "shared-cache"
        monkeypatch.setenv("GAN_AUGMENT_CACHE", str(cache))
        monkeypatch.setenv("GAN_AUGMENT_CACHE_MAX_GB", "0")
        folder = cache / ENTRIES_FOLDER if where == "entries folder" else cache
        folder.mkdir(parents=True)
        users = [folder / "0123456789abcdef0123456789abcdef.pt", folder / "fedcba9876543210fedcba9876543210.pt"]
        users[0].write_bytes(b"a user's model" * 100)
        torch.save({"key": "not-its-name", "format": 4, "weights": torch.zeros(1000)}, users[1])
        before = [p.read_bytes() for p in users]
        for i in range(2):
            load_image_data(write_folder(tmp_path / f"lab{i}", ["a"], [2], seed=i), image_size=16)
        assert [p.read_bytes() for p in users] == before
        ours = [p for p in (cache / ENTRIES_FOLDER).glob("*.pt") if p not in users]
        assert len(ours) == 1  # its own older entry did go

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"per_class": float("nan")}, "per_class"),
            ({"per_class": True}, "per_class"),
            ({"synthetic_ratio": float("nan")}, "synthetic_ratio"),
            ({"batch_size": 0}, "batch_size"),
            ({"per_class": 30_000_000}, "GiB"),
            ({"per_class": 1_000_000}, "more than 1,000,000"),  # passed the pixel count, then ran out of memory
            ({"synthetic_ratio": 0.999999}, "GiB"),  # 12 million images: did not finish in 5 minutes
        ],
    )
    def test_dataset_sizing_is_checked_before_anything_is_drawn(
        self, kwargs: dict[str, object], match: str, trained: dict[str, Path]
    ) -> None:
        from torchvision.datasets import ImageFolder

        from gan_augment import GANAugmentedDataset

        with pytest.raises(ValueError, match=match):
            GANAugmentedDataset(ImageFolder(str(trained["labeled"])), trained["per-class"], device="cpu", **kwargs)


# ----------------------------------------------------------------------------- 7. plug-in inputs
class TestPluginInputsAreChecked:
    def test_a_teacher_of_another_width_is_refused(self, trained: dict[str, Path]) -> None:
        from torchvision.datasets import ImageFolder

        from gan_augment import GANAugmentedDataset
        from gan_augment.errors import GanAugmentError

        wide = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10))  # 10 logits for 2 classes
        with pytest.raises(GanAugmentError, match="10 logits per image.*2 classes"):
            GANAugmentedDataset(ImageFolder(str(trained["labeled"])), trained["per-class"], teacher=wide, device="cpu")

    @pytest.mark.parametrize("form", ["pil-gray", "tensor-rgb", "array-plain"])
    def test_synthetic_swap_gives_the_replaced_images_size_and_channels(
        self, form: str, trained: dict[str, Path]
    ) -> None:
        from gan_augment import SyntheticSwap

        swap = SyntheticSwap(trained["per-class"], p=1.0, classes=["dark", "light"], bank_per_class=2, device="cpu")
        ref = {
            "pil-gray": Image.new("L", (28, 20)),
            "tensor-rgb": torch.zeros(3, 40, 40, dtype=torch.uint8),
            "array-plain": np.zeros((24, 24), dtype=np.uint8),
        }[form]
        image, label = swap(ref, 1)
        assert label == 1 and type(image) is type(ref)
        if isinstance(ref, Image.Image):
            assert image.size == ref.size and image.mode == "L"
        else:
            assert tuple(image.shape) == tuple(ref.shape) and image.dtype == ref.dtype


# ----------------------------------------------------------------------------- 8. outputs others read
class TestOutputsOtherProgramsRead:
    def test_json_is_strict(self, tmp_path: Path) -> None:
        atomic_write_json(tmp_path / "x.json", {"gain_ci95": float("nan"), "rows": [math.inf, 1.0]})

        def refuse(constant: str) -> None:
            raise ValueError(constant)

        assert json.loads((tmp_path / "x.json").read_text(), parse_constant=refuse) == {
            "gain_ci95": None,
            "rows": [None, 1.0],
        }

    def test_csv_cells_never_run_as_formulas(
        self, tmp_path: Path, folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from gan_augment.classify import classify

        classify(folders[0], folders[1], tmp_path / "cls", "features", tiny_config(steps=2), device="cpu", quiet=True)
        images = tmp_path / "=HYPERLINK(evil)"
        images.mkdir()
        (images / "@SUM(1).png").write_bytes(next(folders[0].rglob("*.png")).read_bytes())
        monkeypatch.chdir(tmp_path)  # relative paths in the CSV: the first cell starts with "="
        code, output = run_cli("predict", "cls", images.name, "--out", "p.csv", *CPU)
        assert code == 0, output
        cell = (tmp_path / "p.csv").read_text().splitlines()[1].split(",")[0]
        assert cell.startswith("'=HYPERLINK(evil)") and cell.endswith("@SUM(1).png")

    def test_a_malformed_metrics_line_is_skipped_with_a_warning(self, tiny_run: Path, tmp_path: Path) -> None:
        with open(tiny_run / "metrics.jsonl", "a") as f:
            f.write('{"step": 3, "loss_d": 0.5\n')  # cut short
        code, output = run_cli("report", str(tiny_run), "--out", str(tmp_path / "r.html"))
        assert code == 0 and "metrics.jsonl" in output and "line" in output and "skipped" in output, output

    def test_sample_grids_are_named_with_ascii_digits_only(self, labeled: Path, tmp_path: Path) -> None:
        """``step_١٢٣٤٥٦.png`` (Arabic-Indic digits) is the user's, not a grid: --overwrite keeps it."""
        run = tmp_path / "run"
        assert fit_cli(str(labeled), "--out", str(run))[0] == 0
        mine = run / "samples" / "step_\u0661\u0662\u0663\u0664\u0665\u0666.png"
        mine.write_bytes(b"mine")
        assert fit_cli(str(labeled), "--out", str(run), "--overwrite")[0] == 0
        assert mine.read_bytes() == b"mine"


# ----------------------------------------------------------------------------- 9. caches are right
def test_a_file_changed_with_its_size_and_mtime_kept_is_decoded_again(tmp_path: Path) -> None:
    """Uncompressed PNGs of one size: the rewrite keeps the file's size, and its mtime is set back."""
    for name in ("a", "b"):
        (tmp_path / "lab" / name).mkdir(parents=True)
    path = tmp_path / "lab" / "a" / "x.png"
    gradient = np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1))
    Image.fromarray(gradient).save(path, compress_level=0)
    Image.fromarray(gradient.T).save(tmp_path / "lab" / "b" / "y.png", compress_level=0)
    first = load_image_data(tmp_path / "lab", image_size=16)
    st = path.stat()
    Image.fromarray(255 - gradient).save(path, compress_level=0)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    second = load_image_data(tmp_path / "lab", image_size=16)
    assert torch.equal(second.images[0], 255 - first.images[0])


# ----------------------------------------------------------------------------- 10. --resume options
class TestResumeWithOtherOptions:
    def test_an_option_that_differs_from_the_runs_is_refused_by_name(self, labeled: Path, tmp_path: Path) -> None:
        run = tmp_path / "run"
        assert fit_cli(str(labeled), "--out", str(run))[0] == 0
        before = snapshot(run)
        code, output = fit_cli(str(labeled), "--out", str(run), "--resume", "--steps", "4", "--lr-g", "0.001")
        one_line_error(code, output, "--lr-g", "0.001", "0.0002", "only --steps")
        assert snapshot(run) == before
        code, output = runner.invoke(app, ["fit", str(labeled), "--out", str(run), "--resume", "--steps", "4",
                                           *TINY_CLI]).exit_code, ""  # fmt: skip
        assert code == 0  # the run's own values given again are fine
        assert load_checkpoint(run)["step"] == 4

    def test_python_names_what_it_ignores(self, labeled: Path, tmp_path: Path) -> None:
        run = tmp_path / "run"
        fit(labeled, None, run, tiny_config(steps=2), device="cpu", quiet=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit(labeled, None, run, tiny_config(steps=3, lr_d=0.05), device="cpu", quiet=True, resume=True)
        assert any("lr_d=0.05" in str(w.message) for w in caught)
        assert load_checkpoint(run)["config"]["lr_d"] != 0.05 and load_checkpoint(run)["step"] == 3
