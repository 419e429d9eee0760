"""Image conversions, in one place: uint8 ↔ [-1, 1], tensor ↔ numpy ↔ PIL, the raw forms datasets use, grids."""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.utils import make_grid as tv_make_grid

from ..errors import GanAugmentError
from ..progress import printable
from .atomic import atomic_write

RawForm = Literal["pil", "numpy", "tensor", "float"]


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (any shape) → float32 in [-1, 1], the models' range (a new tensor)."""
    return images.float().div(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] → uint8 [0, 255] (clamped, rounded)."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_chw_uint8(image: Any) -> torch.Tensor:
    """One raw item (HWC or HW numpy array, CHW uint8 tensor, or PIL image) as a uint8 (C, H, W) tensor.

    Raises:
        TypeError: If the item is not uint8 (a float image has been transformed already).
    """
    if isinstance(image, torch.Tensor):
        t = image if image.ndim == 3 else image[None]
    else:
        arr = np.asarray(image)
        t = torch.from_numpy(np.ascontiguousarray(arr if arr.ndim == 3 else arr[..., None])).permute(2, 0, 1)
    if t.dtype != torch.uint8:
        raise TypeError(f"expected a raw uint8 image, got {t.dtype}: build the dataset without a transform")
    return t


def to_hwc_numpy(img: torch.Tensor) -> np.ndarray:
    """One uint8 (C, H, W) tensor → a contiguous uint8 (H, W, C) array (albumentations' and PIL's layout)."""
    return np.ascontiguousarray(img.permute(1, 2, 0).numpy())


def to_pil(img: torch.Tensor, mode: str | None = None) -> Image.Image:
    """One uint8 (C, H, W) tensor → a PIL image (mode L or RGB, converted to ``mode`` when given)."""
    arr = to_hwc_numpy(img)
    pil = Image.fromarray(arr[..., 0], mode="L") if arr.shape[2] == 1 else Image.fromarray(arr, mode="RGB")
    return pil.convert(mode) if mode is not None and pil.mode != mode else pil


def raw_form_of(x: Any) -> RawForm:
    """The form of a dataset's raw sample: PIL image, numpy uint8 HWC, uint8 tensor, or float tensor.

    Raises:
        GanAugmentError: If the form is none of these.
    """
    if isinstance(x, Image.Image):
        return "pil"
    if isinstance(x, np.ndarray):
        return "numpy"
    if isinstance(x, torch.Tensor):
        return "tensor" if x.dtype == torch.uint8 else "float"
    raise GanAugmentError(
        f"cannot tell the image form of a base sample of type {type(x).__name__}: pass output_format="
        "'pil', 'numpy', 'tensor' or 'float'"
    )


def raw_channels(x: Any) -> tuple[int | None, bool]:
    """``(channels, plain 2-D)`` of a raw base item: a CHW tensor, an HWC or HW array; None for others."""
    if isinstance(x, torch.Tensor) and x.ndim in (2, 3):
        return (1, True) if x.ndim == 2 else (int(x.shape[0]), False)
    if isinstance(x, np.ndarray) and x.ndim in (2, 3):
        return (1, True) if x.ndim == 2 else (int(x.shape[-1]), False)
    return None, False


def raw_size(x: Any) -> tuple[int, int] | None:
    """(H, W) of a raw item: a PIL image, an HWC or HW array, a CHW or HW tensor; None if unknown."""
    if isinstance(x, Image.Image):
        return (x.height, x.width)
    if isinstance(x, np.ndarray) and x.ndim in (2, 3):
        return (int(x.shape[0]), int(x.shape[1]))
    if isinstance(x, torch.Tensor) and x.ndim in (2, 3):
        return (int(x.shape[-2]), int(x.shape[-1]))
    return None


def rgb_to_gray(images: torch.Tensor) -> torch.Tensor:
    """RGB images (..., 3, H, W) → gray (..., 1, H, W): torchvision's ``rgb_to_grayscale`` (ITU-R 601 luma),
    the one RGB → gray conversion in the package. uint8 stays uint8, rounded to the nearest level
    (torchvision would truncate); float stays float."""
    gray = TF.rgb_to_grayscale(images if images.is_floating_point() else images.float())  # float in, float out
    return gray.round().clamp(0, 255).to(torch.uint8) if images.dtype == torch.uint8 else gray


def match_images(images: torch.Tensor, size: tuple[int, int] | None, channels: int | None) -> torch.Tensor:
    """Images (N, C, H, W) at ``size`` (bilinear, antialiased) and ``channels`` (gray repeated, or RGB
    to ITU-R 601 luma); None leaves that as it is. uint8 images stay uint8 (rounded), float ones float."""
    integer = images.dtype == torch.uint8

    def back(x: torch.Tensor) -> torch.Tensor:
        return x.round().clamp(0, 255).to(torch.uint8) if integer else x

    if size is not None and len(images) and tuple(images.shape[-2:]) != tuple(size):
        images = back(F.interpolate(images.float(), size=tuple(size), mode="bilinear", antialias=True))
    if channels is not None and len(images) and images.shape[1] != channels:
        if channels == 3:
            images = images.repeat(1, 3, 1, 1)
        else:
            images = rgb_to_gray(images)
    return images


def to_raw(img: torch.Tensor, form: RawForm, mode: str | None = None) -> Any:
    """One uint8 (C, H, W) tensor in a dataset's raw form (``float``: CHW in [0, 1]; ``mode``: PIL mode to match)."""
    if form == "tensor":
        return img.clone()
    if form == "float":
        return img.float().div(255)
    if form == "numpy":
        return to_hwc_numpy(img)
    return to_pil(img, mode)


def make_grid(images: torch.Tensor, rows: int, padding: int = 2) -> Image.Image:
    """Tile uint8 images (N, C, H, W) into a white-padded grid of ``rows`` rows (row-major), as a PIL image."""
    n = images.shape[0]
    cols = max(1, -(-n // max(1, rows)))
    if n < rows * cols:  # torchvision draws only the rows it needs: blank cells keep the asked shape
        blank = torch.full((rows * cols - n, *images.shape[1:]), 255, dtype=torch.uint8)
        images = torch.cat([images, blank])
    grid = tv_make_grid(images, nrow=cols, padding=padding, pad_value=255)  # (3, H', W') uint8
    return to_pil(grid[:1] if images.shape[1] == 1 else grid)


def label_grid(
    grid: Image.Image, rows: int, row_names: list[str] | None = None, title: str | None = None
) -> Image.Image:
    """``grid`` with each row's name in a left margin and ``title`` in a band above (RGB, white)."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default()
    names = [printable(n) for n in row_names or []]  # one line each: a newline or escape is data, not layout
    names = [name if len(name) <= 24 else name[:23] + "…" for name in names]
    title = printable(title) if title else title
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = int(max((probe.textlength(n, font=font) for n in names), default=0)) + 8 if names else 0
    band = 16 if title else 0
    out = Image.new("RGB", (grid.width + margin, grid.height + band), "white")
    out.paste(grid.convert("RGB"), (margin, band))
    draw = ImageDraw.Draw(out)
    if title:
        draw.text((margin + 2, 2), title, fill="black", font=font)
    row_h = grid.height / max(rows, 1)
    for r, name in enumerate(names[:rows]):
        draw.text((4, band + r * row_h + row_h / 2), name, fill="black", font=font, anchor="lm")
    return out


def save_image_atomic(image: Image.Image, path: str | os.PathLike[str]) -> None:
    """Save a PIL image as PNG atomically."""
    atomic_write(path, lambda f: image.save(f, format="PNG"))
