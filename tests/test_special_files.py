"""Issue 13, item 6: special files, links and odd names in image folders are skipped and listed,
never a hang, a duplicate or a wrong label; the folder names given name the classes; a run resumes
from the same folder however it is spelled."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_config, write_folder
from PIL import Image

from gan_augment import fit
from gan_augment.data import load_image_data, scan_folders
from gan_augment.errors import DataError
from gan_augment.io import load_checkpoint

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and sockets are POSIX")


def add_special_files(folder: Path) -> list[str]:
    """A FIFO, a socket, a device and a dangling link under image names; returns their names."""
    os.mkfifo(folder / "fifo.png")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "socket.png"))
    sock.close()
    os.symlink("/dev/zero", folder / "device.png")
    os.symlink(folder / "no-such-file.png", folder / "dangling.png")
    return ["fifo.png", "socket.png", "device.png", "dangling.png"]


@posix_only
def test_special_files_are_skipped_and_listed_never_a_hang(tmp_path: Path) -> None:
    labeled = write_folder(tmp_path / "labeled", ["a", "b"], [3, 3])
    names = add_special_files(labeled / "a")
    code = (
        "import sys\nfrom gan_augment.data import load_image_data\n"
        "d = load_image_data(sys.argv[1], image_size=16, use_cache=False)\n"
        "print(len(d.images)); [print(p, '|', r) for p, r in d.skipped]\n"
    )
    # In a subprocess: reading a FIFO used to wait forever, which would hang the test suite.
    done = subprocess.run(
        [sys.executable, "-c", code, str(labeled)], capture_output=True, text=True, timeout=120, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "6"
    reasons = {Path(line.split(" | ")[0]).name: line.split(" | ")[1] for line in lines[1:]}
    assert sorted(reasons) == sorted(names)
    assert "FIFO" in reasons["fifo.png"] and "socket" in reasons["socket.png"]
    assert "device" in reasons["device.png"] and "No such file" in reasons["dangling.png"]


def test_undecodable_file_names_are_read(tmp_path: Path) -> None:
    """A file name that is not UTF-8 (from another system) is an image like any other."""
    labeled = write_folder(tmp_path / "labeled", ["a", "b"], [2, 2])
    odd = os.path.join(os.fsencode(labeled / "b"), b"\xff\xfe-name.png")
    Image.new("RGB", (16, 16), (250, 250, 250)).save(os.fsdecode(odd), format="PNG")
    out = tmp_path / "run"
    fit(labeled, None, out, tiny_config(steps=1), device="cpu", quiet=True)
    assert load_checkpoint(out)["data"]["num_labeled"] == 5


def test_link_loops_and_links_between_classes_neither_duplicate_nor_mislabel(tmp_path: Path) -> None:
    labeled = write_folder(tmp_path / "labeled", ["a", "b"], [2, 3])
    os.symlink("..", labeled / "a" / "up")  # a loop back to the labeled folder (and so to class b)
    os.symlink(labeled / "b", labeled / "a" / "to-b")  # a link into another class
    os.symlink(labeled / "a", labeled / "a" / "self")  # a loop to itself
    files, labels, names, _ = scan_folders(labeled)
    assert names == ["a", "b"] and labels == [0, 0, 1, 1, 1]
    assert len({os.path.realpath(f) for f in files}) == len(files) == 5
    pool = tmp_path / "pool"
    pool.mkdir()
    os.symlink("..", pool / "up")  # the pool's parent holds the pool: a loop
    Image.new("RGB", (16, 16)).save(pool / "x.png")
    files, labels, _, _ = scan_folders(labeled, pool)
    unlabeled = [os.path.realpath(f) for f, label in zip(files, labels) if label == -1]
    assert len(unlabeled) == len(set(unlabeled))  # the pool's own image once, not once per turn of the loop


def test_class_names_come_from_the_folders_given_not_the_cache(tmp_path: Path) -> None:
    """The same files under other folder names (links) are those classes, even with a cached decode."""
    labeled = write_folder(tmp_path / "labeled", ["a", "b"], [2, 2])
    assert load_image_data(labeled, image_size=16).class_names == ["a", "b"]  # now in the cache
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    os.symlink(labeled / "a", renamed / "cat")
    os.symlink(labeled / "b", renamed / "dog")
    data = load_image_data(renamed, image_size=16)
    assert data.class_names == ["cat", "dog"]
    assert all(f.startswith(str(renamed)) for f in data.files)


@pytest.mark.parametrize("spelling", ["absolute", "relative", "through a link"])
def test_resume_accepts_the_same_folder_spelled_another_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    labeled = write_folder(tmp_path / "data" / "labeled", ["a", "b"], [2, 2])
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    fit(Path("data/labeled"), None, out, tiny_config(steps=1), device="cpu", quiet=True)  # relative
    again = {"absolute": labeled, "relative": Path("data/../data/labeled"), "through a link": tmp_path / "link"}
    os.symlink(labeled, tmp_path / "link")
    monkeypatch.setenv("GAN_AUGMENT_CACHE", str(tmp_path / "another-cache"))  # decoded afresh, as on another day
    fit(again[spelling], None, out, tiny_config(steps=2), device="cpu", resume=True, quiet=True)
    assert load_checkpoint(out)["step"] == 2


def test_two_class_folders_that_are_one_folder_are_refused(tmp_path: Path) -> None:
    """A class folder that links to another would list the same images under two labels."""
    labeled = write_folder(tmp_path / "labeled", ["cat", "dog"], [2, 2])
    os.symlink(labeled / "cat", labeled / "kitten")
    with pytest.raises(DataError, match="'cat' and 'kitten' .* are the same folder"):
        scan_folders(labeled)
