"""Issue 14, item 6: `gan-augment report` writes one self-contained HTML page for a run or an
evaluation, and it renders, images included, in a real browser (headless Chromium, where installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gan_augment.cli import app

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def report(source: Path, out: Path) -> str:
    result = CliRunner().invoke(app, ["report", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_text()


def images_loaded_in_chromium(page: Path) -> tuple[int, int]:
    """(images on the page, images the browser decoded), from Chromium's DOM after load."""
    probe = page.with_name("probe.html")
    script = (
        "<script>addEventListener('load',()=>{const i=[...document.images];"
        "document.body.dataset.shown=i.length+'/'+i.filter(x=>x.complete&&x.naturalWidth>0).length})</script>"
    )
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--dump-dom"]
    dom = subprocess.run([*args, probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    total, loaded = re.search(r'data-shown="(\d+)/(\d+)"', dom).groups()  # type: ignore[union-attr]
    return int(total), int(loaded)


def test_run_report_is_self_contained(trained: dict[str, Path], tmp_path: Path) -> None:
    page = report(trained["with-pool"], tmp_path / "run.html")
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page)  # nothing fetched
    grids = sorted((trained["with-pool"] / "samples").glob("step_*.png"))
    # the grids, the curves, and a strip of samples per class
    assert page.count('<img src="data:image/png;base64,') == len(grids) + 1 + 2
    for text in ("per-class", "dark, light", "Losses and D(x)", "step 4", "dark: 5 labeled", "light: 7 labeled"):
        assert text in page
    assert "Imbalanced" not in page  # 7 to 5


def test_run_report_says_an_imbalance(tmp_path: Path) -> None:
    from conftest import tiny_config, write_folder

    from gan_augment import fit

    labeled = write_folder(tmp_path / "labeled", ["many", "few"], [9, 2])
    fit(labeled, None, tmp_path / "run", tiny_config(steps=1), device="cpu", quiet=True)
    page = report(tmp_path / "run", tmp_path / "run.html")
    assert "Imbalanced: the largest class has 4 times" in page and "few: 2 labeled" in page
    assert "<td>many</td><td>9</td>" in page


def test_evaluation_report_has_the_table_and_the_verdict(tmp_path: Path) -> None:
    folder = tmp_path / "evaluation"
    folder.mkdir()
    summary = [
        {"labels_per_class": 5, "arm": "baseline", "n": 1, "mean": 0.8, "std": 0.0},
        {
            "labels_per_class": 5,
            "arm": "gan-soft",
            "n": 1,
            "mean": 0.83,
            "std": 0.0,
            "gain": 0.03,
            "gain_ci95": float("nan"),
        },
        {"labels_per_class": 5, "arm": "<script>", "n": 1, "mean": 0.5, "std": 0.0},  # names are escaped
    ]
    (folder / "evaluation.json").write_text(json.dumps({"summary": summary, "verdicts": ["a verdict"], "seeds": [0]}))
    page = report(folder, tmp_path / "eval.html")
    assert "Recall per class" not in page
    assert "a verdict" in page and "gan-soft" in page and "+3.0 pts (one seed: no interval)" in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_neither_a_run_nor_an_evaluation(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "neither a run" in result.output and not (tmp_path / "r.html").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium)")
def test_the_page_renders_with_its_images_in_chromium(trained: dict[str, Path], tmp_path: Path) -> None:
    page = tmp_path / "run.html"
    report(trained["with-pool"], page)
    total, loaded = images_loaded_in_chromium(page)
    assert total >= 2 and loaded == total
