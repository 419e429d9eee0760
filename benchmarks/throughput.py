"""Training, sampling and feature-extraction throughput: the package against a plain reference loop.

The reference is written here in the style of the PyTorch DCGAN example: eager fp32, Adam(2e-4,
β1=0.5), BCE on logits, data from a ``DataLoader`` moved to the device each step, and in per-class
mode one model trained after another. It uses the package's own Generator and Discriminator with
the same configuration, so only the training engine differs. Both run in the same process, on
random images of the same shape (throughput does not depend on content), with DiffAugment off in
both so that they do the same work per image (the package's trainer still does its EMA update).

    python benchmarks/throughput.py                 # GPU cases if CUDA is there, else the CPU (demo) cases
    python benchmarks/throughput.py --quick         # a few steps: checks the code path, numbers meaningless
    python benchmarks/throughput.py --demo          # CPU: also time `gan-augment demo` end to end

Writes ``docs/results/throughput.json`` (records of other device kinds are kept) and the table in
``docs/performance.md`` between the markers of this device kind.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from gan_augment import ModelConfig, TrainConfig, __version__
from gan_augment.config import COMPILE_MODES
from gan_augment.data import ImageData
from gan_augment.models import Discriminator, Generator
from gan_augment.plugins import extract_features
from gan_augment.progress import Reporter
from gan_augment.sampling import sample
from gan_augment.train import Checkpointer, Trainer
from gan_augment.train import pair as training_pair

ROOT = Path(__file__).resolve().parents[1]


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def random_data(k: int, per_class: int, channels: int, size: int) -> ImageData:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (k * per_class, channels, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(k).repeat_interleave(per_class)
    return ImageData(images=images, labels=labels, class_names=[f"c{i}" for i in range(k)], files=[], skipped=[])


def flops_of(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


# ----------------------------------------------------------------------------- the reference loop
class ReferenceLoop:
    """The PyTorch DCGAN example's training loop for one model (optionally class-conditional)."""

    def __init__(
        self, cfg: ModelConfig, images: torch.Tensor, labels: torch.Tensor, batch: int, dev: torch.device
    ) -> None:
        self.dev, self.cfg, self.batch = dev, cfg, batch
        self.conditional = cfg.num_classes > 0
        self.g, self.d = Generator(cfg).to(dev), Discriminator(cfg).to(dev)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        ds = TensorDataset(images.float().div(127.5).sub(1), labels)
        self.loader = DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, pin_memory=dev.type == "cuda")
        self.it = iter(self.loader)

    def step(self) -> None:
        try:
            x, y = next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            x, y = next(self.it)
        x, y = x.to(self.dev), y.to(self.dev)
        y_in = y if self.conditional else None
        b = x.shape[0]
        ones, zeros = torch.ones(b, device=self.dev), torch.zeros(b, device=self.dev)
        self.d.zero_grad()
        F.binary_cross_entropy_with_logits(self.d(x, y_in), ones).backward()
        noise = torch.randn(b, self.cfg.z_dim, device=self.dev)
        fake = self.g(noise, y_in)
        F.binary_cross_entropy_with_logits(self.d(fake.detach(), y_in), zeros).backward()
        self.opt_d.step()
        self.g.zero_grad()
        F.binary_cross_entropy_with_logits(self.d(fake, y_in), ones).backward()
        self.opt_g.step()


def time_steps(step: Callable[[], None], n: int, dev: torch.device) -> float:
    """Seconds per call of ``step`` over ``n`` calls (after the caller's warm-up)."""
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    sync(dev)
    return (time.perf_counter() - t0) / n


def reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def peak_gb(dev: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(dev) / 2**30, 3) if dev.type == "cuda" else None


