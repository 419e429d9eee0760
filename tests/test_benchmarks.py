"""The benchmark scripts end to end on tiny inputs (their code paths, not their numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import lab_arms  # noqa: F401  (the benchmark's arms: the package's and the experiments')
import pytest
from conftest import write_folder

from gan_augment.evaluate import arm_names

pytestmark = pytest.mark.slow  # the benchmark scripts in subprocesses


def test_throughput_benchmark_quick(tmp_path: Path) -> None:
    """The benchmark's code path end to end on the CPU: a well-formed JSON and table (numbers not checked)."""
    import json
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"
    md = tmp_path / "performance.md"
    md.write_text("# Performance\n\nprose kept\n")
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--quick",
            "--device",
            "cpu",
            "--json",
            str(tmp_path / "t.json"),
            "--markdown",
            str(md),
            "--compile",
            "default",
            "--compile-backend",
            "aot_eager",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "t.json").read_text())
    assert {"machine", "torch", "commit", "results"} <= set(report)
    cases = {r["case"]: r for r in report["results"]}
    assert set(cases) == {"per-class", "conditional", "unconditional", "sampling", "features"}
    for r in cases.values():
        assert {"reference_img_per_s", "img_per_s", "speedup", "peak_gpu_mem_gb", "device"} <= set(r)
        assert r["img_per_s"] > 0
    assert cases["per-class"]["speedup"] == pytest.approx(
        cases["per-class"]["img_per_s"] / cases["per-class"]["reference_img_per_s"],
        abs=0.006,  # 2 decimals kept
    )
    assert cases["per-class"]["compiled"] == "default" and cases["per-class"]["compiled_img_per_s"] > 0
    text = md.read_text()
    assert "prose kept" in text and text.count("<!-- throughput:cpu:start -->") == 1 and "| per-class |" in text


