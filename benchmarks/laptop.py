"""Long jobs on a laptop (issue 22), measured as a user meets them: photos of 3 classes (CIFAR-10's
airplane, cat and ship: 30 labeled images each, 600 unlabeled, 100 test images each, 32 px RGB), the
CLI in a subprocess, nothing else running (but the steady load ``evaluate-estimate`` adds).

- ``fit``: its plan (every phase's time, timed before anything trains) against the times the phases took.
- SIGHUP during the GAN and during the teacher: the exit code and how old the checkpoint it leaves is.
- ``evaluate`` with a documented small budget and ``--test-dir``: its wall time and estimate; then
  the same evaluation killed part-way and resumed: what it reused and the time both parts took.
- ``evaluate-estimate``: the same evaluation straight through, alone and beside a steady load (``--loads``):
  its first estimate against its wall time, and whether the time left it prints falls.

Writes ``OUT/laptop.json`` and ``OUT/laptop.md`` (default ``docs/results``); hand notes go in
``docs/results_notes.md`` (its laptop section), which the table links.

Examples:
    python benchmarks/laptop.py                    # everything (about 60 minutes on 2 CPU cores)
    python benchmarks/laptop.py --only evaluate
    python benchmarks/laptop.py --only evaluate-estimate --loads 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("airplane", "cat", "ship")
# The documented small budget (docs/usage.md, "evaluate on a laptop").
EVALUATE_BUDGET = ["--seeds", "3", "--gan-steps", "100", "--ssl-steps", "100", "--clf-steps", "60"]


def photo_folders(archive: Path, work: Path, seed: int = 0) -> dict[str, Path]:
    """labeled/ (30 per class), unlabeled/pool/ (200 per class, mixed), test/ (100 per class) under ``work``."""
    root = work / "laptop"
    if (root / ".done").exists():
        return {k: root / k for k in ("labeled", "unlabeled", "test")}
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(archive) as z:
        names = [n for n in z.namelist() if n.endswith(".jpg")]
        for c in CLASSES:
            files = sorted(n for n in names if n.split("/")[-2] == c)
            idx = rng.permutation(len(files))
            for part, chosen in (("labeled", idx[:30]), ("unlabeled", idx[30:230]), ("test", idx[230:330])):
                folder = root / part / (c if part != "unlabeled" else "pool")
                folder.mkdir(parents=True, exist_ok=True)
                for i in chosen:
                    stem = Path(files[i]).name if part != "unlabeled" else f"{c}_{Path(files[i]).name}"
                    (folder / stem).write_bytes(z.read(files[i]))
    (root / ".done").write_text("ok")
    return {k: root / k for k in ("labeled", "unlabeled", "test")}


class Watched:
    """A CLI subprocess whose output lines are stamped with the seconds since it started."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.t0 = time.perf_counter()
        self.lines: list[tuple[float, str]] = []
        cmd = [sys.executable, "-m", "gan_augment.cli", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.perf_counter() - self.t0, line.rstrip()))

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def first(self, pattern: str) -> tuple[float, re.Match[str]] | None:
        for t, line in self.lines:
            m = re.search(pattern, line)
            if m:
                return t, m
        return None

    def wait_for(self, pattern: str, timeout: float) -> float:
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            hit = self.first(pattern)
            if hit:
                return hit[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"{pattern!r} never appeared:\n" + "\n".join(line for _, line in self.lines[-20:]))


def _plan(job: Watched) -> tuple[dict[str, float], float]:
    """The seconds ``fit``'s plan gave each phase (``  NAME  about M:SS  what``), by name, and when the
    plan was printed (training starts then)."""
    found, said = {}, 0.0
    for t, line in job.lines:
        m = re.match(r"^  (\S.*?)\s{2,}about ([0-9:]+)", line)
        if m and m[1] != "in all":
            found[m[1]], said = _seconds(m[2]), t
    return found, said


def _seconds(text: str) -> float:
    parts = [int(p) for p in text.split(":")]
    return float(sum(p * 60**i for i, p in enumerate(reversed(parts))))


def _env() -> dict[str, str]:
    return {**os.environ, "GAN_AUGMENT_PROGRESS_EVERY": "10"}