class ReferenceRun:
    """The reference for one case: per-class trains the classes one after another (one loop each)."""

    def __init__(self, mode: str, cfg: ModelConfig, data: ImageData, batch: int, dev: torch.device) -> None:
        if mode == "per-class":
            self.loops = [
                ReferenceLoop(cfg, data.images[data.labels == c], data.labels[data.labels == c], batch, dev)
                for c in range(len(data.class_names))
            ]
        else:
            ccfg = replace(cfg, num_classes=len(data.class_names)) if mode == "conditional" else cfg
            self.loops = [ReferenceLoop(ccfg, data.images, data.labels, batch, dev)]
        self.images_per_step = batch  # one loop's step

    def seconds_per_step(self, steps: int, dev: torch.device) -> float:
        """Each class's loop for ``steps`` steps in turn; seconds per (one model's) step."""
        return sum(time_steps(loop.step, steps, dev) for loop in self.loops) / len(self.loops)


class PackageRun:
    """The package's trainer (grouped per-class models, data on the device, fused Adam, bf16 on CUDA)."""

    def __init__(
        self,
        mode: str,
        cfg: ModelConfig,
        data: ImageData,
        batch: int,
        dev: torch.device,
        compile: str = "off",
    ) -> None:
        self.tcfg = TrainConfig(
            mode=mode,
            image_size=cfg.image_size,
            channels=cfg.channels,
            batch_size=batch,
            steps=10**6,
            pretrain_steps=0,
            diffaugment="off",
            model=cfg,
        )
        self.trainer = Trainer(self.tcfg, data, dev, Reporter(quiet=True), compile=compile)
        self.images_per_step = self.trainer.images_per_step()

    def seconds_per_step(self, steps: int, dev: torch.device) -> float:
        return time_steps(self.trainer.train_step, steps, dev)


