"""Issue 30's classes: nothing that mixes results from different data or value ranges, and no file the
package did not write is ever removed. Each test failed on the code before the change."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_CLI, write_folder
from test_reliability import one_line_error, runner
from torch.utils.data import Dataset

from gan_augment import DiscriminatorFeatures, GANAugmentedDataset
from gan_augment.cli import app
from gan_augment.data import load_image_data
from gan_augment.evaluate.stats import binomial_floor, summarize, verdict
from gan_augment.io import load_checkpoint
from gan_augment.io.checkpoint import save_checkpoint
from gan_augment.io.lock import FolderLock
from gan_augment.sampling import check_grid_size


class TensorDataset(Dataset):
    """A user's dataset of ready tensors: (image, label) pairs, or whatever ``item`` makes of them."""

    classes = ["dark", "light"]

    def __init__(self, images: list, labels: list[int], item=None) -> None:
        self.images, self.labels, self.item = images, labels, item

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        pair = (self.images[i], self.labels[i])
        return self.item(*pair) if self.item else pair


def _bases() -> dict[str, TensorDataset]:
    unit = [torch.full((3, 16, 16), v) for v in (0.0, 1.0, 0.0, 1.0)]
    return {
        "0-255 floats": TensorDataset([x * 255 for x in unit], [0, 1, 0, 1]),
        "normalised to [-1, 1]": TensorDataset([x * 2 - 1 for x in unit], [0, 1, 0, 1]),
        "float arrays": TensorDataset([x.permute(1, 2, 0).numpy() for x in unit], [0, 1, 0, 1]),
        "dicts": TensorDataset(unit, [0, 1, 0, 1], item=lambda x, y: {"image": x, "label": y}),
    }


class TestTheDatasetsValueRange:
    @pytest.mark.parametrize("kind", list(_bases()))
    def test_a_base_in_another_range_or_form_is_refused_with_the_fix(self, kind: str, trained: dict[str, Path]) -> None:
        """Real items in [0, 255] or [-1, 1] beside synthetic ones in [0, 1] used to be accepted; dicts gave a
        raw KeyError."""
        with pytest.raises(ValueError, match="transform=|\\(image, label\\) pair"):
            GANAugmentedDataset(_bases()[kind], trained["black-white"], per_class=2, device="cpu")

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_synthetic_items_take_the_bases_dtype_and_range(self, dtype: torch.dtype, trained: dict[str, Path]) -> None:
        base = TensorDataset([torch.full((3, 16, 16), v, dtype=dtype) for v in (0.0, 1.0)], [0, 1])
        ds = GANAugmentedDataset(base, trained["black-white"], per_class=2, device="cpu")
        for i in range(len(ds)):
            image, _ = ds[i]
            assert image.dtype == dtype and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert {float(ds[i][0].mean()) for i in range(ds.n_real, len(ds))} == {0.0, 1.0}


FAST = ["--image-size", "16", "--gan-steps", "2", "--clf-steps", "2", "--g-width", "4", "--d-width", "4",
        "--device", "cpu", "--quiet", "--arms", "baseline"]  # fmt: skip


def _evaluate(labeled: Path, out: Path, *more: str) -> tuple[int, str]:
    result = runner.invoke(app, ["evaluate", str(labeled), "--out", str(out), *FAST, *more])
    return result.exit_code, result.output


@pytest.fixture()
def data(tmp_path: Path) -> tuple[Path, Path]:
    """A labeled folder and a separate test folder of the same two classes."""
    labeled = write_folder(tmp_path / "labeled", ["dark", "light"], [4, 4])
    test = write_folder(tmp_path / "test", ["dark", "light"], [3, 3], seed=7)
    return labeled, test


