"""Every code block in README.md and docs/usage.md runs (issue 22), on tiny data in a fresh folder.

Bash blocks: each ``gan-augment`` line runs through the CLI, its budgets made tiny by appending small
sizes (a repeated option's last value wins) and shrinking step counts. Python blocks run each in a
fresh namespace (so each must be whole: its imports and names), with the same budgets shrunk. The
lines left out are those with a ``NOT_RUN`` key (installing, several processes), each key still
found in the docs.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import write_folder
from test_reliability import runner

from gan_augment.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/usage.md")
NOT_RUN = {
    "python3 -m venv": "installs the package: CI's own first steps (.ci/run) run exactly these",
    "torchrun": "several processes: tests/test_train_distributed.py launches them",
}
SMALL = ["--image-size", "16", "--g-width", "4", "--d-width", "4", "--z-dim", "8", "--batch-size", "4"]
TINY = {
    "fit": [*SMALL, "--teacher-steps", "3", "--device", "cpu", "--quiet"],
    "evaluate": [
        *SMALL,
        "--gan-steps",
        "2",
        "--clf-steps",
        "2",
        "--ssl-steps",
        "3",
        "--seeds",
        "2",
        "--device",
        "cpu",
        "--quiet",
    ],  # fmt: skip
    "classify": [
        "--image-size",
        "16",
        "--steps",
        "2",
        "--ssl-steps",
        "3",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--quiet",
    ],  # fmt: skip
    "demo": ["--steps", "2", "--teacher-steps", "3", "--device", "cpu", "--quiet"],
    "sample": ["--device", "cpu"],
    "predict": ["--device", "cpu"],
    "features": ["--device", "cpu"],
}
MAKERS = ("fit", "classify", "evaluate", "demo")
PLACEHOLDERS = {  # the README's names for the user's folders
    "LABELED": "./labeled",
    "UNLABELED": "./unlabeled",
    "[UNLABELED]": "./unlabeled",
    "TEST": "./test",
    "IMAGES_DIR": "./new_images",
    "RUN": "runs/cifar",
}
TINY_MODEL = "ModelConfig(image_size=16, g_width=4, d_width=4, z_dim=8)"
PYTHON_SUBS = [  # budgets and sizes of the Python blocks, made tiny (in this order)
    (r"\bsteps=\d+", "steps=2"),
    (r"\bimage_size=32", "image_size=16"),
    (r"ModelConfig\(g_width=\d+, d_width=\d+\)", TINY_MODEL),
    (r"range\(\d+\)", "range(1)"),
    (r"A\.Resize\(32, 32\)", "A.Resize(16, 16)"),
    (r"A\.PadIfNeeded\(40, 40\), A\.RandomCrop\(32, 32\)", "A.PadIfNeeded(20, 20), A.RandomCrop(16, 16)"),
]


def blocks(doc: str) -> list[tuple[str, str]]:
    """(language, text) of every fenced block with a language."""
    return re.findall(r"```(bash|python)\n(.*?)```", (ROOT / doc).read_text(), re.S)


def commands(text: str) -> list[list[str]]:
    """The ``gan-augment`` command lines of a bash block, comments dropped, budgets shrunk."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if not line.startswith("gan-augment ") or any(key in line for key in NOT_RUN):
            continue
        line = re.sub(r"--steps (\d+)", lambda m: f"--steps {max(2, int(m.group(1)) // 2000)}", line)
        line = re.sub(r"--per-class \d+", "--per-class 2", line)
        args = [PLACEHOLDERS.get(a, a) for a in shlex.split(line)[1:]]
        out.append([*args, *TINY.get(args[0], [])])
    return out


def python_source(text: str) -> str:
    for pattern, repl in PYTHON_SUBS:
        text = re.sub(pattern, repl, text)
    small = "teacher_steps=3, batch_size=4, " + ("" if "model=" in text else f"model={TINY_MODEL}, ")
    text = text.replace("TrainConfig(", "TrainConfig(" + small)
    return ("from gan_augment import ModelConfig\n" if "TrainConfig(" in text else "") + text


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """labeled/ (4 classes of 6), unlabeled/ (16), test/ (4 classes of 2), new_images/ (4): the folders
    the docs name."""
    write_folder(tmp_path / "labeled", ["ant", "bee", "cat", "dog"], [6, 6, 6, 6])
    write_folder(tmp_path / "test", ["ant", "bee", "cat", "dog"], [2, 2, 2, 2], seed=3)
    write_folder(tmp_path / "unlabeled", ["a", "b"], [8, 8], seed=1)
    write_folder(tmp_path / "new_images", ["x"], [4], seed=2)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAN_AUGMENT_CACHE", str(tmp_path / ".cache"))
    return tmp_path


def test_every_left_out_block_is_still_in_the_docs() -> None:
    texts = [text for doc in DOCS for _, text in blocks(doc)]
    for key in NOT_RUN:
        assert any(key in text for text in texts), f"NOT_RUN names {key!r}, which no block has any more"


@pytest.mark.slow  # dozens of tiny trainings
@pytest.mark.parametrize("doc", DOCS)
def test_every_block_runs(doc: str, workspace: Path) -> None:
    """The Python blocks first (the first trains runs/mine, which the others and the commands read), then
    the commands that make runs, then those that read them."""
    found = blocks(doc)
    cli = [c for lang, text in found if lang == "bash" for c in commands(text)]
    python = [text for lang, text in found if lang == "python"]
    for text in python:
        if not (workspace / "runs" / "mine").exists() and "fit(" not in text:
            pytest.fail(f"{doc}: a Python block reads runs/mine before any block trains it")
        source = python_source(text)
        try:
            exec(compile(source, f"<{doc} block>", "exec"), {"__name__": "__doc_block__"})
        except Exception as exc:
            pytest.fail(f"{doc}: a Python block failed ({type(exc).__name__}: {exc}):\n{source}")
    for args in [c for c in cli if c[0] in MAKERS] + [c for c in cli if c[0] not in MAKERS]:
        if args[0] == "fit" and "--resume" not in args and (workspace / args[args.index("--out") + 1]).exists():
            args = [*args, "--overwrite"]  # the docs train runs/mine in Python and on the command line
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{doc}: gan-augment {shlex.join(args)}\n{result.output[-2000:]}"
    assert len(python) + len(cli) >= 3, f"{doc}: only {len(python) + len(cli)} blocks and commands ran"
