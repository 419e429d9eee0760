"""``gan-augment report``: one self-contained HTML page for a run or an evaluation (images embedded,
nothing fetched), to look at instead of reading JSON."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import GanAugmentError
from ..io.atomic import atomic_write_text
from ..io.checkpoint import CHECKPOINT_NAME
from ..io.images import make_grid
from ..io.outdir import RUN
from ..io.rebuild import load_generator
from ..io.record import load_run
from ..progress import printable
from ..sampling import sample
from ..train.teacher_status import describe_teacher, teacher_line
from .imbalance import imbalance_ratio, is_imbalanced

MAX_GRIDS = 6  # sample grids shown, spread over training
MAX_IMAGE_BYTES = 20 * 2**20  # a larger "sample grid" is not embedded
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
    "figure{display:inline-block;margin:.5em;vertical-align:top}img{max-width:100%;image-rendering:pixelated}"
    "figcaption{text-align:center;color:#555}figure.small img{width:320px}"
)


def write_report(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write the HTML report of a run directory (``gan-augment fit``) or an evaluation folder
    (``gan-augment evaluate``) to ``out``; returns ``out``.

    Raises:
        GanAugmentError: If ``source`` is neither.
    """
    src = Path(source)
    if (src / "evaluation.json").is_file():
        title, body = f"gan-augment evaluation: {printable(src.name)}", _evaluation_body(src)
    elif (src / CHECKPOINT_NAME).is_file():
        title, body = f"gan-augment run: {printable(src.name)}", _run_body(src)
    else:
        raise GanAugmentError(
            f"{str(src)!r} holds neither a run (checkpoint.pt) nor an evaluation (evaluation.json): pass a folder "
            "written by `gan-augment fit` or `gan-augment evaluate`"
        )
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
    atomic_write_text(out, page)
    return Path(out)


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...] | None = None) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    top = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" if head else ""
    return f"<table>{top}{cells}</table>"


def _img(png: bytes, caption: str, small: bool = False) -> str:
    data = base64.b64encode(png).decode()
    alt, kind = html.escape(caption), ' class="small"' if small else ""
    return f'<figure{kind}><img src="data:image/png;base64,{data}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'


def _png_file(path: Path) -> bytes | None:
    """The bytes of a PNG written by the package, or None (anything else is not embedded)."""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_IMAGE_BYTES:
        return None
    data = path.read_bytes()
    return data if data.startswith(PNG_SIGNATURE) else None


def _run_body(run: Path) -> str:
    record = load_run(run)  # every field checked as it is read: what follows only formats it
    names = [printable(n) for n in record.class_names]
    data, config = record.data, record.config.to_dict()
    overview = [
        ("mode", record.mode),
        ("step", f"{record.state.step} of {record.total_steps} ({record.pretrain_steps} pre-training)"),
        ("images", f"{record.image_size}×{record.image_size}, {record.channels} channel(s)"),
        ("classes", f"{len(names)}: {', '.join(names)}"),
        ("data", f"{data.get('num_labeled')} labeled + {data.get('num_unlabeled')} unlabeled images"),
        ("trained for", f"{record.state.elapsed_s:.1f} s"),
        ("teacher", printable(teacher_line(describe_teacher(run)))),
    ]
    latest, earlier = _grids(run)
    parts = ["<h2>Run</h2>", _table(overview), "<h2>Latest samples</h2>", latest]
    parts += _classes(run, names, data.get("class_counts"), record.mode)
    parts += ["<h2>Losses and D(x)</h2>", _curves(run / "metrics.jsonl")]
    parts += ["<h2>Samples over training</h2>", earlier]
    parts += ["<h2>Configuration</h2>", _table([(k, v) for k, v in config.items() if k != "model"])]
    return "".join(parts)


MAX_CLASS_STRIPS = 50  # classes shown one by one; more are summed up in the table alone
STRIP = 10  # samples per class


def _classes(run: Path, names: list[str], counts: Any, mode: str) -> list[str]:
    """Per class: its labeled images (an imbalance is said) and, for a class-aware generator, a strip of
    its samples from the latest checkpoint (the averaged generator), to look at the rare classes."""
    counts = [int(c) for c in counts] if isinstance(counts, list) and len(counts) == len(names) else None
    rows = [(n, counts[i] if counts else "?") for i, n in enumerate(names)]
    parts = ["<h2>Classes</h2>", _table(rows, ("class", "labeled images"))]
    if counts and min(counts) > 0 and is_imbalanced(counts):
        parts.append(
            f"<p>Imbalanced: the largest class has {imbalance_ratio(counts):.0f} times the images of the "
            "smallest. A class of a handful of images is the one its model can only copy: compare its strip "
            "with its images.</p>"
        )
    if mode == "unconditional":
        return parts
    gen, _ = load_generator(run, device="cpu")
    for c, name in enumerate(names[:MAX_CLASS_STRIPS]):
        strip = make_grid(sample(gen, STRIP, labels=torch.full((STRIP,), c), seed=c), rows=1)
        strip = strip.resize((strip.width * 2, strip.height * 2), Image.Resampling.NEAREST)
        buffer = io.BytesIO()
        strip.save(buffer, format="PNG")
        parts.append(_img(buffer.getvalue(), f"{name}: {rows[c][1]} labeled", small=True))
    if len(names) > MAX_CLASS_STRIPS:
        parts.append(f"<p>The other {len(names) - MAX_CLASS_STRIPS} classes are in the grids above.</p>")
    return parts