class TestEvaluateResumeKnowsItsData:
    def test_swapped_test_classes_or_added_labeled_images_are_refused_by_name(
        self, data: tuple[Path, Path], tmp_path: Path
    ) -> None:
        """The journal knew its folders by their path strings: both used to be accepted and averaged in."""
        labeled, test = data
        out = tmp_path / "ev"
        assert _evaluate(labeled, out, "--test-dir", str(test), "--seeds", "1")[0] == 0
        (test / "dark").rename(test / "tmp")
        (test / "light").rename(test / "dark")
        (test / "tmp").rename(test / "light")
        one_line_error(*_evaluate(labeled, out, "--test-dir", str(test), "--seeds", "2", "--resume"), "--test-dir")
        (test / "dark").rename(test / "tmp")
        (test / "light").rename(test / "dark")
        (test / "tmp").rename(test / "light")
        write_folder(tmp_path / "more", ["dark"], [2], seed=9)
        for f in (tmp_path / "more" / "dark").iterdir():
            f.rename(labeled / "dark" / f"more_{f.name}")
        one_line_error(*_evaluate(labeled, out, "--test-dir", str(test), "--seeds", "2", "--resume"), "LABELED")
        assert len(json.loads((out / "evaluation-progress.json").read_text())["records"]) == 1

    def test_the_same_folders_spelled_another_way_resume(
        self, data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        labeled, test = data
        monkeypatch.chdir(tmp_path)
        assert _evaluate(Path("labeled"), tmp_path / "ev", "--test-dir", "test", "--seeds", "1")[0] == 0
        code, output = _evaluate(labeled.resolve(), tmp_path / "ev", "--test-dir", str(test.resolve()), "--seeds", "2",
                                 "--resume")  # fmt: skip
        assert code == 0, output
        assert len(json.loads((tmp_path / "ev" / "evaluation.json").read_text())["runs"]) == 2

    @pytest.mark.parametrize(
        "content",
        [b'{"identity": {}, "records": [{"arm": "baseline", "se', b"\xff\xfe{}", b'{"identity": {}, "records": 3}',
         b"[1, 2]", "accuracy 7.5", "seed as text"],
    )  # fmt: skip
    def test_a_damaged_journal_is_a_one_line_error_never_averaged_in(
        self, content: object, data: tuple[Path, Path], tmp_path: Path
    ) -> None:
        labeled, test = data
        out = tmp_path / "ev"
        assert _evaluate(labeled, out, "--test-dir", str(test), "--seeds", "1")[0] == 0
        journal = out / "evaluation-progress.json"
        if isinstance(content, bytes):
            journal.write_bytes(content)
        else:
            saved = json.loads(journal.read_text())
            if content == "accuracy 7.5":
                saved["records"][0]["accuracy"] = 7.5
            else:
                saved["records"][0]["seed"] = "0"
            journal.write_text(json.dumps(saved))
        one_line_error(*_evaluate(labeled, out, "--test-dir", str(test), "--seeds", "2", "--resume"),
                       "evaluation-progress.json", "--overwrite")  # fmt: skip

    def test_a_second_evaluation_into_the_same_folder_is_refused_while_the_first_runs(
        self, data: tuple[Path, Path], tmp_path: Path
    ) -> None:
        labeled, test = data
        out = tmp_path / "ev"
        with FolderLock(out):  # as a first evaluation holds it
            one_line_error(*_evaluate(labeled, out, "--test-dir", str(test)), "in use by another gan-augment process")
        assert not (out / "evaluation-progress.json").exists()


class TestTheTestFolderIsNotTheTrainingFolder:
    def test_labeled_itself_or_a_copy_as_test_dir_is_refused(self, data: tuple[Path, Path], tmp_path: Path) -> None:
        labeled, _ = data
        one_line_error(*_evaluate(labeled, tmp_path / "ev", "--test-dir", str(labeled)), "--test-dir", "LABELED")
        one_line_error(*_evaluate(labeled, tmp_path / "ev", "--test-dir", str(labeled / "dark")), "--test-dir")
        copy = tmp_path / "copy"
        shutil.copytree(labeled, copy)
        one_line_error(*_evaluate(labeled, tmp_path / "ev", "--test-dir", str(copy)), "equals a LABELED image")
        assert not (tmp_path / "ev").exists()

    def test_copies_among_test_images_are_left_out_with_a_caveat(self, data: tuple[Path, Path], tmp_path: Path) -> None:
        labeled, test = data
        shutil.copy(labeled / "dark" / "img_000.png", test / "dark" / "copied.png")
        code, output = _evaluate(labeled, tmp_path / "ev", "--test-dir", str(test), "--seeds", "1")
        assert code == 0, output
        report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
        assert any("1 test image(s) equal LABELED images" in c for c in report["caveats"])
        assert report["runs"][0]["test_images"] == 6


class TestVerdictsKnowTheTestSetsSize:
    def test_eight_test_images_never_give_a_zero_interval(self) -> None:
        """Two seeds agreeing on 8 test images said "raised accuracy by 50.0 ± 0.0 points"."""
        records = [{"dataset": "d", "labels_per_class": 4, "arm": arm, "seed": s, "accuracy": acc, "test_images": 8}
                   for s in (0, 1) for arm, acc in (("baseline", 0.5), ("teacher", 1.0))]  # fmt: skip
        row = next(r for r in summarize(records) if r["arm"] == "teacher")
        assert row["gain"] == pytest.approx(0.5) and row["gain_ci95"] >= 0.125
        assert row["gain_ci95"] == pytest.approx(binomial_floor(1.0, 0.5, 8))
        close = [{**r, "accuracy": 0.5 + 0.125 * (r["arm"] == "teacher")} for r in records]
        assert "raised" not in verdict(next(r for r in summarize(close) if r["arm"] == "teacher"))


class TestPredictSaysWhatItSkippedAndNeverReplacesItsInput:
    def test_unreadable_images_are_counted(self, trained: dict[str, Path], tmp_path: Path) -> None:
        """11 in, "wrote 8 predictions", and not a word of the other 3."""
        images = tmp_path / "images"
        shutil.copytree(trained["labeled"], images)
        for i in range(3):
            (images / f"broken_{i}.png").write_bytes(b"not a png")
        result = runner.invoke(app, ["predict", str(trained["taught"]), str(images), "--out", str(tmp_path / "p.csv"),
                                     "--device", "cpu"])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "wrote 12 predictions" in result.output and "3 unreadable file(s) skipped" in result.output

    @pytest.mark.parametrize("command", ["predict", "features"])
    def test_out_naming_an_input_image_is_refused_even_with_overwrite(
        self, command: str, trained: dict[str, Path], tmp_path: Path
    ) -> None:
        images = tmp_path / "images"
        shutil.copytree(trained["labeled"], images)
        target = next((images / "dark").iterdir())
        before = target.read_bytes()
        result = runner.invoke(app, [command, str(trained["taught"]), str(images), "--out", str(target), "--overwrite",
                                     "--device", "cpu"])  # fmt: skip
        one_line_error(result.exit_code, result.output, "inside the images folder")
        assert target.read_bytes() == before


def _craft(source: Path, out: Path, name: str, change) -> Path:
    """A copy of the run ``source`` whose file ``name`` is rewritten by ``change(dict)`` (as a hostile user would)."""
    shutil.copytree(source, out)
    state = {k: v for k, v in load_checkpoint(out / name).items() if k not in ("format_version", "package_version")}
    change(state)
    save_checkpoint(state, out / name)
    if "format_version" in state:  # save_checkpoint stamps its own: put the crafted one back
        torch.save({**state}, out / name)
    return out


def _set(**values):
    def change(state: dict) -> None:
        for key, value in values.items():
            where, _, last = key.rpartition("__")
            target = state
            for part in filter(None, where.split("__")):
                target = target[part]
            target[last] = value

    return change


def _many_models(state: dict) -> None:
    state["models"] = state["models"] * 500  # 1,000 models, 2 class names


def _nan_teacher(state: dict) -> None:
    next(iter(state["d"].values())).fill_(float("nan"))


RUN_CRAFTS = {  # checkpoint.pt of a per-class run
    "image size 28,672": _set(image_size=28_672, model_config__image_size=28_672, config__image_size=28_672),
    "image size differs from its model's": _set(image_size=32),
    "1,000 models for 2 classes": _many_models,
    "batch size 10^12": _set(train_state__batch_size=10**12),
    "format version 0": _set(format_version=0),
    "negative total steps": _set(total_steps=-5),
    "integer class names": _set(class_names=[0, 1]),
    "duplicate class names": _set(class_names=["dark", "dark"]),
}
TEACHER_CRAFTS = {  # teacher.pt of a run
    "mlp at image size 500": _set(architecture="mlp", image_size=500),
    "width 100,000": _set(ssl_config__width=100_000),
    "image size 28,672": _set(image_size=28_672),
    "non-finite weights": _nan_teacher,
    "duplicate class names": _set(class_names=["dark", "dark"]),
}


class TestCraftedFilesAreRefusedBeforeAnythingIsAllocated:
    @pytest.mark.parametrize("craft", list(RUN_CRAFTS))
    def test_a_crafted_run_is_one_line_in_info_and_sample(
        self, craft: str, trained: dict[str, Path], tmp_path: Path
    ) -> None:
        run = _craft(trained["per-class"], tmp_path / "run", "checkpoint.pt", RUN_CRAFTS[craft])
        result = runner.invoke(app, ["info", str(run)])
        one_line_error(result.exit_code, result.output, str(run), "gan-augment checkpoint")
        result = runner.invoke(app, ["sample", str(run), "--per-class", "2", "--out-dir", str(tmp_path / "s"),
                                     "--device", "cpu"])  # fmt: skip
        one_line_error(result.exit_code, result.output, str(run), "gan-augment checkpoint")
        assert not (tmp_path / "s").exists()

    @pytest.mark.parametrize("craft", list(TEACHER_CRAFTS))
    def test_a_crafted_teacher_is_one_line_in_predict(
        self, craft: str, trained: dict[str, Path], tmp_path: Path
    ) -> None:
        run = _craft(trained["taught"], tmp_path / "run", "teacher.pt", TEACHER_CRAFTS[craft])
        result = runner.invoke(app, ["predict", str(run), str(trained["labeled"]), "--out", str(tmp_path / "p.csv"),
                                     "--device", "cpu"])  # fmt: skip
        one_line_error(result.exit_code, result.output, "teacher.pt")
        assert not (tmp_path / "p.csv").exists()

    @pytest.mark.slow
    def test_peak_memory_stays_under_2_gb(self, trained: dict[str, Path], tmp_path: Path) -> None:
        """The 170 KB teacher.pt at image size 500 took predict to 3.7 GB; width 100,000 asked for 360 GB;
        a run at image size 28,672 asked sample for 9.9 GB."""
        teacher, run = (trained["taught"], "teacher.pt"), (trained["per-class"], "checkpoint.pt")
        cases = [
            ("predict", _craft(*teacher[:1], tmp_path / "a", teacher[1], TEACHER_CRAFTS["mlp at image size 500"])),
            ("predict", _craft(*teacher[:1], tmp_path / "b", teacher[1], TEACHER_CRAFTS["width 100,000"])),
            ("sample", _craft(*run[:1], tmp_path / "c", run[1], RUN_CRAFTS["image size 28,672"])),
        ]
        for command, folder in cases:
            if command == "predict":
                args = [command, str(folder), str(trained["labeled"]), "--out", str(tmp_path / "p.csv")]
            else:
                args = [command, str(folder), "--per-class", "2", "--out-dir", str(tmp_path / "s")]
            code = (
                "import resource, sys\nfrom gan_augment.cli import main\nsys.argv = ['gan-augment', *sys.argv[1:]]\n"
                "try:\n    main()\nexcept SystemExit as e:\n    rc = e.code\n"
                "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'RC', rc)\n"
            )
            command_line = [sys.executable, "-c", code, *args, "--device", "cpu"]
            done = subprocess.run(command_line, capture_output=True, text=True, timeout=300)
            line = done.stdout.strip().splitlines()[-1].split()
            assert line[0] == "MAXRSS" and line[3] == "2", done.stdout + done.stderr
            assert int(line[1]) < 2 * 2**20, (command, folder.name, int(line[1]) / 2**20, "GiB")  # ru_maxrss: KiB
            assert "Traceback" not in done.stderr and done.stderr.count("Error:") == 1, done.stderr


class TestSmallerThingsThatMisled:
    def test_class_folders_differing_only_in_unicode_normalisation(self, tmp_path: Path) -> None:
        """Two lists that print alike ("['café'] vs ['café']") used to be the whole message."""
        nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
        both = write_folder(tmp_path / "both", [nfc, nfd], [2, 2])
        with pytest.raises(ValueError, match="Unicode normalisation"):
            load_image_data(both, image_size=16)
        labeled = write_folder(tmp_path / "labeled", [nfc, "tea"], [3, 3])
        test = write_folder(tmp_path / "test", [nfd, "tea"], [2, 2], seed=5)
        code, output = _evaluate(labeled, tmp_path / "ev", "--test-dir", str(test))
        one_line_error(code, output, "Unicode normalisation", ascii(nfd))

    def test_features_of_one_colour_image_and_a_zero_batch(self, trained: dict[str, Path]) -> None:
        features = DiscriminatorFeatures(trained["unconditional"]).fit()
        one = np.zeros((16, 16, 3), dtype=np.uint8)  # was read as 16 gray images of 16×3 pixels
        with pytest.raises(ValueError, match="one colour image"):
            features.transform(one)
        assert features.transform(one[None]).shape[0] == 1
        with pytest.raises(ValueError, match="batch_size=0"):  # was "range() arg 3 must not be zero"
            DiscriminatorFeatures(trained["unconditional"], batch_size=0).fit()

    def test_a_grid_too_large_for_even_one_image_a_row_never_suggests_n_0(self) -> None:
        with pytest.raises(ValueError) as err:
            check_grid_size(rows=1000, per_row=4, image_size=1024)
        assert "--n 0" not in str(err.value) and "--per-class" in str(err.value)
        with pytest.raises(ValueError, match="--n 80 or less"):
            check_grid_size(rows=10, per_row=100, image_size=1024)

    def test_an_ssl_teacher_without_unlabeled_images_says_so(self, tmp_path: Path) -> None:
        labeled = write_folder(tmp_path / "labeled", ["a", "b"], [3, 3], channels=1)
        loud = [a for a in TINY_CLI if a != "--quiet"]
        args = ["fit", str(labeled), "--out", str(tmp_path / "run"), *loud, "--steps", "1", "--teacher", "ssl",
                "--teacher-steps", "2", "--channels", "1"]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "no unlabeled image to learn from" in " ".join(result.output.split())

    def test_the_repr_counts_the_items_not_the_pool(self, trained: dict[str, Path]) -> None:
        from torchvision.datasets import ImageFolder

        ds = GANAugmentedDataset(ImageFolder(str(trained["labeled"])), trained["taught"], device="cpu")
        text = repr(ds)
        assert f"extra: {ds.n_extra}" in text and ds.pool is not None and len(ds.pool) > ds.n_extra
        extra = [int(part.split("~")[1]) for part in text.split("Per class (real + extra items): ")[1].split(", ")]
        assert abs(sum(extra) - ds.n_extra) <= len(extra)  # the items, not the pool's images


@pytest.mark.parametrize(
    "content", [b'{"summary": [{"arm": "a", "mean": "x"}]}', b'{"summary": [], "run": [1]}', b"\xff\xfe", b'{"summ']
)
def test_report_on_an_edited_evaluation_is_one_line(content: bytes, data: tuple[Path, Path], tmp_path: Path) -> None:
    labeled, test = data
    out = tmp_path / "ev"
    assert _evaluate(labeled, out, "--test-dir", str(test), "--seeds", "1")[0] == 0
    (out / "evaluation.json").write_bytes(content)
    result = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "r.html")])
    one_line_error(result.exit_code, result.output, "evaluation.json")
