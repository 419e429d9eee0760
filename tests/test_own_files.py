"""Issue 13, items 1, 3 and 4: only the package's own files are ever replaced or removed, one process
per run directory, and a full disk is one line and never a dead end.

The case numbers follow docs/reliability.md.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TINY_CLI, tiny_config
from test_reliability import fit_cli, one_line_error, runner

from gan_augment import fit
from gan_augment.cli import app
from gan_augment.io import load_checkpoint
from gan_augment.io.checkpoint import save_checkpoint
from gan_augment.io.lock import LOCK_NAME, FolderLock
from gan_augment.io.outdir import MARKER_NAME


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, but the lock's (it names whichever process holds the folder)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != LOCK_NAME
    }


def user_files(folder: Path) -> dict[str, bytes]:
    """Files of the user's, beside and inside a run's: none of them may ever change."""
    files = {
        "notes.txt": b"my notes",
        "samples/my_favourite.png": b"not really a png",
        ".draft.tmp": b"a hidden tmp of the user's",
        "data/config.json": b'{"mine": true}',
    }
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return files


# ----------------------------------------------------------------------------- 14. only the package's files
class TestOverwriteRemovesOnlyOwnFiles:
    def test_fit_overwrite_keeps_the_users_files(self, labeled: Path, tmp_path: Path) -> None:
        out = tmp_path / "run"
        fit(labeled, None, out, tiny_config(steps=4), device="cpu", quiet=True)
        mine = user_files(out)
        assert (out / "samples" / "step_000004.png").is_file()
        code, output = fit_cli(str(labeled), "--out", str(out), "--overwrite", "--steps", "1", "--sample-every", "5")
        assert code == 0, output
        assert load_checkpoint(out)["step"] == 1
        for name, data in mine.items():
            assert (out / name).read_bytes() == data, name
        assert not (out / "samples" / "step_000004.png").exists()  # the old run's own grids went

    @pytest.mark.parametrize("overwrite", [False, True])
    def test_a_users_file_at_a_run_path_is_never_replaced(self, labeled: Path, tmp_path: Path, overwrite: bool) -> None:
        out = tmp_path / "project"
        out.mkdir()
        (out / "config.json").write_text('{"the user": "config"}')
        before = snapshot(out)
        code, output = fit_cli(str(labeled), "--out", str(out), *(["--overwrite"] if overwrite else []))
        one_line_error(code, output, "config.json", "not written by gan-augment", "never replaced or removed")
        assert snapshot(out) == before

    def test_a_foreign_checkpoint_is_not_taken_for_a_run(self, labeled: Path, tmp_path: Path) -> None:
        out = tmp_path / "other"
        out.mkdir()
        torch.save({"weights": torch.zeros(3)}, out / "checkpoint.pt")  # someone else's checkpoint.pt
        before = snapshot(out)
        code, output = fit_cli(str(labeled), "--out", str(out), "--overwrite")
        one_line_error(code, output, "checkpoint.pt", "not written by gan-augment")
        assert snapshot(out) == before

    def test_a_run_from_before_the_marker_is_still_replaced(self, labeled: Path, tmp_path: Path) -> None:
        out = tmp_path / "old-run"
        fit(labeled, None, out, tiny_config(steps=2), device="cpu", quiet=True)
        (out / MARKER_NAME).unlink()  # as written by an earlier version
        code, output = fit_cli(str(labeled), "--out", str(out), "--overwrite", "--steps", "1")
        assert code == 0, output
        assert load_checkpoint(out)["step"] == 1

    def test_classify_overwrite_keeps_the_users_files(self, folders: tuple[Path, Path], tmp_path: Path) -> None:
        labeled, unlabeled = folders
        out = tmp_path / "clf"
        args = ["--method", "ssl", "--ssl-steps", "2", "--image-size", "16", "--device", "cpu", "--quiet"]
        assert runner.invoke(app, ["classify", str(labeled), str(unlabeled), "--out", str(out), *args]).exit_code == 0
        mine = user_files(out)
        again = runner.invoke(app, ["classify", str(labeled), str(unlabeled), "--out", str(out), "--overwrite", *args])
        assert again.exit_code == 0, again.output
        for name, data in mine.items():
            assert (out / name).read_bytes() == data, name
        assert (out / "classifier.pt").is_file()


# ----------------------------------------------------------------------------- 15. one process per run
def _hold(folder: Path) -> subprocess.Popen[str]:
    """Another process that holds ``folder`` until it is killed."""
    code = (
        "import sys, time\nfrom gan_augment.io.lock import FolderLock\n"
        f"lock = FolderLock({str(folder)!r}).__enter__()\nprint('held', flush=True)\ntime.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


class TestOneProcessPerRun:
    def test_a_live_holder_refuses_fit_resume_and_classify_then_a_killed_one_does_not(
        self, labeled: Path, folders: tuple[Path, Path], tmp_path: Path
    ) -> None:
        out = tmp_path / "run"
        fit(labeled, None, out, tiny_config(steps=2), device="cpu", quiet=True)
        before = snapshot(out)
        holder = _hold(out)
        try:
            for args in (["--resume", "--steps", "4"], ["--overwrite"]):
                code, output = fit_cli(str(labeled), "--out", str(out), *args)
                one_line_error(code, output, "in use by another gan-augment process", f"pid {holder.pid}")
            result = runner.invoke(
                app, ["classify", *map(str, folders), "--out", str(out), "--overwrite", "--device", "cpu", "-q"]
            )
            one_line_error(result.exit_code, result.output, f"pid {holder.pid}")
            assert snapshot(out) == before
        finally:
            holder.kill()
            holder.wait()
        code, output = fit_cli(str(labeled), "--out", str(out), "--resume", "--steps", "4")  # a stale lock
        assert code == 0, output
        assert load_checkpoint(out)["step"] == 4

    def test_a_held_new_folder_is_refused_and_a_refused_run_leaves_no_trace(
        self, labeled: Path, tmp_path: Path
    ) -> None:
        out = tmp_path / "new"
        with FolderLock(out):
            with pytest.raises(Exception, match="in use by another gan-augment process"):
                with FolderLock(out):
                    pass
        assert not out.exists()  # nothing was written: the folder the lock made is gone
        existing = tmp_path / "existing"
        existing.mkdir()
        code, output = fit_cli(str(tmp_path / "missing"), "--out", str(existing))
        assert code == 2 and list(existing.iterdir()) == []

    @pytest.mark.slow  # two training subprocesses
    def test_two_fresh_fits_into_one_new_folder(self, labeled: Path, tmp_path: Path) -> None:
        out = tmp_path / "both"
        cmd = [sys.executable, "-m", "gan_augment.cli", "fit", str(labeled), "--out", str(out), *TINY_CLI]
        procs = [subprocess.Popen([*cmd, "--steps", "30"], stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
        assert sorted(code for code, _ in results) == [0, 2], results
        refused = next(err for code, err in results if code == 2)
        assert "in use by another gan-augment process" in refused or "already holds a run" in refused
        assert load_checkpoint(out)["step"] == 30


# ----------------------------------------------------------------------------- 13. a full disk
def full_disk(monkeypatch: pytest.MonkeyPatch, after: int = 256) -> None:
    """Every file opened for writing by the package's atomic writes fails with ENOSPC after ``after``
    bytes, as a full disk does (``torch.save`` turns that into a RuntimeError of its zip writer)."""
    import gan_augment.io.atomic as atomic

    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f: Any) -> None:
            self.f, self.n = f, 0

        def write(self, data: Any) -> int:
            self.n += len(data)
            if self.n > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.f, name)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode="r", *a, **k: Full(real_fdopen(fd, mode, *a, **k)))


class TestFullDisk:
    def test_torch_save_on_a_full_disk_is_one_line_and_the_same_command_runs_again(
        self, labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        out = tmp_path / "run"
        with monkeypatch.context() as m:
            full_disk(m, after=4096)  # config.json fits; the first checkpoint does not
            code, output = fit_cli(str(labeled), "--out", str(out))
        warned, output = split_warnings(output)  # the full disk also stops the decode cache: one warning line
        assert all("decode cache" in w for w in warned), warned
        one_line_error(code, output, "checkpoint.pt", "No space left on device", "run the same command again")
        assert not (out / "checkpoint.pt").exists() and not list(out.rglob(".*.tmp"))
        code, output = fit_cli(str(labeled), "--out", str(out))  # no --resume, no --overwrite
        assert code == 0, output
        assert load_checkpoint(out)["step"] == 2

    @pytest.mark.parametrize("command", ["features", "predict"])
    def test_features_and_predict_name_the_file_and_leave_no_temporary(
        self, command: str, trained: dict[str, Path], folders: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        labeled, unlabeled = folders
        if command == "features":
            source, target = trained["unconditional"], tmp_path / "f.npz"
        else:
            source, target = tmp_path / "clf", tmp_path / "p.csv"
            args = ["--method", "ssl", "--ssl-steps", "2", "--image-size", "16", "--device", "cpu", "-q"]
            assert (
                runner.invoke(app, ["classify", str(labeled), str(unlabeled), "--out", str(source), *args]).exit_code
                == 0
            )
        target.write_bytes(b"the previous file")
        with monkeypatch.context() as m:
            full_disk(m, after=16)
            result = runner.invoke(
                app, [command, str(source), str(labeled), "--out", str(target), "--device", "cpu", "--overwrite"]
            )
        one_line_error(result.exit_code, result.output, str(target), "No space left on device")
        assert target.read_bytes() == b"the previous file"
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    def test_a_full_cache_is_a_warning(self, labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        full_disk(monkeypatch, after=1024)  # a torch.save that fails part-way (a RuntimeError)
        from gan_augment.data import load_image_data

        with pytest.warns(UserWarning, match="could not write the decode cache"):
            data = load_image_data(labeled, image_size=16)
        assert len(data.images) == 12


def test_checkpoints_written_by_hand_are_still_ours(labeled: Path, tiny_run: Path, tmp_path: Path) -> None:
    """A checkpoint saved into a fresh folder (no marker) is recognised as the package's by its contents."""
    out = tmp_path / "copy"
    out.mkdir()
    ckpt = load_checkpoint(tiny_run)
    save_checkpoint(
        {k: v for k, v in ckpt.items() if k not in ("format_version", "package_version")}, out / "checkpoint.pt"
    )
    assert not (out / MARKER_NAME).exists() and not (out / LOCK_NAME).exists()
    code, output = fit_cli(str(labeled), "--out", str(out), "--overwrite", "--steps", "1")
    assert code == 0, output


