"""The package's shape: small modules and functions, and layers that only import the layers below them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gan_augment"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50  # from ``def`` to the last line, docstring and signature included
# Bottom up; a module may import its own layer and those below it, never one above.
LAYERS = {
    "errors": 0,
    "config": 0,
    "progress": 0,
    "version": 0,
    "seeds": 0,
    "device": 1,
    "models": 2,
    "io": 3,
    "data": 4,
    "sampling": 5,
    "train": 6,
    "plugins": 7,
    "evaluate": 8,
    "classify": 8,
    "cli": 9,
    "__init__": 10,
    "__main__": 10,
}

MODULES = sorted(PACKAGE.rglob("*.py"))


def _layer(module: Path) -> str:
    return module.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_layers(parts: tuple[str, ...], source: str) -> set[str]:
    """Top-level package parts that the module at ``parts`` (its path in the package) imports."""
    folder = list(parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            if node.level - 1 > len(folder):
                continue
            target = folder[: len(folder) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            # ``from .. import name`` at the top: the module ``name``, or else the package itself (``__init__``)
            names = [a.name if (PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").is_file() else "__init__"
                     for a in node.names]  # fmt: skip
            found.update([target[0]] if target else names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gan_augment."):
            found.add(node.module.split(".")[1])
    return found


def test_every_module_is_placed_in_a_layer() -> None:
    assert {_layer(m) for m in MODULES} <= set(LAYERS), {_layer(m) for m in MODULES} - set(LAYERS)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: str(m.relative_to(PACKAGE)))
def test_module_and_function_sizes(module: Path) -> None:
    source = module.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long


@pytest.mark.parametrize("module", MODULES, ids=lambda m: str(m.relative_to(PACKAGE)))
def test_imports_go_down_the_layers(module: Path) -> None:
    own = LAYERS[_layer(module)]
    imported = _imported_layers(module.relative_to(PACKAGE).parts, module.read_text())
    above = sorted(layer for layer in imported if layer in LAYERS and LAYERS[layer] > own)
    assert not above, f"{module.relative_to(PACKAGE)} imports {above}, above its layer"


@pytest.mark.parametrize(
    ("parts", "line", "expected"),
    [
        (("io", "checkpoint.py"), "from ..errors import CheckpointError", {"errors"}),
        (("io", "checkpoint.py"), "from .atomic import atomic_write", {"io"}),
        (("models", "dcgan.py"), "from ..train.pair import GanPair", {"train"}),
        (("sampling.py",), "from .cli import app", {"cli"}),
        (("sampling.py",), "from . import train", {"train"}),
        (("data", "demo.py"), "from gan_augment.evaluate import ARMS", {"evaluate"}),
        (("io", "checkpoint.py"), "from .. import __version__", {"__init__"}),  # the whole package: not allowed
        (("io", "checkpoint.py"), "from .. import config", {"config"}),
    ],
)
def test_import_walker(parts: tuple[str, ...], line: str, expected: set[str]) -> None:
    """The walker resolves relative imports from subpackages and the top level, and absolute ones."""
    assert _imported_layers(parts, line) == expected


def _module_name(module: Path) -> str:
    parts = module.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(("gan_augment", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def _imports(module: Path, names: set[str]) -> set[str]:
    """The package's modules that ``module`` imports (a package's ``__init__`` when it imports the package),
    at any place in the file (inside functions and ``TYPE_CHECKING`` blocks too)."""
    me = _module_name(module)
    base = me.split(".") if module.name == "__init__.py" else me.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom):
            package = base[: len(base) - (node.level - 1)] if node.level else []
            target = ".".join(package + (node.module.split(".") if node.module else []))
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in names else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return (found & names) - {me}


def _circles() -> list[list[str]]:
    """Every import circle, as the path from a module back to itself (one per module in a circle)."""
    names = {_module_name(m): m for m in MODULES}
    graph = {name: _imports(path, set(names)) for name, path in names.items()}
    circles = []
    for start in graph:  # a depth-first walk from each module back to itself
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    circles.append([*path, start])
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return circles


def test_no_import_circles() -> None:
    """No module imports one that imports it back, directly or through a chain (a package's ``__init__``
    counts as the module its ``from .package import`` lines import)."""
    circles = sorted({" -> ".join(c) for c in _circles()})
    assert not circles, "\n".join(circles[:10])
