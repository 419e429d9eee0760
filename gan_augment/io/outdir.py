"""Which files in an output folder the package wrote: the only ones it may replace or remove.

Every folder a command writes into (a run of ``fit``, a classifier of ``classify``, an evaluation,
the demo's folder, an ImageFolder of ``sample --per-class``) gets a marker file,
:data:`MARKER_NAME`, before anything else; the marker names the kinds of output written there. A
file counts as the package's own only when the folder's marker names a kind (a :class:`Layout`)
whose paths include the file's. Nested outputs (the GAN run inside a classifier's folder, the
evaluation's runs, the demo's run) are folders of their own, with their own marker, reached only
through the paths their parent's layout names. A user's ``config.json`` in a folder without the
marker is never removed or written over; a user's ``notes.txt`` in a run folder is never touched.
Runs written before the marker existed are recognised by their checkpoint (a gan-augment archive).
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import RunDirError
from .atomic import atomic_write_text
from .checkpoint import CHECKPOINT_NAME, CLASSIFIER_NAME, TEACHER_NAME, TEACHER_TRAINING_NAME

MARKER_NAME = ".gan-augment-run"
CLASS_NAMES_FILE = "class_names.json"  # beside a set of samples: folder names → the run's class names


@dataclass(frozen=True)
class Layout:
    """The paths one kind of output writes in its folder.

    Attributes:
        kind: Its name in the marker.
        files: Exact relative paths (``/``-separated).
        patterns: Relative paths whose parts are regular expressions (see :func:`matches`).
        results: Files whose presence means the folder holds a finished output of this kind.
        nested: Relative folders that are outputs of their own (each with its marker), and their layout.
    """

    kind: str
    files: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    nested: tuple[tuple[str, str], ...] = ()  # (regex of a relative folder, kind)

    def owns(self, rel: str) -> bool:
        """Whether ``rel`` (relative, ``/``-separated) is a path this kind writes."""
        return rel in self.files or any(matches(p, rel) for p in self.patterns)


def matches(pattern: str, rel: str) -> bool:
    """Whether the relative path ``rel`` matches ``pattern``, one ``/``-separated part at a time (each
    part a regular expression matched whole, ASCII only: ``[0-9]`` and ``\\d`` are 0-9)."""
    ps, rs = pattern.split("/"), rel.split("/")
    return len(ps) == len(rs) and all(re.fullmatch(p, r, flags=re.ASCII) for p, r in zip(ps, rs))


_GRID = r"samples/step_[0-9]{6,}\.png"
_BOARD = r"tensorboard/events\.out\.tfevents\..+"  # TensorBoard's event files (--tensorboard)
RUN = Layout(
    "run",
    files=(
        CHECKPOINT_NAME,
        CLASSIFIER_NAME,
        TEACHER_NAME,
        TEACHER_TRAINING_NAME,
        "config.json",
        "metrics.jsonl",
        "metrics.json",
    ),
    patterns=(_GRID, _BOARD),
    results=(CHECKPOINT_NAME, CLASSIFIER_NAME),
    nested=(("gan", "run"),),  # classify --method features: its unconditional GAN
)
EVALUATION = Layout(
    "evaluation",
    files=("evaluation.json", "evaluation.md", "evaluation.png", "evaluation-progress.json"),
    patterns=(_BOARD,),
    results=("evaluation.json",),
    nested=((r"runs/.+", "run"),),
)
DEMO = Layout(
    "demo",
    files=("data/README.txt",),
    patterns=(r"data/labeled/[0-9]/digit_[0-9]{4}\.png", r"data/unlabeled/digit_[0-9]{4}\.png"),
    results=("data/README.txt",),
    nested=(("run", "run"),),
)
SAMPLES = Layout(
    "samples",
    files=(CLASS_NAMES_FILE,),
    patterns=(r".+/synthetic_[0-9]{6,}\.png",),
)
LAYOUTS = {layout.kind: layout for layout in (RUN, EVALUATION, DEMO, SAMPLES)}


def is_regular_or_absent(path: Path) -> bool:
    """Whether ``path`` is missing or a plain file (not a link, FIFO, socket, device or folder)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return True


def real_dir(path: Path) -> bool:
    """Whether ``path`` is a folder and not a link to one."""
    return path.is_dir() and not path.is_symlink()