def split_warnings(output: str) -> tuple[list[str], str]:
    """The CLI's "Warning: ..." lines, and the rest of its output."""
    lines = output.splitlines()
    return [x for x in lines if x.startswith("Warning: ")], "\n".join(x for x in lines if not x.startswith("Warning: "))


@pytest.mark.parametrize("command", ["sample", "features", "predict", "evaluate"])
def test_an_existing_output_is_replaced_only_with_overwrite(
    command: str, trained: dict[str, Path], folders: tuple[Path, Path], tmp_path: Path
) -> None:
    """A file (or an evaluation) already at --out, the user's or an earlier result, is never replaced
    without --overwrite; the refusal comes before any work."""
    labeled = str(folders[0])
    target = tmp_path / ("evaluation" if command == "evaluate" else "result")
    mine = target / "evaluation.json" if command == "evaluate" else target
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text("the user's file")
    args = {
        "sample": ["sample", str(trained["per-class"]), "--n", "4", "--out", str(target)],
        "features": ["features", str(trained["unconditional"]), labeled, "--out", str(target)],
        "predict": ["predict", str(tmp_path / "no-classifier"), labeled, "--out", str(target)],
        "evaluate": ["evaluate", labeled, "--out", str(target)],
    }[command]
    result = runner.invoke(app, [*args, "--device", "cpu"])
    one_line_error(result.exit_code, result.output, str(target), "--overwrite")
    assert mine.read_text() == "the user's file"
    if command in ("sample", "features"):
        again = runner.invoke(app, [*args, "--device", "cpu", "--overwrite"])
        assert again.exit_code == 0, again.output
        assert mine.read_bytes() != b"the user's file"