def measure_fit(data: dict[str, Path], work: Path) -> dict[str, Any]:
    """``fit`` with its defaults: what it expected of each phase, and what each took."""
    out = work / "fit-run"
    shutil.rmtree(out, ignore_errors=True)
    job = Watched(["fit", str(data["labeled"]), str(data["unlabeled"]), "--out", str(out), "--device", "cpu"], _env())
    code = job.wait()
    lines = "\n".join(line for _, line in job.lines)
    if code:
        raise RuntimeError(f"fit failed ({code}):\n{lines[-3000:]}")
    plan, planned = _plan(job)
    teacher_start = job.first(r"^(training the run's \w+ teacher|self-training, measured first)")
    done = job.first(r"^done in ([0-9.]+) s")
    assert plan and teacher_start and done, lines[-3000:]
    gan_left = sum(s for name, s in plan.items() if name.startswith("GAN"))
    teacher_expected = sum(s for name, s in plan.items() if name.startswith("teacher"))
    gan_actual, teacher_actual = teacher_start[0] - planned, done[0] - teacher_start[0]
    teacher_said = [name for name in plan if name.startswith("teacher")]
    first_bar = job.first(r"^step (\d+)/(\d+) .* ([0-9:]+) left")
    return {
        "command": "gan-augment fit LABELED UNLABELED --out RUN --device cpu",
        "gan_expected_s": gan_left,
        "gan_actual_s": round(gan_actual, 1),
        "gan_error": round(gan_left / gan_actual - 1, 3),
        "teacher": ", ".join(teacher_said),
        "teacher_expected_s": teacher_expected,
        "teacher_actual_s": round(teacher_actual, 1),
        "teacher_error": round(teacher_expected / teacher_actual - 1, 3),
        "total_expected_s": gan_left + teacher_expected,
        "total_actual_s": round(done[0] - planned, 1),
        "first_bar_reading": first_bar[1][0] if first_bar else None,
        "wall_s": round(job.lines[-1][0], 1),
    }


def measure_sighup(data: dict[str, Path], work: Path, phase: str, after: float) -> dict[str, Any]:
    """SIGHUP ``after`` seconds into ``phase`` (``gan`` or ``teacher``): exit code and checkpoint age."""
    out = work / f"hup-{phase}"
    shutil.rmtree(out, ignore_errors=True)
    job = Watched(["fit", str(data["labeled"]), str(data["unlabeled"]), "--out", str(out), "--device", "cpu"], _env())
    teacher = r"^(training the run's \w+ teacher|self-training, measured first)"
    start = job.wait_for(r"expected: about" if phase == "gan" else teacher, 900)
    time.sleep(max(0.0, start + after - (time.perf_counter() - job.t0)))
    job.proc.send_signal(signal.SIGHUP)
    sent = time.time()
    code = job.wait(timeout=300)
    file = out / ("checkpoint.pt" if phase == "gan" else "teacher-training.pt")
    age = sent - file.stat().st_mtime if file.exists() else None
    return {"phase": phase, "signal_after_s": after, "exit_code": code, "file": file.name,
            "file_age_at_signal_s": None if age is None else round(age, 1)}  # fmt: skip


def measure_evaluate(data: dict[str, Path], work: Path) -> dict[str, Any]:
    """The documented small-budget evaluate, killed (SIGINT) after its fifth result and resumed."""
    out = work / "eval-laptop"
    shutil.rmtree(out, ignore_errors=True)
    args = ["evaluate", str(data["labeled"]), str(data["unlabeled"]), "--test-dir", str(data["test"]),
            *EVALUATE_BUDGET, "--device", "cpu", "--out", str(out)]  # fmt: skip
    first = Watched(args, _env())
    first.wait_for(r"^5 of \d+ arm runs done", 3600)
    first.proc.send_signal(signal.SIGINT)
    first_code = first.wait(timeout=300)
    said = first.first(r"expected: about ([0-9:]+) in all")
    kept = len(json.loads((out / "evaluation-progress.json").read_text())["records"])
    second = Watched([*args, "--resume"], _env())
    assert second.wait() == 0, "\n".join(line for _, line in second.lines[-30:])
    report = json.loads((out / "evaluation.json").read_text())
    reused = len([line for _, line in second.lines if "arm runs done" in line])
    return {
        "command": "gan-augment evaluate LABELED UNLABELED --test-dir TEST " + " ".join(EVALUATE_BUDGET),
        "arms": sorted({r["arm"] for r in report["runs"]}),
        "expected_s": _seconds(said[1][1]) if said else None,
        "killed_after_records": kept,
        "killed_exit_code": first_code,
        "killed_after_s": round(first.lines[-1][0], 1),
        "resumed_wall_s": round(second.lines[-1][0], 1),
        "records_trained_after_resume": reused,
        "records": len(report["runs"]),
        "wall_s": round(first.lines[-1][0] + second.lines[-1][0], 1),
        "summary": [{k: r.get(k) for k in ("arm", "n", "mean", "std", "gain", "gain_ci95")} for r in report["summary"]],
        "verdicts": report["verdicts"],
    }


