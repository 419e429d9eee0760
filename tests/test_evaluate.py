"""evaluate: the CLI report, torchvision classifiers, paired statistics and verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from typer.testing import CliRunner

from gan_augment.cli import app
from gan_augment.progress import Reporter

runner = CliRunner()
CPU = ["--device", "cpu", "--quiet"]


class TestEvaluate:
    def test_cli_evaluate_report(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        labeled, unlabeled = folders
        out = tmp_path / "ev"
        options = "--arms gan-per-class,d-features --seeds 2 --image-size 16 --gan-steps 2 --clf-steps 2"
        result = runner.invoke(
            app, ["evaluate", str(labeled), str(unlabeled), "--out", str(out), *options.split(), *CPU]
        )
        assert result.exit_code == 0, result.output
        report = json.loads((out / "evaluation.json").read_text())
        assert {r["arm"] for r in report["runs"]} == {"baseline", "gan-per-class", "d-features"}
        assert len(report["runs"]) == 6
        for row in report["summary"]:  # the summary is the runs' mean, and the gain their paired difference
            accs = {r["seed"]: r["accuracy"] for r in report["runs"] if r["arm"] == row["arm"]}
            base = {r["seed"]: r["accuracy"] for r in report["runs"] if r["arm"] == "baseline"}
            assert row["mean"] == pytest.approx(np.mean(list(accs.values())))
            if row["arm"] != "baseline":
                assert row["gain"] == pytest.approx(np.mean([accs[s] - base[s] for s in accs]))
        assert len(report["verdicts"]) == 4 and (out / "evaluation.png").is_file()
        assert "synthetic samples" in report["verdicts"][-2]  # the verdict over every sample arm
        assert report["verdicts"][-1].startswith("recommended")  # the route to take
        gan = next(r for r in report["summary"] if r["arm"] == "gan-per-class")
        assert {"mean", "std", "gain", "gain_ci95", "cas", "diversity"} <= set(gan)

    def test_the_experiments_teacher_arms_run_through_evaluate_folders(
        self, folders: tuple[Path, Path], tmp_path: Path
    ) -> None:
        """The experiments' arms (benchmarks/lab_arms.py) run as the package's do, with their settings."""
        import lab_arms  # noqa: F401  (registers them)

        from gan_augment.evaluate import ArmSettings, ClassifierConfig, evaluate_folders

        labeled, unlabeled = folders
        arms = ["gan-teacher", "gan-soft", "gan-agree", "gan-pretrain", "pseudo-label"]
        clf = ClassifierConfig(steps=2, workers=0, resample=True)
        settings = ArmSettings(gan=tiny_config(steps=2, image_size=16), classifier=clf, min_confidence=0.0)
        report = evaluate_folders(
            labeled, unlabeled, tmp_path / "ev", ["baseline", *arms], [0], settings=settings,
            reporter=Reporter(quiet=True),
        )  # fmt: skip
        runs = {r["arm"]: r for r in report["runs"]}
        assert set(runs) == {"baseline", *arms}
        assert report["settings"]["min_confidence"] == 0.0 and report["settings"]["classifier"]["resample"]
        # 8 training images (6 per class, 30% held out) at ratio 0.5: 8 synthetic (or, for the control, unlabeled)
        assert {a: (runs[a]["synthetic"], runs[a]["synthetic_ratio"]) for a in arms} == dict.fromkeys(arms, (8, 0.5))

    def test_cli_evaluate_torchvision_classifier(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        out = tmp_path / "ev"
        options = "--arms baseline --classifier resnet18 --seeds 1 --image-size 16 --clf-steps 2"
        result = runner.invoke(app, ["evaluate", str(folders[0]), "--out", str(out), *options.split(), *CPU])
        assert result.exit_code == 0, result.output
        report = json.loads((out / "evaluation.json").read_text())
        assert report["settings"]["classifier"]["architecture"] == "resnet18"
        assert [r["arm"] for r in report["runs"]] == ["baseline"]

    def test_cli_evaluate_trains_at_the_size_fit_would(self, make_image_folder, tmp_path: Path) -> None:
        labeled = make_image_folder(size=28, per_class=4, channels=1)
        out = tmp_path / "ev"
        options = "--arms baseline --seeds 1 --clf-steps 2"  # no --image-size: the images' own, as fit's
        result = runner.invoke(app, ["evaluate", str(labeled), "--out", str(out), *options.split(), *CPU])
        assert result.exit_code == 0, result.output
        assert json.loads((out / "evaluation.json").read_text())["settings"]["gan"]["image_size"] == 28

    def test_build_classifier_adapts_channels(self) -> None:
        from gan_augment.evaluate import build_classifier

        for name in ("small-resnet", "resnet18", "mobilenet_v3_small"):
            model = build_classifier(name, 1, 7).eval()
            assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 7), name

    def test_cli_evaluate_bad_classifier(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        result = runner.invoke(
            app, ["evaluate", str(folders[0]), "--classifier", "resnet1800", "--out", str(tmp_path / "x")]
        )
        assert (
            result.exit_code == 2 and "unknown classifier 'resnet1800'" in result.output and "resnet18" in result.output
        )
        assert not (tmp_path / "x").exists()

    def test_cli_evaluate_pool_arms_need_unlabeled_images(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        out = tmp_path / "ev"
        result = runner.invoke(
            app, ["evaluate", str(folders[0]), "--out", str(out), "--arms", "gan-per-class,teacher-unlabeled", *CPU]
        )
        assert result.exit_code == 2 and "['teacher-unlabeled'] need unlabeled images" in result.output
        assert not out.exists()  # refused before anything was trained or written

    def test_cli_evaluate_bad_arm(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        result = runner.invoke(app, ["evaluate", str(folders[0]), "--arms", "magic", "--out", str(tmp_path)])
        assert result.exit_code == 2 and "unknown arm" in result.output


class TestStatistics:
    def test_paired_gain_and_verdict(self) -> None:
        from gan_augment.evaluate import samples_verdict, summarize, verdict

        recs = [
            {"dataset": "d", "labels_per_class": 5, "arm": a, "seed": s, "accuracy": acc}
            for s, (b, g) in enumerate([(0.50, 0.55), (0.60, 0.66), (0.40, 0.44)])
            for a, acc in (("baseline", b), ("gan-per-class", g))
        ]
        rows = summarize(recs)
        gan = next(r for r in rows if r["arm"] == "gan-per-class")
        assert gan["gain"] == pytest.approx(0.05) and gan["gain_ci95"] > 0
        assert "raised accuracy by 5.0" in verdict(gan)
        noisy = [dict(r) for r in recs]
        for r in noisy:  # gains of +1, -1 and 0 points: the interval covers zero
            if r["arm"] == "gan-per-class":
                r["accuracy"] = {0: 0.51, 1: 0.59, 2: 0.40}[r["seed"]]
        noisy_row = next(r for r in summarize(noisy) if r["arm"] == "gan-per-class")
        # The interval reaches a gain worth having: inconclusive, never "do not use" (issue 22).
        assert verdict(noisy_row).endswith("inconclusive: run more seeds or a larger test set")
        assert "do not use" not in verdict(noisy_row) and "do not use" not in samples_verdict(summarize(noisy))
        assert samples_verdict(rows) == "synthetic samples helped this data as gan-per-class (95% interval above zero)"
        flat = [dict(r) for r in recs]  # gains of +0.1, -0.1 and 0 points: a narrow interval around zero
        for r in flat:
            if r["arm"] == "gan-per-class":
                r["accuracy"] = {0: 0.501, 1: 0.599, 2: 0.40}[r["seed"]]
        flat_row = next(r for r in summarize(flat) if r["arm"] == "gan-per-class")
        assert flat_row["gain"] + flat_row["gain_ci95"] < 0.01  # it rules out a gain of 1 point
        assert verdict(flat_row).endswith("do not use synthetic samples this way for this data")
        assert samples_verdict(summarize(flat)).endswith("do not use synthetic samples for this data")
        assert samples_verdict([r for r in rows if r["arm"] == "baseline"]) == ""  # no sample arm measured


def test_seed_arms_reuse_a_finished_run_of_the_same_configuration(tmp_path: Path) -> None:
    """reuse=True (the benchmark's --reuse-gans) takes a run left in ``work`` when its configuration is the
    seed's, and trains anew when it is not."""
    from conftest import tiny_config

    from gan_augment.evaluate import ArmSettings, ClassifierConfig, SeedArms, Split
    from gan_augment.progress import Reporter

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 3, 16, 16), generator=gen, dtype=torch.uint8)
    labels = torch.arange(12) % 2
    split = Split(images[:8], labels[:8], None, images[8:], labels[8:], ["a", "b"])
    settings = ArmSettings(gan=tiny_config(steps=2), classifier=ClassifierConfig(steps=1, width=4, workers=0))
    quiet = Reporter(quiet=True)
    run = SeedArms(split, settings, 0, tmp_path, quiet).gan_run("per-class", "gan-per-class-seed0")
    stamp = (run / "checkpoint.pt").stat().st_mtime_ns
    again = SeedArms(split, settings, 0, tmp_path, quiet, reuse=True).gan_run("per-class", "gan-per-class-seed0")
    assert again == run and (run / "checkpoint.pt").stat().st_mtime_ns == stamp
    other = ArmSettings(gan=tiny_config(steps=3), classifier=settings.classifier)
    SeedArms(split, other, 0, tmp_path, quiet, reuse=True).gan_run("per-class", "gan-per-class-seed0")
    assert (run / "checkpoint.pt").stat().st_mtime_ns != stamp  # another configuration: trained anew


