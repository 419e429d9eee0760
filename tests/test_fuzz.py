"""Property-based: random folder layouts, random bytes as image files, special files (FIFOs,
devices, dangling links, link loops) and odd names never crash or hang ``fit``.

``fit`` (a few steps) either succeeds or raises the documented :class:`GanAugmentError`; any other
exception is a bug.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from gan_augment import GanAugmentError, fit
from gan_augment.io import load_checkpoint
from gan_augment.io.outdir import MARKER_NAME

pytestmark = pytest.mark.slow  # hypothesis runs fit on many generated folders


def _png(seed: int, size: int, mode: str) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size, size, 3 if mode == "RGB" else 1), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr if mode == "RGB" else arr[..., 0]).save(buf, format="PNG")
    return buf.getvalue()


real_image = st.builds(_png, st.integers(0, 1000), st.integers(1, 40), st.sampled_from(["RGB", "L"]))
file_contents = st.one_of(
    real_image,
    real_image,
    real_image,  # mostly real images, so that many layouts train
    st.binary(max_size=300),  # random bytes
    st.builds(
        lambda b, n: b[:n], st.builds(_png, st.integers(0, 9), st.just(24), st.just("RGB")), st.integers(0, 200)
    ),  # truncated
)
# Entries that are not files of bytes (POSIX): what a real folder of downloads or a mount can hold.
SPECIAL = ("fifo", "dangling link", "device link", "loop to the parent", "link to a sibling")
special = st.sampled_from(SPECIAL) if hasattr(os, "mkfifo") else st.nothing()
file_contents = st.one_of(file_contents, special)
file_names = st.sampled_from(
    ["a.png", "b.jpg", "c.jpeg", "d.bmp", "e.gif", "notes.txt", ".hidden.png", "Thumbs.db", "x.webp"]
    + [os.fsdecode(b"\xff\xfe-not-utf8.png"), "new\nline.png", "x" * 200 + ".png"]
)
class_names = st.sampled_from(
    ["cat", "Dog", "007", "red fox", "é", ".secret", os.fsdecode(b"caf\xe9"), "tab\tname"]
    + ["new\nline", "\x1b[31mred\x1b[0m", "bell\x07", "class_names.json"]  # names are data (issue 19)
)
# Where the run goes, and whether an earlier output of the package's (a run with its grids) lies in a class
# folder: the package must never train on its own outputs, nor write among the data.
out_places = st.sampled_from(["beside", "inside labeled", "inside a class"])


def _put(path: Path, content: bytes | str) -> None:
    """Write ``content`` at ``path``, or make the special entry it names."""
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "fifo":
        os.mkfifo(path)
    elif content == "dangling link":
        os.symlink(path.parent / "no-such-file", path)
    elif content == "device link":
        os.symlink("/dev/zero", path)
    elif content == "loop to the parent":
        os.symlink("..", path)
    else:  # a link to whatever else is in the folder (perhaps nothing yet: then dangling)
        os.symlink(sorted(p.name for p in path.parent.iterdir())[0] if any(path.parent.iterdir()) else "x", path)


def _regular_images(root: Path) -> int:
    """Visible image files in the class folders (a link to a sibling file counts, as in ImageFolder;
    link loops and links to devices do not): the most that can train."""
    exts = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
    return sum(
        1
        for d in root.iterdir()
        if d.is_dir() and not d.is_symlink() and not d.name.startswith(".")
        for f in d.iterdir()
        if f.is_file() and f.suffix.lower() in exts and not f.name.startswith(".")
    )


def _listing(root: Path) -> list[str]:
    """Every entry under ``root`` (links not followed)."""
    return sorted(os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files)


layouts = st.dictionaries(class_names, st.dictionaries(file_names, file_contents, min_size=1, max_size=4), max_size=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layout=layouts,
    stray=st.dictionaries(file_names, file_contents, max_size=2),
    out_place=out_places,
    nested_output=st.booleans(),
)
def test_fit_succeeds_or_fails_cleanly(
    layout: dict[str, dict[str, bytes]], stray: dict[str, bytes], out_place: str, nested_output: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "labeled"
        root.mkdir()
        for cls, files in layout.items():
            (root / cls).mkdir(exist_ok=True)
            for name, content in files.items():
                _put(root / cls / name, content)
        for name, content in stray.items():  # files beside the class folders
            _put(root / name, content)
        classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.is_symlink())
        if nested_output and classes:  # an earlier run's folder, grids and all, inside a class folder
            (classes[0] / "old-run" / "samples").mkdir(parents=True)
            (classes[0] / "old-run" / MARKER_NAME).write_text("{}")
            (classes[0] / "old-run" / "samples" / "step_000002.png").write_bytes(_png(1, 8, "RGB"))
        out = {"beside": Path(tmp) / "run", "inside labeled": root / "run"}.get(out_place)
        out = out or (classes[0] / "run" if classes else root / "run")
        before = _listing(root)
        try:
            fit(root, None, out, tiny_config(steps=2), device="cpu", quiet=True)
        except GanAugmentError as exc:
            event(f"refused: {type(exc).__name__}")
            assert str(exc) and "\n" not in str(exc)  # the documented one-line error
            assert not (out / "checkpoint.pt").exists()  # refused before anything was written
            assert _listing(root) == before  # nothing left among the data
        else:
            event("trained")
            assert out_place == "beside"  # a run among its data is refused
            ckpt = load_checkpoint(out)
            assert ckpt["step"] == 2 and ckpt["class_names"]
            assert ckpt["data"]["num_labeled"] <= _regular_images(root)  # nothing listed twice through a link