def training_case(
    name: str,
    mode: str,
    cfg: ModelConfig,
    data: ImageData,
    batch: int,
    steps: int,
    warmup: int,
    dev: torch.device,
    reference: bool = True,
    rounds: int = 3,
    compile: str = "off",
) -> tuple[dict[str, Any], torch.nn.Module]:
    """Reference and package timed in alternating rounds (medians), so drift of a shared machine hits both.

    With ``compile`` other than ``off``, the package's trainer with ``torch.compile`` in that mode
    is a third contender in the same rounds (its compilation, the first warm-up steps, timed apart).
    """
    with tempfile.TemporaryDirectory() as tmp:
        ref = ref_flops = ref_peak = None
        if reference:
            reset_peak(dev)
            ref = ReferenceRun(mode, cfg, data, batch, dev)
            for loop in ref.loops:
                for _ in range(warmup):
                    loop.step()
            ref_flops = flops_of(ref.loops[0].step)  # one model's step
            ref_peak = peak_gb(dev)
        reset_peak(dev)
        base = torch.cuda.memory_allocated(dev) / 2**30 if dev.type == "cuda" else 0.0
        pkg = PackageRun(mode, cfg, data, batch, dev)
        for _ in range(warmup):
            pkg.trainer.train_step()
        pkg_peak = None if dev.type != "cuda" else round(peak_gb(dev) - base, 3)  # type: ignore[operator]
        if mode == "per-class":
            # FlopCounterMode over-counts grouped convolutions' backward (it ignores groups): count
            # one class model's step, as an unconditional trainer at the same batch, times K.
            single = Trainer(pkg.tcfg.replace(mode="unconditional"), data, dev, Reporter(quiet=True))
            pkg_flops = flops_of(single.train_step) * len(data.class_names)
            del single
        else:
            pkg_flops = flops_of(pkg.trainer.train_step)
        cpk, compile_s = None, None
        if compile != "off":
            torch._dynamo.reset()
            cpk = PackageRun(mode, cfg, data, batch, dev, compile=compile)
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(max(3, warmup)):  # compilation (and CUDA-graph recording) happens here
                cpk.trainer.train_step()
            sync(dev)
            compile_s = time.perf_counter() - t0
        ref_times, pkg_times, cpk_times = [], [], []
        for _ in range(rounds):
            if ref is not None:
                ref_times.append(ref.seconds_per_step(steps, dev))
            pkg_times.append(pkg.seconds_per_step(steps, dev))
            if cpk is not None:
                cpk_times.append(cpk.seconds_per_step(steps, dev))
        sampler = Checkpointer(Path(tmp)).sampling_generator(pkg.trainer)
    t_pkg = float(np.median(pkg_times))
    t_ref = float(np.median(ref_times)) if ref_times else None
    ref_ips = ref.images_per_step / t_ref if ref is not None and t_ref else None
    pkg_ips = pkg.images_per_step / t_pkg
    rec: dict[str, Any] = {
        "case": name,
        "mode": mode,
        "image_size": cfg.image_size,
        "channels": cfg.channels,
        "classes": len(data.class_names),
        "batch": batch,
        "steps_timed": steps,
        "rounds": rounds,
        "img_per_s": round(pkg_ips, 1),
        "ms_per_step": round(1e3 * t_pkg, 3),
        "img_per_s_rounds": [round(pkg.images_per_step / t, 1) for t in pkg_times],
        "tflops": round(pkg_flops / t_pkg / 1e12, 4),
        "peak_gpu_mem_gb": pkg_peak,
        "reference_img_per_s": round(ref_ips, 1) if ref_ips else None,
        "reference_img_per_s_rounds": [round(batch / t, 1) for t in ref_times] if ref_times else None,
        "reference_ms_per_step": round(1e3 * t_ref, 3) if t_ref else None,
        "reference_tflops": round(ref_flops / t_ref / 1e12, 4) if ref_flops and t_ref else None,
        "reference_peak_gpu_mem_gb": ref_peak,
        "speedup": round(pkg_ips / ref_ips, 2) if ref_ips else None,
    }
    if cpk is not None:
        t_cpk = float(np.median(cpk_times))
        c_ips = cpk.images_per_step / t_cpk
        rec.update(
            {
                "compiled": compile,
                "compile_seconds": round(compile_s or 0.0, 1),
                "compiled_img_per_s": round(c_ips, 1),
                "compiled_ms_per_step": round(1e3 * t_cpk, 3),
                "compiled_img_per_s_rounds": [round(cpk.images_per_step / t, 1) for t in cpk_times],
                "compiled_speedup": round(c_ips / ref_ips, 2) if ref_ips else None,
            }
        )
    print(
        f"{name:>20}: {rec['img_per_s']:>10.0f} img/s ({rec['ms_per_step']:.2f} ms/step)"
        + (f"  reference {rec['reference_img_per_s']:.0f} img/s  speedup {rec['speedup']:.2f}×" if ref_ips else "")
        + (
            f"  compiled ({compile}) {rec['compiled_img_per_s']:.0f} img/s after {rec['compile_seconds']:.0f} s"
            if cpk
            else ""
        ),
        flush=True,
    )
    return rec, sampler


def sampling_case(generator: torch.nn.Module, n: int, dev: torch.device, batch: int) -> dict[str, Any]:
    """Images/s of ``sample`` (noise → uint8 images on the CPU), per-class generator, classes cycling."""
    reset_peak(dev)
    sample(generator, min(n, batch), seed=0, batch_size=batch)  # warm-up
    sync(dev)
    t0 = time.perf_counter()
    sample(generator, n, seed=1, batch_size=batch)
    sync(dev)
    rate = n / (time.perf_counter() - t0)
    print(f"{'sampling':>20}: {rate:>10.0f} img/s", flush=True)
    return _inference_record("sampling", n, batch, rate, dev)


def _inference_record(case: str, n: int, batch: int, rate: float, dev: torch.device) -> dict[str, Any]:
    """The table row of an inference case (no reference loop to compare with)."""
    return {
        "case": case,
        "images": n,
        "batch": batch,
        "img_per_s": round(rate, 1),
        "peak_gpu_mem_gb": peak_gb(dev),
        "reference_img_per_s": None,
        "speedup": None,
    }