def test_one_seed_says_no_interval_and_one_budget_plots_arms_side_by_side() -> None:
    """Issue 14, item 5: no "± nan" with one seed; with one label budget the plot shows each arm's
    accuracy with its error bar, not a column of points on a log axis."""
    import matplotlib.pyplot as plt

    from gan_augment.evaluate import markdown_table
    from gan_augment.evaluate.report import accuracy_figure
    from gan_augment.evaluate.stats import summarize, verdict

    records = [
        {"dataset": "d", "labels_per_class": 10, "seed": 0, "arm": arm, "accuracy": acc}
        for arm, acc in (("baseline", 0.80), ("gan-per-class", 0.78), ("gan-soft", 0.83))
    ]
    rows = summarize(records)
    texts = [markdown_table(rows), *(verdict(r) for r in rows)]
    assert not any("nan" in t for t in texts), texts
    assert "one seed: no interval" in texts[0] and "run --seeds 3" in verdict(rows[1])
    fig = accuracy_figure(rows, "d")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["baseline", "gan-per-class", "gan-soft"]
    plt.close(fig)
    two_budgets = summarize(records + [{**r, "labels_per_class": 100} for r in records])
    fig = accuracy_figure(two_budgets, "d")
    assert fig.axes[0].get_xscale() == "log"
    plt.close(fig)