def measure_evaluate_estimate(data: dict[str, Path], work: Path, load: int, beside: str = "") -> dict[str, Any]:
    """The documented small-budget evaluate straight through, beside ``load`` busy processes (a steady load,
    started first): its first estimate against its wall time, and the time left it printed after each result
    (with when each said it would end)."""
    out = work / "eval-estimate"
    shutil.rmtree(out, ignore_errors=True)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    try:
        time.sleep(2 if load else 0)
        args = ["evaluate", str(data["labeled"]), str(data["unlabeled"]), "--test-dir", str(data["test"]),
                *EVALUATE_BUDGET, "--device", "cpu", "--out", str(out)]  # fmt: skip
        job = Watched(args, _env())
        code = job.wait()
    finally:
        for p in busy:
            p.kill()
            p.wait()
    if code:
        raise RuntimeError(f"evaluate failed ({code}):\n" + "\n".join(line for _, line in job.lines[-30:]))
    said = job.first(r"expected: about ([0-9:]+) in all")
    assert said, "\n".join(line for _, line in job.lines[:30])
    wall = job.lines[-1][0]
    readings = []
    for t, line in job.lines:
        m = re.match(r"^(\d+) of (\d+) arm runs done(?:; about ([0-9:]+) left)?", line)
        if m:
            left = _seconds(m[3]) if m[3] else None
            readings.append({"done": int(m[1]), "of": int(m[2]), "at_s": round(t, 1), "left_s": left,
                             "ends_at_s": None if left is None else round(t + left, 1)})  # fmt: skip
    return {
        "command": "gan-augment evaluate LABELED UNLABELED --test-dir TEST " + " ".join(EVALUATE_BUDGET),
        "load": ", ".join(x for x in (f"{load} busy process(es)" if load else "", beside) if x) or "none",
        "expected_s": _seconds(said[1][1]),
        "estimate_said_at_s": round(said[0], 1),
        "wall_s": round(wall, 1),
        "error": round(_seconds(said[1][1]) / wall - 1, 3),
        "readings": readings,
    }


