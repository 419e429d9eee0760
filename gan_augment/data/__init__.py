"""Data: folder scanning (torchvision's class list), decoding, the decode cache, ``ImageData``, splits,
the demo data."""

from .cache import load_image_data
from .decode import (
    decode_folder,
    decode_image,
    iter_decoded,
    iter_decoded_files,
    labeled_side,
    native_image_size,
    to_channels,
)
from .folders import (
    LABELED_EXTENSIONS,
    UNLABELED_EXTENSIONS,
    find_classes,
    is_image_folder,
    safe_folder_names,
    scan_folders,
    walk_images,
)
from .image_data import ImageData, content_digest, memory_data, summary
from .split import (
    copies_of,
    draw_long_tailed,
    draw_per_class,
    fill_classes,
    long_tailed_counts,
    stratified_split,
    without_copies,
)

__all__ = [
    "content_digest",
    "copies_of",
    "LABELED_EXTENSIONS",
    "UNLABELED_EXTENSIONS",
    "ImageData",
    "decode_folder",
    "decode_image",
    "iter_decoded",
    "iter_decoded_files",
    "find_classes",
    "is_image_folder",
    "labeled_side",
    "load_image_data",
    "long_tailed_counts",
    "memory_data",
    "native_image_size",
    "safe_folder_names",
    "scan_folders",
    "draw_long_tailed",
    "draw_per_class",
    "fill_classes",
    "stratified_split",
    "without_copies",
    "summary",
    "to_channels",
    "walk_images",
]