def _own_dirs(folder: Path, layout: Layout) -> list[str]:
    """The real folders (relative; ``""`` for ``folder``) where ``layout``'s paths may lie: entered only
    when they are real folders, never links, and never into nested outputs."""
    nested = [p + "/x" for p, _ in layout.nested]  # the folders up to a nested output
    depth = max([p.count("/") for p in (*layout.files, *layout.patterns, *nested)], default=0)
    dirs, level = [""], [""]
    for _ in range(depth):
        level = [
            f"{sub}/{e.name}" if sub else e.name
            for sub in level
            for e in _scandir(folder / sub if sub else folder)
            if _is_dir(e) and not _is_nested(layout, f"{sub}/{e.name}" if sub else e.name)
        ]
        dirs += level
    return dirs


def _dir_prefixes(layout: Layout) -> list[str]:
    """Regular expressions of the folders (relative) that ``layout``'s paths pass through."""
    out = set()
    for path in (*(re.escape(f) for f in layout.files), *layout.patterns, *(p + "/x" for p, _ in layout.nested)):
        parts = path.split("/")[:-1]
        out |= {"/".join(parts[: i + 1]) for i in range(len(parts))}
    return sorted(out)


def _entries(folder: Path, layout: Layout) -> list[tuple[str, bool]]:
    """``(relative path, is a real folder)`` of every entry in the folders where ``layout``'s paths may lie."""
    return [
        (f"{sub}/{e.name}" if sub else e.name, _is_dir(e))
        for sub in _own_dirs(folder, layout)
        for e in _scandir(folder / sub if sub else folder)
    ]


def _links_on_the_way(folder: Path, layout: Layout, entries: list[tuple[str, bool]]) -> list[str]:
    """Links (or files) where ``layout`` expects its folders (``samples/``, ``data/labeled/3/``): the
    package would write through them, so they are refused."""
    prefixes = _dir_prefixes(layout)
    return [rel for rel, is_dir in entries if not is_dir and any(matches(p, rel) for p in prefixes)]


def _is_nested(layout: Layout, rel: str) -> bool:
    return any(matches(p, rel) for p, _ in layout.nested)


def nested_outputs(folder: Path, layout: Layout) -> list[tuple[Path, Layout]]:
    """The nested output folders of ``layout`` that exist under ``folder`` (real folders only)."""
    out = []
    for pattern, kind in layout.nested:
        depth = pattern.count("/") + 1
        candidates = [folder]
        for _ in range(depth):
            candidates = [c / e.name for c in candidates if real_dir(c) for e in _scandir(c) if _is_dir(e)]
        for c in candidates:
            if matches(pattern, c.relative_to(folder).as_posix()):
                out.append((c, LAYOUTS[kind]))
    return out


def _scandir(folder: Path) -> list[os.DirEntry[str]]:
    try:
        return sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    return entry.is_dir(follow_symlinks=False)


def own_names(folder: Path, layout: Layout = RUN, entries: list[tuple[str, bool]] | None = None) -> list[str]:
    """The paths (relative, ``/``-separated) under ``folder`` that ``layout`` writes and that exist
    now, whoever wrote them (nested outputs excluded). Links are listed too (removing a link never
    touches its target)."""
    entries = _entries(folder, layout) if entries is None else entries
    return sorted(rel for rel, is_dir in entries if not is_dir and layout.owns(rel))


def marked_kinds(folder: Path) -> set[str]:
    """The kinds of output the package wrote in ``folder``, from its marker (or, for runs from
    before the marker, from a gan-augment checkpoint)."""
    marker = folder / MARKER_NAME
    if marker.is_file() and not marker.is_symlink():
        try:
            record = json.loads(marker.read_text()[:10_000])
        except (OSError, ValueError):
            record = {}
        kinds = record.get("kinds") if isinstance(record, dict) else None
        return {str(k) for k in kinds} if isinstance(kinds, list) else {"run"}  # markers before kinds: runs
    return {"run"} if any(_is_our_archive(folder / name) for name in RUN.results) else set()


def is_marked(folder: Path, layout: Layout = RUN) -> bool:
    """Whether the package wrote an output of ``layout``'s kind in ``folder``."""
    return layout.kind in marked_kinds(folder)


