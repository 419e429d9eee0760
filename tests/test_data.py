from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

import gan_augment.data.decode as decode_module
from gan_augment import DataError, load_image_data
from gan_augment.data import decode_image, labeled_side, native_image_size, scan_folders


class TestScan:
    def test_classes_and_unlabeled(self, labeled: Path, unlabeled: Path) -> None:
        files, labels, names, ignored = scan_folders(labeled, unlabeled)
        assert names == ["class_0", "class_1"]
        assert labels.count(0) == 6 and labels.count(1) == 6 and labels.count(-1) == 8
        assert ignored == 0

    def test_skips_hidden_and_non_images(self, labeled: Path) -> None:
        (labeled / "class_0" / "notes.txt").write_text("hello")
        (labeled / "class_0" / ".DS_Store").write_bytes(b"\0")
        files, labels, names, ignored = scan_folders(labeled)
        assert names == ["class_0", "class_1"] and len(files) == 12 and ignored == 2

    def test_hidden_class_folder_is_refused(self, labeled: Path) -> None:
        """torchvision's ImageFolder counts a hidden folder as a class: refuse it rather than disagree."""
        (labeled / ".ipynb_checkpoints").mkdir()
        with pytest.raises(DataError, match=r"hidden folder '\.ipynb_checkpoints'.*move it out"):
            scan_folders(labeled)

    def test_classes_and_labels_agree_with_image_folder(self, labeled: Path) -> None:
        """A GIF (which ImageFolder does not read) neither adds a class nor shifts a label."""
        Image.new("RGB", (8, 8)).save(labeled / "class_0" / "extra.gif")
        (labeled / "a_gif_only").mkdir()
        Image.new("RGB", (8, 8)).save(labeled / "a_gif_only" / "only.gif")
        with pytest.raises(DataError, match="a_gif_only.*has no images"):
            scan_folders(labeled)
        (labeled / "a_gif_only" / "only.gif").unlink()
        Image.new("RGB", (8, 8)).save(labeled / "a_gif_only" / "only.png")
        files, labels, names, _ = scan_folders(labeled)
        reference = ImageFolder(labeled)
        assert names == reference.classes
        assert [str(f) for f in files] == [p for p, _ in reference.samples]
        assert labels == reference.targets

    def test_missing_folder(self, tmp_path: Path) -> None:
        with pytest.raises(DataError, match="does not exist"):
            scan_folders(tmp_path / "nope")

    def test_file_instead_of_folder(self, tmp_path: Path) -> None:
        f = tmp_path / "file.png"
        f.write_bytes(b"x")
        with pytest.raises(DataError, match="not a folder"):
            scan_folders(f)

    def test_no_classes(self, tmp_path: Path) -> None:
        with pytest.raises(DataError, match="no class folders"):
            scan_folders(tmp_path)

    def test_empty_class(self, labeled: Path) -> None:
        (labeled / "class_2").mkdir()
        with pytest.raises(DataError, match="class_2.*has no images"):
            scan_folders(labeled)


class TestDecode:
    def test_resize_and_centre_crop(self, tmp_path: Path) -> None:
        arr = np.zeros((20, 40, 3), dtype=np.uint8)
        arr[:, 10:30] = 255  # a white band in the middle of a wide image
        Image.fromarray(arr).save(tmp_path / "wide.png")
        out, gray = decode_image(tmp_path / "wide.png", 16)
        assert out.shape == (16, 16, 3) and not gray
        assert out[:, 4:12].mean() > 240  # the centre crop keeps the band

    def test_rgba_and_palette(self, tmp_path: Path) -> None:
        Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(tmp_path / "clear.png")
        out, _ = decode_image(tmp_path / "clear.png", 8)
        assert (out == 255).all()  # transparent pixels become white, not black
        Image.new("L", (10, 10), 7).convert("P").save(tmp_path / "pal.png")
        _, gray = decode_image(tmp_path / "pal.png", 8)
        assert gray


class TestNativeImageSize:
    """``fit`` without an image size trains at the labeled images' own side when it suits the models."""

    @pytest.mark.parametrize(("size", "expected"), [(28, 28), (16, 16), (20, 20), (32, 32), (40, 32), (12, 32)])
    def test_one_square_side(self, make_image_folder, size: int, expected: int) -> None:
        folder = make_image_folder(size=size, per_class=2)
        assert labeled_side(folder) == size
        assert native_image_size(folder) == expected  # 40 and 12: outside 16-32, the default 32

    def test_mixed_non_square_or_unsupported_sides_give_32(self, make_image_folder, tmp_path: Path) -> None:
        folder = make_image_folder(size=28, per_class=2)
        Image.new("L", (24, 24)).save(folder / "class_0" / "other.png")
        assert labeled_side(folder) is None and native_image_size(folder) == 32
        wide = make_image_folder(name="wide", size=28, per_class=1)
        for png in wide.rglob("*.png"):
            Image.new("L", (28, 20)).save(png)
        assert labeled_side(wide) is None and native_image_size(wide) == 32
        odd = make_image_folder(name="odd", size=18, per_class=1)  # 18 = 9·2: no start size of 3 to 7
        assert labeled_side(odd) == 18 and native_image_size(odd) == 32

    def test_a_file_that_does_not_open_is_left_to_the_decoder(self, make_image_folder) -> None:
        folder = make_image_folder(size=28, per_class=2)
        (folder / "class_1" / "broken.png").write_bytes(b"not a png")
        assert native_image_size(folder) == 28

    def test_a_missing_folder_is_the_usual_error(self, tmp_path: Path) -> None:
        with pytest.raises(DataError, match="does not exist"):
            native_image_size(tmp_path / "missing")


