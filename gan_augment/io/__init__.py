"""Files and forms: atomic writes, the checkpoint format and run record, models rebuilt from runs, image forms."""

from .atomic import atomic_torch_save, atomic_write, atomic_write_json, atomic_write_text
from .checkpoint import (
    CHECKPOINT_NAME,
    FORMAT_VERSION,
    load_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
    strip_prefixes,
)
from .images import (
    RawForm,
    make_grid,
    raw_form_of,
    save_image_atomic,
    to_chw_uint8,
    to_hwc_numpy,
    to_pil,
    to_raw,
    to_uint8,
    to_unit,
)
from .rebuild import GeneratorInfo, build_discriminator, build_generator, load_discriminator, load_generator
from .record import RunRecord, TrainState, load_run

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT_VERSION",
    "GeneratorInfo",
    "RawForm",
    "RunRecord",
    "TrainState",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "build_discriminator",
    "build_generator",
    "load_checkpoint",
    "load_discriminator",
    "load_generator",
    "load_run",
    "make_grid",
    "raw_form_of",
    "resolve_checkpoint_path",
    "save_checkpoint",
    "save_image_atomic",
    "strip_prefixes",
    "to_chw_uint8",
    "to_hwc_numpy",
    "to_pil",
    "to_raw",
    "to_uint8",
    "to_unit",
]
