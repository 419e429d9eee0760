"""Sampling from a loaded generator: tensors and PIL images, seeds, labels routed to their class model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gan_augment import load_generator, sample
from gan_augment.models import PerClassGenerator


class TestSampling:
    def test_load_generator(self, tiny_run: Path) -> None:
        g, info = load_generator(tiny_run, device="cpu")
        assert isinstance(g, PerClassGenerator) and not g.training
        assert info.class_names == ["class_0", "class_1"] and info.image_size == 16 and info.channels == 3

    def test_sample_tensor_and_pil(self, tiny_run: Path) -> None:
        g, _ = load_generator(tiny_run, device="cpu")
        x = sample(g, 5, labels=1, seed=0)
        assert x.shape == (5, 3, 16, 16) and x.dtype == torch.uint8
        pil = sample(g, 3, labels=[0, 1, 0], seed=0, output="pil")
        assert len(pil) == 3 and pil[0].size == (16, 16) and pil[0].mode == "RGB"

    def test_same_seed_same_images(self, tiny_run: Path) -> None:
        g, _ = load_generator(tiny_run, device="cpu")
        assert torch.equal(sample(g, 4, seed=1), sample(g, 4, seed=1))
        assert not torch.equal(sample(g, 4, seed=1), sample(g, 4, seed=2))

    def test_labels_pick_the_class_model(self, tiny_run: Path) -> None:
        g, _ = load_generator(tiny_run, device="cpu")
        mixed = sample(g, 4, labels=[0, 1, 0, 1], seed=0)
        # Same noise, same class → same image as sampling that class's model alone.
        z = torch.randn(4, g.config.z_dim, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            direct = g.generators[1](z[[1, 3]])
        assert torch.equal(mixed[[1, 3]], ((direct.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))

    def test_bad_labels(self, tiny_run: Path) -> None:
        g, _ = load_generator(tiny_run, device="cpu")
        with pytest.raises(ValueError, match=r"labels must be in \[0, 1\]"):
            sample(g, 2, labels=5)
        with pytest.raises(ValueError, match="one label per image"):
            sample(g, 3, labels=[0, 1])


def test_class_names_from_a_checkpoint_never_name_a_path_outside_out_dir(tiny_run: Path, tmp_path: Path) -> None:
    """A crafted checkpoint's class names ("../escape", an absolute path, a name with separators) become
    safe, distinct folder names inside --out-dir; nothing is written anywhere else."""
    from typer.testing import CliRunner

    from gan_augment.cli import app
    from gan_augment.data import safe_folder_names
    from gan_augment.io.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(tiny_run)
    ckpt["class_names"] = ["../escape", str(tmp_path / "abs")]
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    save_checkpoint(
        {k: v for k, v in ckpt.items() if k not in ("format_version", "package_version")}, crafted / "checkpoint.pt"
    )
    out = tmp_path / "box" / "out"
    before = set(tmp_path.rglob("*.png"))  # the fixture's own images
    result = CliRunner().invoke(
        app, ["sample", str(crafted), "--per-class", "2", "--out-dir", str(out), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path) for p in set(tmp_path.rglob("*.png")) - before)
    assert written and all(p.parts[:2] == ("box", "out") for p in written), written
    assert sorted({p.parent.name for p in written}) == sorted(safe_folder_names(ckpt["class_names"]))
    assert not (tmp_path / "box" / "escape").exists() and not (tmp_path / "abs").exists()
    mapping = json.loads((out / "class_names.json").read_text())  # the run's own names, kept beside
    assert mapping == dict(zip(safe_folder_names(ckpt["class_names"]), ckpt["class_names"]))
    names = safe_folder_names(["", ".", "..", "a/b", "a\\b", ".hidden", "same", "same"])
    assert len(set(names)) == 8 and all(n and "/" not in n and "\\" not in n and not n.startswith(".") for n in names)
    assert safe_folder_names(["cat", "dog"]) == ["cat", "dog"]  # safe names are kept as they are


def test_sample_never_mixes_into_a_folder_that_holds_files(tiny_run: Path, tmp_path: Path) -> None:
    """A second `sample --out-dir` into the same folder is refused before anything is written; the first
    set stays as it was (and a folder of the user's own files is refused the same way)."""
    from typer.testing import CliRunner

    from gan_augment.cli import app

    out = tmp_path / "syn"
    args = ["sample", str(tiny_run), "--per-class", "2", "--out-dir", str(out), "--device", "cpu"]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert not (out / "class_names.json").exists()  # safe names: no mapping needed
    first = {p: p.read_bytes() for p in out.rglob("*.png")}
    again = CliRunner().invoke(app, [*args[:-2], "--seed", "1", "--device", "cpu"])
    assert again.exit_code == 2 and "not an empty folder" in again.output
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == first and len(first) == 4
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    result = CliRunner().invoke(app, ["sample", str(tiny_run), "--per-class", "1", "--out-dir", str(mine)])
    assert result.exit_code == 2 and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_large_counts_are_chunked_or_refused_before_drawing(tiny_run: Path, tmp_path: Path) -> None:
    """``--per-class`` writes batch by batch (the same images as one ``sample`` call with that seed);
    a grid too large to view is refused at once, naming the largest --n that fits."""
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from gan_augment.cli import app
    from gan_augment.sampling import iter_samples, write_image_folder

    gen, _ = load_generator(tiny_run)
    chunks = list(iter_samples(gen, 10, labels=1, seed=3, batch_size=4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert torch.equal(torch.cat(chunks), sample(gen, 10, labels=1, seed=3))
    out = tmp_path / "syn"
    assert write_image_folder(gen, out, 3, ["a", "b"], seed=5) == 6
    written = torch.stack([torch.from_numpy(np.array(Image.open(p))) for p in sorted((out / "b").iterdir())])
    assert torch.equal(written.permute(0, 3, 1, 2), sample(gen, 3, labels=1, seed=6))
    result = CliRunner().invoke(app, ["sample", str(tiny_run), "--n", "100000", "--out", str(tmp_path / "g.png")])
    assert (
        result.exit_code == 2 and "more than an image viewer opens" in result.output and "--per-class" in result.output
    )
    assert not (tmp_path / "g.png").exists()


def test_grids_name_each_row_and_say_the_step(tiny_run: Path, tmp_path: Path) -> None:
    """Issue 14, item 5: a grid names the class of each row in a left margin and says its step above."""
    import numpy as np

    from gan_augment.sampling import class_grid

    gen, info = load_generator(tiny_run)
    bare = class_grid(gen, per_row=3, seed=0)
    named = np.asarray(class_grid(gen, per_row=3, seed=0, class_names=info.class_names, title="step 3").convert("L"))
    margin, band = named.shape[1] - bare.width, named.shape[0] - bare.height
    assert margin > 0 and band > 0
    row_h = bare.height // 2
    for r in range(2):  # each row's band of the margin holds its name (dark text on white)
        assert (named[band + r * row_h : band + (r + 1) * row_h, :margin] < 128).any()
    assert (named[:band, margin:] < 128).any()  # the title
    grid = sorted((tiny_run / "samples").glob("step_*.png"))[-1]
    from PIL import Image

    assert Image.open(grid).width > bare.width  # training's grids are labelled too
