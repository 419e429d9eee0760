"""What a trainer writes and reads back: the sampling generator and its grids, the checkpoint dict, restoring it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import RunDirError, UsageError, WriteError
from ..io.checkpoint import CHECKPOINT_NAME, check_weights, save_checkpoint
from ..io.images import save_image_atomic
from ..models import Generator, PerClassGenerator, unpack_states
from ..sampling import class_grid
from ..seeds import BATCHNORM_RECALIBRATION
from .pair import AdamSettings, recalibrate_batchnorm

if TYPE_CHECKING:
    from .trainer import Trainer


def _no_labels(n: int) -> None:
    return None


def _to_cpu(obj: Any) -> Any:
    """A nested state with every tensor moved to the CPU (for gathering across ranks)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


# -------------------------------------------------------------------- the sampling generator
def recalibrate(t: Trainer) -> None:
    """Recompute the EMA generator's BatchNorm statistics for this step (once per step)."""
    if t._calibrated_step == t.step:
        return
    labels = t.batches.cycle_labels if t.phase == "conditional" else _no_labels
    share = (t.num_classes, t.batches.my_class_idx) if t.phase == "per-class" else None
    recalibrate_batchnorm(
        t.pair.g_ema, labels, seed=t.config.seed + BATCHNORM_RECALIBRATION, batch_size=t.batch_size, groups_of=share
    )
    t._calibrated_step = t.step


def _ema_states(t: Trainer) -> list[dict[str, torch.Tensor]]:
    """This rank's EMA generator states, one per model."""
    return unpack_states(t.pair.g_ema.state_dict(), t.pair.groups)


def _build_sampler(t: Trainer, g_ema_states: list[dict[str, torch.Tensor]]) -> nn.Module:
    if t.phase != "per-class":
        return t.pair.g_ema
    gens = []
    for state in g_ema_states:
        with torch.device("meta"):  # no initialisation: it would draw from training's RNG
            g = Generator(t.pair.g_ema.config)
        g.load_state_dict(state, assign=True)
        gens.append(g.requires_grad_(False).eval())
    return PerClassGenerator(gens)


def sampling_generator(t: Trainer) -> nn.Module:
    """This rank's EMA generator(s) as one module with ``G(z, y)``, BatchNorm recalibrated for this step."""
    if t._sampler is None or t._sampler[0] != t.step:
        recalibrate(t)
        t._sampler = (t.step, _build_sampler(t, _ema_states(t)))
    return t._sampler[1]


def job_states(t: Trainer, local: Callable[[], list[Any]]) -> list[Any] | None:
    """``local()``'s per-model states for the whole job on rank 0 (per-class: gathered from every
    rank, in class order; other phases: rank 0's own); None on other ranks. Collective."""
    if not t.dist.enabled:
        return local()
    mine = _to_cpu(local()) if (t.phase == "per-class" or t.dist.is_main) else None
    gathered = t.dist.gather(mine)
    if not t.dist.is_main:
        return None
    return [st for part in gathered for st in part] if t.phase == "per-class" else gathered[0]