def is_output_folder(folder: Path) -> bool:
    """Whether ``folder`` holds any output of the package's (its marker): never data to train on."""
    return os.path.lexists(folder / MARKER_NAME)


def _is_our_archive(path: Path) -> bool:
    """A torch.save archive holding gan-augment's ``format_version`` record (read without unpickling)."""
    if path.is_symlink() or not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:  # the record of a checkpoint is small: a larger one is not ours
            records = [i for i in z.infolist() if i.filename.endswith("/data.pkl") and i.file_size < 2**26]
            return any(b"format_version" in z.read(info) for info in records)
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return False


def not_ours(folder: Path, layout: Layout = RUN) -> list[str]:
    """Paths in ``folder`` (nested outputs included) where ``layout`` would write, that hold something
    the package did not write: files of the user's at its paths, or links and special files."""
    if not folder.is_dir():
        return []
    entries = _entries(folder, layout)  # one listing for both questions
    foreign = own_names(folder, layout, entries)
    if is_marked(folder, layout):  # ours, but what sits at our paths must be plain files: never written through
        foreign = [n for n in foreign if not is_regular_or_absent(folder / n)]
    foreign += _links_on_the_way(folder, layout, entries)
    for nested, inner in nested_outputs(folder, layout):
        foreign += [f"{nested.relative_to(folder).as_posix()}/{n}" for n in not_ours(nested, inner)]
    return foreign


def holds_result(folder: Path, layout: Layout) -> bool:
    """Whether ``folder`` holds a finished output of ``layout``."""
    return any(os.path.lexists(folder / r) for r in layout.results)


def unclaimed_nested(folder: Path, layout: Layout) -> list[Path]:
    """Nested output folders that hold something although ``folder`` is not marked with ``layout``'s
    kind: an output of its own (a run fitted there by hand), never the parent's to replace."""
    if is_marked(folder, layout):
        return []
    return [n for n, inner in nested_outputs(folder, layout) if own_names(n, inner) or is_output_folder(n)]


def check_output_folder(folder: Path, layout: Layout, overwrite: bool, what: str = "--out") -> None:
    """The one check every command makes before any work on a folder it will write ``layout`` into.

    Raises:
        RunDirError: If ``folder`` is a file; if files the package did not write (or links) sit
            at its paths, even with ``overwrite``; if it holds a finished output and ``overwrite``
            is not set.
    """
    if os.path.lexists(folder) and not folder.is_dir():
        raise RunDirError(f"{what} {str(folder)!r} is a file: pass a folder")
    foreign = not_ours(folder, layout)
    if foreign:
        path = folder / foreign[0]
        if not is_regular_or_absent(path) and not path.is_dir() or path.is_symlink():
            raise RunDirError(
                f"{str(path)!r} is a link or a special file where gan-augment writes: it never writes through "
                f"links or into special files, even with --overwrite; remove it, or pass another {what}"
            )
        raise RunDirError(
            f"{str(path)!r} was not written by gan-augment (the folder has no marker of its {layout.kind}): it is "
            f"never replaced or removed, even with --overwrite; move it, or pass another {what}"
        )
    for nested in unclaimed_nested(folder, layout):
        raise RunDirError(
            f"{str(nested)!r} holds an output of gan-augment's that is not part of a {layout.kind} in {str(folder)!r}: "
            f"it is never replaced, even with --overwrite; move it, or pass another {what}"
        )
    if not overwrite and folder.is_dir() and holds_result(folder, layout):
        raise RunDirError(
            f"{str(folder)!r} already holds a gan-augment {layout.kind}: pass --overwrite to replace it, "
            f"or another {what}"
        )


def mark(folder: Path, layout: Layout = RUN) -> None:
    """Create ``folder`` if needed and write its marker naming ``layout``'s kind (before any other
    file the package writes there)."""
    kinds = marked_kinds(folder) if folder.is_dir() else set()
    if os.path.lexists(folder / MARKER_NAME) and layout.kind in kinds:
        return
    record = {"written_by": "gan-augment", "kinds": sorted(kinds | {layout.kind})}
    atomic_write_text(folder / MARKER_NAME, json.dumps(record) + "\n")