def test_benchmark_quick_runs(tmp_path: Path) -> None:
    """benchmarks/limited_labels.py --quick on generated images writes a well-formed report; a run cut by
    --time-budget says so and --resume completes it, keeping the runs already made."""
    import subprocess
    import sys

    data = write_folder(tmp_path / "data", ["a", "b", "c"], [8, 8, 8], size=20)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "limited_labels.py"
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        str(script),
        "--train-dir",
        str(data),
        "--quick",
        "--budgets",
        "3",
        "4",
        "--ssl-eval-every",
        "1",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--report",
        str(tmp_path / "results.md"),
        "--sweep-filter-top",
        "0.5",
    ]
    result = subprocess.run([*cmd, "--time-budget", "0.0001"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    partial = json.loads((out / "limited_labels.json").read_text())
    assert partial["state"] == "partial, cut by --time-budget: data n=4 seed=0 not run"
    assert {r["labels_per_class"] for r in partial["runs"]} == {3}
    assert "partial, cut by --time-budget" in (tmp_path / "results.md").read_text()

    result = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "limited_labels.json").read_text())
    assert report["state"] == "complete" and report["wall_seconds"] > partial["wall_seconds"]
    assert [r for r in report["runs"] if r["labels_per_class"] == 3] == partial["runs"]
    assert {"machine", "runs", "summary", "commit", "package_version"} <= set(report)
    for n in (3, 4):
        arms = {r["arm"] for r in report["runs"] if r["labels_per_class"] == n}
        assert arms == set(arm_names())
    for r in report["runs"]:
        assert {"dataset", "arm", "labels_per_class", "seed", "accuracy", "seconds"} <= set(r)
        assert r["accuracy"] * 6 == pytest.approx(round(r["accuracy"] * 6))  # a count of the 6 evaluation images
    assert (out / "limited_labels_data.png").is_file() and (out / "samples_data_gan-per-class.png").is_file()
    ssl_runs = [r for r in report["runs"] if r["arm"] == "ssl"]
    assert all([c["step"] for c in r["curve"]] == [1, 2] for r in ssl_runs)  # --ssl-eval-every 1, 2 iterations
    assert (out / "ssl_curve_data.png").is_file() and "Learning curve of the ssl arm, data" in (
        tmp_path / "results.md"
    ).read_text()
    text = (tmp_path / "results.md").read_text()
    assert "complete" in text and "| data | 3 | baseline |" in text and "| data | 4 | baseline |" in text
    assert "| data | 3 | gan-per-class | 0.25 | – | 1 |" in text
    assert {r["synthetic_ratio"] for r in report["ratio_sweep"]} == {0.0, 0.25, 0.5, 0.75}
    assert {r["synthetic_ratio"] for r in report["ratio_sweep"] if r.get("filter_top") == 0.5} == {0.25, 0.5, 0.75}
    assert (
        "| data | 3 | gan-per-class | 0.5 | 0.5 | 1 |" in text and "| data | 3 | gan-per-class | 0.5 | – | 1 |" in text
    )

    # Where matplotlib is missing (the GPU machine) the report goes without plots; --report-only redraws them.
    (out / "limited_labels_data.png").unlink()
    argv = [str(script), *cmd[2:], "--report-only"]
    no_mpl = (
        "import sys, runpy; sys.modules['matplotlib'] = None; "  # the script's folder first, as `python script` has it
        f"sys.path.insert(0, {str(script.parent)!r}); sys.argv = {argv!r}; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", no_mpl], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "plot not drawn" in (tmp_path / "results.md").read_text() and not (out / "limited_labels_data.png").exists()
    result = subprocess.run([*cmd, "--report-only"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (out / "limited_labels_data.png").is_file() and json.loads((out / "limited_labels.json").read_text())[
        "runs"
    ] == report["runs"]
    assert (tmp_path / "results.md").read_text() == text  # the same report, redrawn from the JSON alone

    # --merge: one page from the latest report of each dataset (docs/results.md), each run keeping its commit.
    runs = [{**r, "dataset": "other", "commit": "abc1234"} for r in report["runs"]]
    other = {**report, "commit": "abc1234", "runs": runs, "settings": {"other": report["settings"]["data"]}}
    (tmp_path / "other.json").write_text(json.dumps(other))
    page = Path(script).resolve().parents[1] / "docs" / "results.md"
    before = page.read_bytes() if page.exists() else None
    merge = [sys.executable, str(script), "--report-only", "--out", str(tmp_path / "merged"), "--merge"]
    result = subprocess.run(
        [*merge, str(out / "limited_labels.json"), str(tmp_path / "other.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    merged = json.loads((tmp_path / "merged" / "limited_labels.json").read_text())
    assert len(merged["runs"]) == 2 * len(report["runs"]) and set(merged["settings"]) == {"data", "other"}
    assert merged["commit"] == f"{report['commit']}, abc1234"
    assert {"data", "other"} <= {r["dataset"] for r in merged["summary"]}
    assert (tmp_path / "merged" / "report.md").is_file()  # the report beside its tables: the project's page as it was
    assert not (tmp_path / "merged" / "limited_labels.md").exists()  # its table is the report's: one copy
    assert (page.read_bytes() if page.exists() else None) == before
    same = str(out / "limited_labels.json")
    twice = subprocess.run([*merge, same, same], capture_output=True, text=True, timeout=600)
    assert twice.returncode != 0 and "one report per dataset" in twice.stderr

    # d-features: one unconditional GAN per seed serves every budget (the same images at each).
    shared = tmp_path / "shared"
    result = subprocess.run(
        [*cmd[: cmd.index("--out")], "--out", str(shared), "--device", "cpu", "--arms", "d-features"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert (shared / "runs" / "n3" / "unconditional-seed0" / "checkpoint.pt").is_file()
    assert not (shared / "runs" / "n4").exists()
    assert {r["labels_per_class"] for r in json.loads((shared / "limited_labels.json").read_text())["runs"]} == {3, 4}


def test_long_tailed_benchmark_quick_runs(tmp_path: Path) -> None:
    """benchmarks/long_tailed.py --quick: records with the issue's fields, the tables, a resume that keeps
    the seeds done, and a redraw from the JSON alone."""
    import subprocess
    import sys

    data = write_folder(tmp_path / "data", ["a", "b", "c"], [12, 12, 12], size=20)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "long_tailed.py"
    out = tmp_path / "out"
    base = [sys.executable, str(script), "--train-dir", str(data), "--quick", "--device", "cpu", "--out", str(out)]
    base += ["--largest", "6", "--ratio", "3"]

    def run(*extra: str) -> None:
        result = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=900, check=False)
        assert result.returncode == 0, result.stderr[-3000:]

    run("--seeds", "0")
    run("--seeds", "0", "1", "--resume")
    report = json.loads((out / "long_tailed.json").read_text())
    runs = report["runs"]
    assert report["state"] == "complete" and sorted({r["seed"] for r in runs}) == [0, 1]
    assert len([r for r in runs if r["arm"] == "baseline"]) == 2  # seed 0 kept, not run again
    for r in runs:
        assert {"imbalance_ratio", "balanced_accuracy", "seed", "arm", "per_class_recall", "rare_recall"} <= set(r)
        assert r["imbalance_ratio"] == 3 and r["class_counts"] == [6, 3, 2]
    assert {"logit-adjust", "gan-balance", "gan-balance-soft+logit-adjust", "pseudo-balance"} <= {
        r["arm"] for r in runs
    }
    md = (out / "long_tailed.md").read_text()
    assert "| logit-adjust | 2 |" in md and "vs logit-adjust (pts, 95% CI)" in md and "NN ratio" in md
    assert "the bar (+1.5, interval above zero) is" in md
    (out / "long_tailed.md").unlink()
    subprocess.run([sys.executable, str(script), "--report-only", "--out", str(out)], check=True, timeout=300)
    assert (out / "long_tailed.md").read_text() == md