def save_samples(t: Trainer) -> Path | None:
    """Write this step's sample grid (rank 0; every rank must call it in a multi-process job)."""
    if t.dist.enabled and t.phase == "per-class":  # the grid needs every rank's classes
        recalibrate(t)
        states = job_states(t, lambda: _ema_states(t))
        if states is None:
            return None
        gen = _build_sampler(t, [{k: v.to(t.device) for k, v in st.items()} for st in states])
    elif not t.dist.is_main:
        return None
    else:
        gen = sampling_generator(t)
    path = t.out_dir / "samples" / f"step_{t.step:06d}.png"
    title = f"step {t.step}" + (" (pre-training, all images)" if t.phase == "pretrain" else "")
    upscale = max(1, 64 // t.config.image_size)
    grid = class_grid(gen, per_row=10, seed=t.config.seed, upscale=upscale, class_names=t.data.class_names, title=title)
    save_image_atomic(grid, path)
    return path


# -------------------------------------------------------------------- checkpoints
def checkpoint_dict(t: Trainer) -> dict[str, Any] | None:
    """The run's checkpoint dict (None on ranks other than 0; every rank must call it in a job)."""
    recalibrate(t)  # recalibrated EMA statistics go into the checkpoint
    rng: dict[str, Any] = {"torch": torch.get_rng_state(), "trainer": t.gen.get_state().cpu(), "device": str(t.device)}
    if t.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(t.device)
    models = job_states(t, t.pair.states)
    ranks = t.dist.gather(rng)
    if models is None:
        return None
    if t.dist.enabled:
        rng = {**rng, "world": t.dist.world, "ranks": ranks}
    kept = {"pretrained": t.pretrained} if t.pretrained is not None else {}  # per-class: the shared models
    return {
        "config": t.config.to_dict(),
        "model_config": t.model_cfg.to_dict(),
        "mode": t.config.mode,
        "phase": t.phase,
        "step": t.step,
        "pretrain_steps": t.pretrain_steps,
        "total_steps": t.total_steps,
        "models": models,
        "class_names": list(t.data.class_names),
        "image_size": t.config.image_size,
        "channels": t.channels,
        "normalization": {"mean": 0.5, "std": 0.5, "range": [-1.0, 1.0]},
        "diffaugment": t.diffaugment,
        "data": {**t.data.fingerprint(), **{k: v for k, v in t.sources.items() if v is not None}},
        "train_state": {
            "lr_g": t.adam.lr_g,
            "lr_d": t.adam.lr_d,
            "batch_size": t.batch_size,
            "rollbacks": t.rollbacks,
            "oom_retries": t.oom_retries,
        },
        "rng": rng,
        "elapsed_s": t.elapsed,
        **kept,
    }


def save(t: Trainer) -> Path:
    """Write the checkpoint atomically; a failed write leaves the previous checkpoint intact."""
    path = t.out_dir / CHECKPOINT_NAME
    ckpt = checkpoint_dict(t)
    if ckpt is not None:
        try:
            save_checkpoint(ckpt, path)
        except WriteError as exc:
            then = (
                "the previous checkpoint is intact; free disk space or fix the folder's permissions, then --resume"
                if path.is_file()
                else "no checkpoint was written yet; free disk space or fix the folder's permissions, then run "
                "the same command again (no --resume or --overwrite needed)"
            )
            raise WriteError(
                f"could not write the checkpoint {str(path)!r} at step {t.step} ({exc.reason}): {then}", exc.reason
            ) from None
    return path


def _restore_rng(t: Trainer, rng: dict[str, Any]) -> None:
    if t.dist.enabled or "ranks" in rng:
        if rng.get("world", 1) == t.dist.world:
            rng = rng["ranks"][t.dist.rank]
        else:
            t.reporter.message(
                f"resuming with {t.dist.world} processes instead of {rng.get('world', 1)}: random streams reseeded"
            )
            rng = {**rng, "device": "reseed"}
    torch.set_rng_state(rng["torch"])
    if rng.get("device") == str(t.device):
        t.gen.set_state(rng["trainer"])
        if t.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], t.device)
        return
    if rng.get("device") != "reseed":
        t.reporter.message(f"resuming on {t.device} instead of {rng.get('device')}: random stream reseeded")
    t.gen.manual_seed(t.config.seed + 1 + t.step)


def restore(t: Trainer, ckpt: dict[str, Any]) -> None:
    """Restore models, optimisers, training state and RNG states from a checkpoint dict."""
    fp = t.data.fingerprint()
    key = "real_files_sha256" if "real_files_sha256" in ckpt["data"] else "files_sha256"  # older runs: as given
    if ckpt["data"].get(key) != fp[key]:
        raise RunDirError(
            f"the images differ from those the run in {str(t.out_dir)!r} was trained on "
            f"({ckpt['data'].get('num_images')} then, {fp['num_images']} now): resume with the "
            "same folders, or start a new run with --out elsewhere or --overwrite"
        )
    t.step = int(ckpt["step"])
    t.elapsed = float(ckpt.get("elapsed_s", 0.0))
    # Checkpoints before train_state kept the changed rates and batch size in their config.
    state = ckpt.get("train_state") or {}
    saved = ckpt["config"]
    t.adam = AdamSettings(
        float(state.get("lr_g", saved["lr_g"])), float(state.get("lr_d", saved["lr_d"])), t.adam.betas
    )
    t.batch_size = int(state.get("batch_size", saved["batch_size"]))
    # The budgets already spent stay spent: a resumed run does not get its roll-backs back.
    t.rollbacks, t.oom_retries = int(state.get("rollbacks", 0)), int(state.get("oom_retries", 0))
    t.phase = ckpt["phase"]
    t.pretrained = ckpt.get("pretrained")
    if ModelConfig.from_dict(ckpt["model_config"]).to_dict() != t.model_cfg.to_dict():
        raise UsageError("its model_config does not match the models its config describes")
    t.pair = t.new_pair(t.phase)
    states = list(ckpt["models"])
    for entry in states:
        for part in ("g", "g_ema", "d"):
            check_weights(entry[part])
    if t.phase == "per-class":
        states = [states[c] for c in t.my_classes]  # this rank's share
    t.pair.load_states(states[: t.pair.groups])
    _restore_rng(t, ckpt["rng"])