def write(out: Path, results: dict[str, Any]) -> None:
    """Merge ``results`` into ``laptop.json`` (each section keeps the date and commit it was measured at)
    and write ``laptop.md`` from the whole."""
    now = {
        "date": time.strftime("%Y-%m-%d"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
        ).stdout.strip(),  # fmt: skip
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
    }
    path = out / "laptop.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    meta = old.pop("meta", {})
    if "date" in meta:  # one stamp for every section (the first runs of this script)
        meta = {section: dict(meta) for section in old}
    merged = {**old, **results}
    merged["meta"] = {**meta, **{section: now for section in results}}
    path.write_text(json.dumps(merged, indent=2) + "\n")
    stamps = merged["meta"]

    def stamp(section: str) -> str:
        m = stamps.get(section, {})
        return f"_{m.get('date')}, commit {m.get('commit')}, {m.get('machine')}._"

    notes = os.path.relpath(ROOT / "docs" / "results_notes.md", out.resolve()) + "#notes-on-the-laptop-measurements"
    lines = ["# Long jobs on a laptop", "", f"Written by `benchmarks/laptop.py`; notes in [results_notes.md]({notes}). "
             "Each section names when and where it was measured.", ""]  # fmt: skip
    if "fit" in merged:
        f = merged["fit"]
        lines += ["## fit: the estimates against the times", "", stamp("fit"), "", f"`{f['command']}`", "",
                  "| phase | expected | took | error |", "| --- | --- | --- | --- |",
                  f"| GAN(s) | {f['gan_expected_s']:.0f} s | {f['gan_actual_s']:.0f} s | "
                  f"{100 * f['gan_error']:+.0f}% |",
                  f"| teacher ({f['teacher']}) | {f['teacher_expected_s']:.0f} s | {f['teacher_actual_s']:.0f} s | "
                  f"{100 * f['teacher_error']:+.0f}% |",
                  f"| both | {f['total_expected_s']:.0f} s | {f['total_actual_s']:.0f} s | "
                  f"{100 * (f['total_expected_s'] / f['total_actual_s'] - 1):+.0f}% |", ""]  # fmt: skip
    if "sighup" in merged:
        lines += ["## SIGHUP", "", stamp("sighup"), ""]
        lines += ["| during | signal after | exit code | the checkpoint it left |", "| --- | --- | --- | --- |"]
        for h in merged["sighup"]:
            age = h["file_age_at_signal_s"]
            when = "none" if age is None else (f"written {-age:.1f} s after the signal" if age <= 0
                                                else f"{age:.1f} s old at the signal")  # fmt: skip
            lines.append(f"| {h['phase']} | {h['signal_after_s']} s | {h['exit_code']} | {h['file']}, {when} |")
        lines.append("")
    if "evaluate" in merged:
        e = merged["evaluate"]
        lines += ["## evaluate with the small budget", "", stamp("evaluate"), "", f"`{e['command']}`", "",
                  f"Expected {e['expected_s']:.0f} s; took {e['wall_s']:.0f} s in two parts (decoding included): "
                  f"killed (Ctrl-C, exit {e['killed_exit_code']}) after {e['killed_after_records']} of "
                  f"{e['records']} results ({e['killed_after_s']:.0f} s), then `--resume` trained the other "
                  f"{e['records_trained_after_resume']} in {e['resumed_wall_s']:.0f} s, reusing the finished ones.",
                  "", "| arm | seeds | accuracy | gain (95% CI) |",
                  "| --- | --- | --- | --- |"]  # fmt: skip
        for r in e["summary"]:
            gain = "" if r["gain"] is None else f"{100 * r['gain']:+.1f} ± {100 * (r['gain_ci95'] or 0):.1f}"
            lines.append(f"| {r['arm']} | {r['n']} | {100 * r['mean']:.1f} ± {100 * r['std']:.1f} | {gain} |")
        lines += ["", "Verdicts:", "", *[f"- {v}" for v in e["verdicts"]], ""]
    if "evaluate-estimate" in merged:
        lines += ["## evaluate: its estimate against its time", "", stamp("evaluate-estimate"), "",
                  f"`{merged['evaluate-estimate'][0]['command']}`, straight through, decoding included.", "",
                  "| steady load | expected (said at) | took | error | time left after each result: when it said "
                  "the evaluation would end |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for e in merged["evaluate-estimate"]:
            ends = ", ".join("?" if r["ends_at_s"] is None else f"{r['ends_at_s']:.0f}" for r in e["readings"])
            lines.append(f"| {e['load']} | {e['expected_s']:.0f} s ({e['estimate_said_at_s']:.0f} s) | "
                         f"{e['wall_s']:.0f} s | {100 * e['error']:+.0f}% | {ends} s |")  # fmt: skip
        lines.append("")
    (out / "laptop.md").write_text("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    p.add_argument("--only", choices=("fit", "sighup", "evaluate", "evaluate-estimate", "report"), nargs="+",
                   default=["fit", "sighup", "evaluate"], help="report: laptop.md again from laptop.json")  # fmt: skip
    p.add_argument("--loads", type=int, nargs="+", default=[0, 1],
                   help="evaluate-estimate: busy processes beside it, one run each (0: nothing else)")  # fmt: skip
    p.add_argument("--beside", default="", help="evaluate-estimate: what else runs beside it, in words (a row's load)")
    args = p.parse_args()
    work = ROOT / ".data"
    data = photo_folders(args.data_dir / "cifar10-train.zip", work)
    results: dict[str, Any] = {}
    if "fit" in args.only:
        results["fit"] = measure_fit(data, work)
        write(args.out, results)
    if "sighup" in args.only:
        results["sighup"] = [measure_sighup(data, work, "gan", 30), measure_sighup(data, work, "teacher", 60)]
        write(args.out, results)
    if "evaluate" in args.only:
        results["evaluate"] = measure_evaluate(data, work)
        write(args.out, results)
    if "evaluate-estimate" in args.only:
        rows = [measure_evaluate_estimate(data, work, load, args.beside) for load in args.loads]
        kept = [r for r in json.loads(path.read_text()).get("evaluate-estimate", []) if r["load"] not in
                {row["load"] for row in rows}] if (path := args.out / "laptop.json").is_file() else []  # fmt: skip
        results["evaluate-estimate"] = kept + rows
    write(args.out, results)
    print((args.out / "laptop.md").read_text())


if __name__ == "__main__":
    main()