def remove_own(folder: Path, layout: Layout = RUN) -> None:
    """Remove ``layout``'s files from ``folder`` if the package marked it with that kind, and its
    nested outputs' files likewise; folders of its paths go only if that leaves them empty.
    Anything else stays."""
    if not real_dir(folder) or not is_marked(folder, layout):
        return
    for nested, inner in nested_outputs(folder, layout):
        remove_own(nested, inner)
    for name in own_names(folder, layout):
        (folder / name).unlink(missing_ok=True)
        remove_empty_parents(folder, name)


def remove_empty_parents(folder: Path, rel: str) -> None:
    """Remove the folders of ``rel`` below ``folder`` that are left empty (deepest first)."""
    parent = (folder / rel).parent
    while parent != folder and folder in parent.parents:
        try:
            parent.rmdir()  # only if empty
        except OSError:
            return
        parent = parent.parent


def remove_stale_temporaries(folder: Path, layout: Layout = RUN) -> None:
    """Remove the temporary files (``.NAME.XXXX.tmp``) that a killed write of one of the package's
    files left; a user's own hidden ``.tmp`` files do not match and stay."""
    if not real_dir(folder):
        return
    for sub in _own_dirs(folder, layout):
        for e in _scandir(folder / sub if sub else folder):
            if not (e.name.startswith(".") and e.name.endswith(".tmp")) or not e.is_file(follow_symlinks=False):
                continue
            name = e.name[1:].rsplit(".", 2)[0]  # ".NAME.XXXX.tmp" -> NAME
            rel = f"{sub}/{name}" if sub else name
            if layout.owns(rel) or rel == MARKER_NAME:
                os.unlink(e.path)


def check_new_output(
    path: Path, overwrite: bool, what: str = "--out", inputs: dict[str, Path | str] | None = None
) -> None:
    """Refuse to replace an existing file (a user's, or an earlier result) unless ``overwrite``, and an output
    file inside one of the command's ``inputs`` (``{name: folder}``): it would replace one of the files read
    (an image, with ``--overwrite``) or be read as one next time.

    Raises:
        RunDirError: If ``path`` exists and ``overwrite`` is not set, is a folder, or lies inside an input.
    """
    if path.is_dir():
        raise RunDirError(f"{what} {str(path)!r} is a folder: pass a file name")
    here = Path(os.path.realpath(path))
    for name, folder in (inputs or {}).items():
        if Path(os.path.realpath(folder)) in here.parents:
            raise RunDirError(
                f"{what} {str(path)!r} is inside the {name} {str(folder)!r}: it would replace or join the files "
                f"read from there; write it outside that folder"
            )
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise RunDirError(f"{str(path)!r} already exists: pass --overwrite to replace it, or another {what}")


def prepare_output(folder: Path, layout: Layout, overwrite: bool, what: str = "--out") -> None:
    """Check ``folder`` (:func:`check_output_folder`), then remove what an earlier output of the same
    kind left there (only its own files and interrupted temporaries) and mark it."""
    check_output_folder(folder, layout, overwrite, what)
    if real_dir(folder):
        remove_stale_temporaries(folder, layout)
        remove_own(folder, layout)
    mark(folder, layout)


def check_apart(out: Path, labeled: Path | str | None, unlabeled: Path | str | None, what: str = "--out") -> None:
    """Refuse an output folder and data folders that would mix: ``out`` inside (or equal to) LABELED
    (its files would become a class or class images), LABELED or UNLABELED inside (or equal to)
    ``out``, or ``out`` equal to UNLABELED. An ``out`` inside UNLABELED is allowed: output folders
    are never read as images (:func:`is_output_folder`), so such a run can be resumed.

    Raises:
        RunDirError: Naming both folders.
    """
    here = Path(os.path.realpath(out))
    for name, folder in (("LABELED", labeled), ("UNLABELED", unlabeled)):
        if folder is None:
            continue
        data = Path(os.path.realpath(folder))
        if here == data or (name == "LABELED" and data in here.parents):
            raise RunDirError(
                f"{what} {str(out)!r} is inside the {name} folder {str(folder)!r}: the package's files would be read "
                f"as {'a class' if name == 'LABELED' else 'images'}; pass an {what} outside it"
            )
        if here in data.parents:
            raise RunDirError(
                f"the {name} folder {str(folder)!r} is inside {what} {str(out)!r}: keep data and outputs apart; "
                f"pass an {what} that does not hold your images"
            )