def _grids(run: Path) -> tuple[str, str]:
    """The last sample grid, large, and up to ``MAX_GRIDS - 1`` earlier ones spread over training, small."""
    folder = run / "samples"
    grids = sorted(p for p in folder.glob("step_*.png") if RUN.owns(f"samples/{p.name}")) if folder.is_dir() else []
    if len(grids) > MAX_GRIDS:  # spread over training, the last one always
        grids = [grids[round(i * (len(grids) - 1) / (MAX_GRIDS - 1))] for i in range(MAX_GRIDS)]
    shown = [(f"step {int(p.stem.split('_')[1])}", png) for p in grids if (png := _png_file(p)) is not None]
    if not shown:
        return "<p>No sample grid yet.</p>", ""
    earlier = "".join(_img(png, caption, small=True) for caption, png in shown[:-1])
    return _img(shown[-1][1], shown[-1][0]), earlier or "<p>Only the latest grid so far.</p>"


CURVE_KEYS = ("step", "loss_d", "loss_g", "d_real", "d_fake")
MAX_LINE = 1 << 16  # a metrics row is a few hundred bytes; a longer line is not one


def _metric_rows(path: Path) -> list[dict[str, Any]]:
    """The logged steps of ``metrics.jsonl``, read a line at a time, keeping only the curves' numbers
    (events and other fields are passed over). A malformed line (cut short by a kill, edited by
    hand, too long) is skipped with a warning naming the file and its first such line."""
    rows, bad = [], []
    if not path.is_file() or path.is_symlink():
        return rows
    with open(path, "rb") as f:
        for number, line in enumerate(iter(lambda: f.readline(MAX_LINE), b""), start=1):
            if not line.endswith(b"\n") and len(line) == MAX_LINE:  # the rest of an overlong line is skipped
                while (rest := f.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                    pass
                bad.append(number)
                continue
            try:
                row = json.loads(line)
            except ValueError:
                bad.append(number)
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int) and _number(row.get("loss_d")):
                rows.append({k: row[k] for k in CURVE_KEYS if k == "step" or _number(row.get(k))})
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        warnings.warn(f"{str(path)!r}: line {bad[0]}{more} is not a metrics row and was skipped", stacklevel=2)
    return rows


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _curves(path: Path) -> str:
    rows = _metric_rows(path)
    if not rows:
        return "<p>No logged step yet.</p>"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    steps = [r["step"] for r in rows]
    for ax, keys in ((left, ("loss_d", "loss_g")), (right, ("d_real", "d_fake"))):
        for key in keys:
            ax.plot(steps, [float(r.get(key, float("nan"))) for r in rows], label=key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    left.set_title("discriminator and generator losses")
    right.set_title("D(x) on real, D(G(z)) on generated")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return _img(buf.getvalue(), f"{len(rows)} logged steps from metrics.jsonl")


MAX_REPORT_BYTES = 64 * 2**20  # an evaluation.json larger than this is not one the package wrote


def _evaluation_body(folder: Path) -> str:
    """The evaluation's page; a report that does not read as one the package wrote (edited, cut short, of
    other types) is one error naming the file, never a traceback."""
    path = folder / "evaluation.json"
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise ValueError(f"over {MAX_REPORT_BYTES // 2**20} MiB")
        report = json.loads(path.read_bytes().decode("utf-8"))
        return _evaluation_parts(folder, report)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, OSError) as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise GanAugmentError(
            f"{str(path)!r} is not an evaluation report as gan-augment writes it ({detail}): run the evaluation again"
        ) from None


def _evaluation_parts(folder: Path, report: dict[str, Any]) -> str:
    rows = [r for r in report["summary"] if isinstance(r, dict)]
    verdicts = [str(v) for v in report.get("verdicts", [])]
    caveats = [str(c) for c in report.get("caveats") or []]
    metric = str(report.get("metric") or "accuracy").replace("_", " ")
    head = ("labels per class", "arm", "seeds", metric, "gain vs baseline (95% CI)")
    table = [
        (
            r.get("labels_per_class"),
            r.get("arm"),
            r.get("n"),
            f"{float(r.get('mean', 0)):.4f} ± {float(r.get('std', 0)):.4f}",
            _gain(r),
        )
        for r in rows
    ]
    parts = ["<h2>Verdict</h2><ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in verdicts) + "</ul>"]
    if caveats:
        parts += ["<h2>Caveats</h2><ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in caveats) + "</ul>"]
    parts += ["<h2>Arms</h2>", _table(table, head)]
    recall, counts = report.get("per_class_recall"), report.get("class_counts") or []
    if isinstance(recall, dict) and recall and metric != "accuracy":
        rows = [(arm, *(f"{100 * float(v):.0f}" for v in values)) for arm, values in recall.items()]
        head_row = ("arm", *(f"class {c} ({n})" for c, n in enumerate(counts)))
        parts += ["<h2>Recall per class (%)</h2>", _table(rows, head_row if len(counts) == len(rows[0]) - 1 else None)]
    plot = _png_file(folder / "evaluation.png")
    if plot is not None:
        parts += ["<h2>Accuracy</h2>", _img(plot, "test accuracy by arm")]
    parts += [
        "<h2>Protocol</h2>",
        _table(
            [
                ("seeds", report.get("seeds")),
                ("test fraction", report.get("test_fraction")),
                ("test folder", report.get("test_dir")),
                ("run used", (report.get("run") or {}).get("path")),
            ]
        ),
    ]
    return "".join(parts)


def _gain(row: dict[str, Any]) -> str:
    if "gain" not in row:
        return ""
    gain, half = float(row["gain"]), float(row.get("gain_ci95", float("nan")))
    return f"{100 * gain:+.1f} pts" + (f" ± {100 * half:.1f}" if half == half else " (one seed: no interval)")
