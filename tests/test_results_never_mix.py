"""Issue 30's classes: nothing that mixes results from different data or value ranges, and no file the
package did not write is ever removed. Each test failed on the code before the change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import write_folder
from test_reliability import one_line_error, runner
from torch.utils.data import Dataset

from gan_augment import GANAugmentedDataset
from gan_augment.cli import app
from gan_augment.evaluate.stats import binomial_floor, summarize, verdict
from gan_augment.io.lock import FolderLock


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