class TestLoadImageData:
    def test_shapes_and_channels(self, make_image_folder, unlabeled: Path) -> None:
        rgb = make_image_folder("rgb", channels=3)
        data = load_image_data(rgb, unlabeled, image_size=16)
        assert data.images.shape == (20, 3, 16, 16) and data.images.dtype == torch.uint8
        assert data.num_labeled == 12 and data.num_unlabeled == 8
        gray = make_image_folder("gray", channels=1)
        assert load_image_data(gray, image_size=16).images.shape == (12, 1, 16, 16)
        assert load_image_data(gray, image_size=16, channels=3).images.shape == (12, 3, 16, 16)

    def test_corrupt_files_are_skipped_and_listed(self, labeled: Path) -> None:
        (labeled / "class_1" / "broken.png").write_bytes(b"\x89PNG not really")
        (labeled / "class_1" / "empty.jpg").write_bytes(b"")
        data = load_image_data(labeled, image_size=16)
        assert len(data.files) == 12
        assert sorted(Path(p).name for p, _ in data.skipped) == ["broken.png", "empty.jpg"]

    def test_decompression_bomb_is_not_decoded(self, labeled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        Image.new("L", (64, 64)).save(labeled / "class_0" / "huge.png")
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the 20×20 images pass, 64×64 does not
        data = load_image_data(labeled, image_size=16, use_cache=False)
        assert len(data.files) == 12
        assert data.skipped == [
            (str(labeled / "class_0" / "huge.png"), "too many pixels (possible decompression bomb)")
        ]

    def test_extreme_shapes_never_take_more_memory_than_the_file(
        self, labeled: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A thin image is resized from its centre square (no intermediate larger than the file: the
        shorter side scaled first made 1×4,000,000 pixels into 12 GB); a shape whose decode alone
        would pass the memory budget is skipped with the reason, from its header."""
        Image.new("L", (1, 50_000), 200).save(labeled / "class_0" / "thin.png")
        sizes: list[tuple[int, int]] = []
        real_resize = Image.Image.resize

        def resize(im: Image.Image, size: tuple[int, int], *args: object, **kwargs: object) -> Image.Image:
            sizes.append(tuple(size))  # type: ignore[arg-type]
            assert size[0] * size[1] <= 16 * 16, f"an intermediate image of {size}"
            return real_resize(im, size, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Image.Image, "resize", resize)
        thin, _ = decode_image(labeled / "class_0" / "thin.png", 16)
        assert thin.shape == (16, 16, 3) and (thin == 200).all() and sizes == [(16, 16)]
        monkeypatch.setattr(decode_module, "DECODE_BUDGET_BYTES", 1_000_000)  # 50,000 rows take 2 MB
        data = load_image_data(labeled, image_size=16, use_cache=False)
        assert len(data.files) == 12
        ((path, reason),) = data.skipped
        assert path.endswith("thin.png") and reason.startswith("too many pixels") and "1×50000 pixels" in reason

    def test_cache_reused_and_invalidated(self, labeled: Path) -> None:
        first = load_image_data(labeled, image_size=16)
        second = load_image_data(labeled, image_size=16)
        assert not first.from_cache and second.from_cache
        assert torch.equal(first.images, second.images)
        # Change one file's pixels (and its modification time): the cache must not be used.
        target = labeled / "class_0" / "img_000.png"
        Image.fromarray(np.full((20, 20, 3), 255, dtype=np.uint8)).save(target)
        st = target.stat()
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        third = load_image_data(labeled, image_size=16)
        assert not third.from_cache
        assert not torch.equal(third.images, first.images)
        # Another image size is another cache entry.
        assert not load_image_data(labeled, image_size=32).from_cache

    def test_corrupt_cache_is_rebuilt(self, labeled: Path, private_cache: Path) -> None:
        load_image_data(labeled, image_size=16)
        for f in private_cache.glob("*/*.pt"):
            f.write_bytes(b"garbage")
        again = load_image_data(labeled, image_size=16)
        assert not again.from_cache and again.images.shape[0] == 12

    def test_fingerprint_tracks_file_list(self, labeled: Path, make_image_folder) -> None:
        a = load_image_data(labeled, image_size=16).fingerprint()
        other = make_image_folder("other", per_class=5)
        b = load_image_data(other, image_size=16).fingerprint()
        assert a["num_images"] == 12 and b["num_images"] == 10
        assert a["files_sha256"] != b["files_sha256"]
