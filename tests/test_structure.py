"""The shape of the code base: small modules, small classes, no import cycles, layers kept apart."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "engine", "replay")
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 300


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _top_level_imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names) for the imports a module runs when it is loaded (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.Try, ast.If)) else [node]:
            if isinstance(sub, ast.Import):
                found.extend((a.name, []) for a in sub.names)
            elif isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    parts = package.split(".")
                    base = ".".join([*parts[: len(parts) - sub.level + 1], base]).strip(".")
                found.append((base, [a.name for a in sub.names]))
    return found


def _resolve(target: str, names: list[str]) -> list[str]:
    """Project modules an import loads: the module itself, or ``pkg.name`` when ``name`` is a submodule."""
    out = []
    if target in MODULES:
        out.append(target)
    out.extend(f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES)
    return out


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_over_the_limit(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines (limit {MAX_MODULE_LINES})"


def test_no_class_in_monitor_over_the_limit() -> None:
    big = []
    for name, path in MODULES.items():
        if not name.startswith("monitor"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    big.append(f"{name}.{node.name}: {size} lines")
    assert not big, big


def test_no_private_name_imported_across_subpackages() -> None:
    """Across subpackages, code imports what a subpackage's ``__init__`` exports, never its private modules."""

    def owner(module: str) -> str:
        """The package a module belongs to."""
        path = MODULES.get(module)
        return module if path is not None and path.name == "__init__.py" else module.rpartition(".")[0]

    bad = []
    for name, path in MODULES.items():
        for target, names in _top_level_imports(name, path):
            if not target.startswith(PACKAGES) or owner(target) == owner(name):
                continue
            private_module = any(part.startswith("_") for part in target.split(".")[1:])
            private_names = [n for n in names if n.startswith("_")]
            if private_module or private_names:
                bad.append(f"{name}: from {target} import {', '.join(names)}")
    assert not bad, "\n".join(bad)


def test_no_import_cycle() -> None:
    graph = {
        name: {dep for target, names in _top_level_imports(name, path) for dep in _resolve(target, names)} - {name}
        for name, path in MODULES.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