def features_case(cfg: ModelConfig, n: int, dev: torch.device, batch: int) -> dict[str, Any]:
    """Images/s of ``extract_features`` (all blocks, 4×4 max-pooled) from float images on the CPU."""
    reset_peak(dev)
    d = Discriminator(cfg).to(dev).eval()
    images = torch.rand(n, cfg.channels, cfg.image_size, cfg.image_size) * 2 - 1
    with torch.no_grad():
        extract_features(d, images[:batch], batch_size=batch)
        sync(dev)
        t0 = time.perf_counter()
        extract_features(d, images, batch_size=batch)
        sync(dev)
    rate = n / (time.perf_counter() - t0)
    print(f"{'features':>20}: {rate:>10.0f} img/s", flush=True)
    return _inference_record("features", n, batch, rate, dev)


def demo_case() -> dict[str, Any]:
    """Wall time of ``gan-augment demo`` (the README's first command), in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "gan_augment.cli", "demo", "--out", tmp, "--quiet", "--device", "cpu"], check=True
        )
        seconds = time.perf_counter() - t0
    print(f"{'demo':>20}: {seconds:.1f} s wall", flush=True)
    return {
        "case": "demo",
        "seconds": round(seconds, 1),
        "img_per_s": None,
        "reference_img_per_s": None,
        "speedup": None,
        "peak_gpu_mem_gb": None,
    }


# ----------------------------------------------------------------------------- report
def table(records: list[dict[str, Any]]) -> str:
    def f(v: Any, fmt: str) -> str:
        return "–" if v is None else format(v, fmt)

    lines = [
        "| case | images | batch | reference img/s | package img/s | speedup | package ms/step | TFLOP/s (ref → pkg) "
        "| peak GPU GB (ref → pkg) | compiled img/s (speedup; compile s) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for r in records:
        if r["case"] == "demo":
            lines.append(
                f"| demo (`gan-augment demo`, wall) | – | – | – | – | – | {r['seconds']:.1f} s in all | – | – | – |"
            )
            continue
        shape = f"{r.get('classes', '')}× " if r.get("mode") == "per-class" else ""
        shape += f"{r['image_size']}²×{r['channels']}" if "image_size" in r else f"{r['images']:,}"
        lines.append(
            f"| {r['case']} | {shape} | {r['batch']}{' per class' if r.get('mode') == 'per-class' else ''} | "
            f"{f(r['reference_img_per_s'], ',.0f')} | {f(r['img_per_s'], ',.0f')} | "
            f"{f(r['speedup'], '.2f')}{'×' if r['speedup'] else ''} | "
            f"{f(r.get('ms_per_step'), '.2f')} | {f(r.get('reference_tflops'), '.3f')} → {f(r.get('tflops'), '.3f')} | "
            f"{f(r.get('reference_peak_gpu_mem_gb'), '.2f')} → {f(r.get('peak_gpu_mem_gb'), '.2f')} | "
            + (
                f"{r['compiled_img_per_s']:,.0f} "
                f"({f(r.get('compiled_speedup'), '.2f')}×; {r['compile_seconds']:.0f} s) |"
                if r.get("compiled")
                else "– |"
            )
        )
    return "\n".join(lines)


def write_reports(
    records: list[dict[str, Any]], meta: dict[str, Any], kind: str, json_path: Path, md_path: Path
) -> None:
    old: list[dict[str, Any]] = []
    if json_path.is_file():
        old = [r for r in json.loads(json_path.read_text()).get("results", []) if r.get("device") != kind]
    for r in records:
        r.update({"device": kind, "machine": meta["machine"], "torch": meta["torch"], "commit": meta["commit"]})
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({**meta, "results": old + records}, indent=2) + "\n")
    start, end = f"<!-- throughput:{kind}:start -->", f"<!-- throughput:{kind}:end -->"
    block = (
        f"{start}\n_Written by `benchmarks/throughput.py` on {meta['machine']}, torch {meta['torch']}, "
        f"gan-augment {meta['version']}, commit {meta['commit']}; {meta['note']}_\n\n{table(records)}\n{end}"
    )
    text = md_path.read_text() if md_path.is_file() else "# Performance\n"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    md_path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--quick", action="store_true", help="a few steps of each case (checks the code path)")
    p.add_argument("--demo", action="store_true", help="also time `gan-augment demo` (CPU)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per case")
    p.add_argument(
        "--compile",
        default=None,
        choices=list(COMPILE_MODES),
        help="also time the trainer under torch.compile in this mode "
        "(default: reduce-overhead on CUDA, off on the CPU)",
    )
    p.add_argument("--compile-backend", default="inductor", help=argparse.SUPPRESS)  # tests: aot_eager
    p.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "throughput.json")
    p.add_argument("--markdown", type=Path, default=ROOT / "docs" / "performance.md")
    args = p.parse_args(argv)
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    torch.manual_seed(0)
    gpu = dev.type == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
    steps = args.steps or (2 if args.quick else (50 if gpu else 15))
    compile = args.compile or ("reduce-overhead" if gpu else "off")
    training_pair.COMPILE_BACKEND = args.compile_backend
    warmup = 1 if args.quick else (10 if gpu else 3)
    records = []
    if gpu and not args.quick:
        # The issue's cases: 32×32 RGB per-class (10 classes, batch 64 each), conditional at batch 128
        # and 1,024, unconditional 64×64 at batch 128, a 64×64 per-class run for the 8 GB budget.
        c32 = ModelConfig(image_size=32, channels=3)
        c64 = ModelConfig(image_size=64, channels=3, upsample="transposed")
        d32, d64 = random_data(10, 500, 3, 32), random_data(10, 500, 3, 64)
        rec, sampler = training_case("per-class", "per-class", c32, d32, 64, steps, warmup, dev, compile=compile)
        records.append(rec)
        records.append(
            training_case("conditional", "conditional", c32, d32, 128, steps, warmup, dev, compile=compile)[0]
        )
        records.append(
            training_case("conditional-1024", "conditional", c32, d32, 1024, steps, warmup, dev, compile=compile)[0]
        )
        records.append(
            training_case("unconditional-64", "unconditional", c64, d64, 128, steps, warmup, dev, compile=compile)[0]
        )
        records.append(training_case("per-class-64", "per-class", c64, d64, 64, steps, warmup, dev, reference=False)[0])
        records.append(sampling_case(sampler, 200_000, dev, 8192))
        records.append(features_case(c32, 100_000, dev, 4096))
        note = (
            "random images; DiffAugment off in both loops; bf16 autocast in the package on CUDA, fp32 in the reference"
        )
    else:
        # The demo's configuration (16×16 grayscale, widths 16, z 32, batch 32 per class) on the CPU.
        demo = ModelConfig(image_size=16, channels=1, g_width=16, d_width=16, z_dim=32)
        data = random_data(10, 100, 1, 16)
        rec, sampler = training_case("per-class", "per-class", demo, data, 32, steps, warmup, dev, compile=compile)
        records.append(rec)
        records.append(training_case("conditional", "conditional", demo, data, 128, steps, warmup, dev)[0])
        records.append(training_case("unconditional", "unconditional", demo, data, 128, steps, warmup, dev)[0])
        records.append(sampling_case(sampler, 2_000 if args.quick else 20_000, dev, 1024))
        records.append(features_case(demo, 2_000 if args.quick else 20_000, dev, 1024))
        if args.demo:
            records.append(demo_case())
        note = (
            "demo configuration (16×16 grayscale, widths 16); random images; DiffAugment off in both loops; "
            f"{torch.get_num_threads()} threads"
        )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    machine = (
        torch.cuda.get_device_name(dev) if gpu else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    )
    meta = {
        "machine": machine,
        "torch": torch.__version__,
        "commit": commit,
        "version": __version__,
        "note": note,
        "quick": args.quick,
    }
    write_reports(records, meta, "cuda" if gpu else "cpu", args.json, args.markdown)
    print(f"wrote {args.json} and {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
