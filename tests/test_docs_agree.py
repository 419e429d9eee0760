"""Issue 32: the docs agree with the code. In README.md and docs/*.md every relative link and anchor
resolves; every ``--option`` on a ``gan-augment`` command line, or in a command's option table, is one of
that command's; and every default such a table quotes is the command's own."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import typer.main

from gan_augment.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMANDS: dict[str, Any] = dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```")


def options(command: str) -> dict[str, Any]:
    """Every ``--option`` spelling of ``command`` (both halves of a ``--flag/--no-flag``) → its parameter."""
    found: dict[str, Any] = {"--help": None}
    for param in COMMANDS[command].params:
        for opt in [*param.opts, *getattr(param, "secondary_opts", [])]:
            if opt.startswith("--"):
                found[opt] = param
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFC", heading.strip().lower())
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def headings(path: Path) -> set[str]:
    out, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        fenced ^= bool(FENCE.match(line))
        if not fenced and line.startswith("#"):
            out.add(slug(line.lstrip("#")))
    return out


def prose_lines(path: Path) -> list[tuple[int, str, bool]]:
    """(line number, line, inside a code block) of a Markdown file."""
    rows, fenced = [], False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        rows.append((n, line, fenced))
    return rows


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(doc: Path) -> None:
    broken = []
    for n, line, fenced in prose_lines(doc):
        for target in [] if fenced else LINK.findall(line):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            dest = (doc.parent / path_part).resolve() if path_part else doc
            if not dest.exists():
                broken.append(f"{doc.name}:{n}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in headings(dest):
                broken.append(f"{doc.name}:{n}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_section_named_in_words_exists(doc: Path) -> None:
    """``see "RGB on a CPU" below`` names a heading of the same page (one that did not exist misled users)."""
    named = re.findall(r'"([^"\n]+)" (?:below|above)', doc.read_text(encoding="utf-8"))
    missing = [name for name in named if slug(name) not in headings(doc)]
    assert not missing, f"{doc.name}: no such section: {missing}"


def command_lines(doc: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, command, its --options) of each ``gan-augment COMMAND ...`` line in a code block."""
    found = []
    for n, line, fenced in prose_lines(doc):
        m = re.match(r"^\s*(?:\$ )?gan-augment (\w+)(.*)$", line) if fenced else None
        if m and m.group(1) in COMMANDS:
            words = m.group(2).split("#")[0].split()
            found.append((n, m.group(1), [w.split("=")[0] for w in words if w.startswith("--")]))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_option_on_a_command_line_is_the_commands(doc: Path) -> None:
    unknown = [
        f"{doc.name}:{n}: gan-augment {command} {opt}"
        for n, command, opts in command_lines(doc)
        for opt in opts
        if opt not in options(command)
    ]
    assert not unknown, "\n".join(unknown)


def option_tables(doc: Path) -> list[tuple[int, str, list[str], str]]:
    """(line number, command, options, quoted default) of each option-table row, the command from the
    section heading above it (``## ... `gan-augment COMMAND` ...``)."""
    rows, command = [], None
    for n, line, fenced in prose_lines(doc):
        if not fenced and line.startswith("#"):
            m = re.search(r"`gan-augment (\w+)`", line)
            command = m.group(1) if m and m.group(1) in COMMANDS else (None if line.startswith("## ") else command)
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| `--") else []
        if command and len(cells) >= 3:
            rows.append((n, command, re.findall(r"`(--[a-z0-9-]+)", cells[0]), cells[1]))
    return rows


def quoted(default: str) -> tuple[list[str], list[str]] | None:
    """The values a table quotes (``5``, ``auto``, ``off``; ``64, 64, 100`` for a row of three options) and
    those it quotes ``(... on a CPU)``; None when it says it in words."""
    m = re.fullmatch(r"`?([\w.+-]+(?:, [\w.+-]+)*)`?(?: \(([\w.+-]+(?:, [\w.+-]+)*) on a CPU\))?", default)
    if m is None:
        return None
    return m.group(1).split(", "), (m.group(2) or "").split(", ") if m.group(2) else []


def config_default(option: str, cpu: bool) -> Any:
    """``fit``'s value for an option whose CLI default is None (the configuration's, by device)."""
    from gan_augment.config import TrainConfig, for_device

    config = for_device("cpu") if cpu else TrainConfig()
    name = option.removeprefix("--").replace("-", "_")
    return getattr(config, name) if hasattr(config, name) else getattr(config.model, name, None)


def same(doc_value: str, code: Any) -> bool:
    if isinstance(code, bool):
        return doc_value == ("on" if code else "off")
    if isinstance(code, (int, float)):
        try:
            return float(doc_value) == float(code)
        except ValueError:
            return False
    return doc_value == str(getattr(code, "value", code))


def row_errors(command: str, opts: list[str], default: str) -> list[str]:
    """What an option-table row gets wrong: options the command lacks, defaults it does not have."""
    known = options(command)
    wrong = [f"{command} has no {opt}" for opt in opts if opt not in known]
    values = quoted(default)
    if wrong or values is None:
        return wrong
    for cpu, quoted_values in ((False, values[0]), (True, values[1])):
        if not quoted_values:
            continue
        pairs = zip(opts, quoted_values if len(quoted_values) == len(opts) else quoted_values * len(opts))
        for opt, value in pairs:
            param = known[opt]
            code = param.default if param.default is not None and not cpu else None
            if code is None and command == "fit":
                code = config_default(opt, cpu)
            if code is not None and not same(value, code):
                wrong.append(
                    f"{command} {opt} defaults to {code!r}{' on a CPU' if cpu else ''}, the docs say {value!r}"
                )
    return wrong


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_option_table_names_the_commands_options_and_their_defaults(doc: Path) -> None:
    wrong = [f"{doc.name}:{n}: {e}" for n, command, opts, default in option_tables(doc)
             for e in row_errors(command, opts, default)]  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_the_checks_see_the_docs() -> None:
    """The parsers find what they check: links, command lines and table rows (a check that finds nothing
    passes whatever the docs say)."""
    usage = ROOT / "docs" / "usage.md"
    assert len(LINK.findall(usage.read_text())) > 10
    assert len(command_lines(usage)) > 10 and len(option_tables(usage)) > 15
    assert "colour-photos-the-self-trained-teacher" in headings(usage)
    assert not same("5", 4) and same("off", False) and same("auto", "auto")
    assert quoted("5000 (400 on a CPU)") == (["5000"], ["400"]) and quoted("`auto`") == (["auto"], [])
    assert row_errors("fit", ["--steps"], "5000 (400 on a CPU)") == []
    assert row_errors("fit", ["--steps"], "4000 (400 on a CPU)") and row_errors(
        "fit", ["--steps"], "5000 (300 on a CPU)"
    )
    assert row_errors("fit", ["--no-such"], "1") and row_errors("fit", ["--lr-g", "--lr-d"], "3e-4")
