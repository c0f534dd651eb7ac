"""The package graph: ``models`` is a leaf and deepscope's packages import each other without cycles.

Both tests read the source (every import statement, at module level and inside functions, including
``TYPE_CHECKING`` blocks), so an import hidden in a function body counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "deepscope"
#: What ``deepscope.models`` must never import (the packages above it).
ABOVE_MODELS = ("train", "predict", "evaluate", "pipeline", "cli", "tasks")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, imported module)`` of every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    inside = SRC.parent in path.resolve().parents
    module = _module_name(path) if inside else path.stem
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def _package(module: str) -> str | None:
    """The sub-package of a deepscope module (``deepscope.models.base`` -> ``models``); None outside deepscope."""
    parts = module.split(".")
    if parts[0] != "deepscope":
        return None
    if len(parts) == 1:
        return "deepscope"
    top = parts[1]
    return top if (SRC / top).is_dir() or (SRC / f"{top}.py").exists() else "deepscope"


def _graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> where (``file:line``)."""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(SRC.rglob("*.py")):
        src = _package(_module_name(path))
        for line, mod in _imports(path):
            dst = _package(mod)
            if dst and src and dst != src and dst != "deepscope":
                edges[src][dst].append(f"{path.relative_to(SRC.parent)}:{line}")
    return edges


@pytest.mark.parametrize("path", sorted((SRC / "models").rglob("*.py")), ids=lambda p: p.name)
def test_models_imports_nothing_above_it(path):
    bad = [f"line {line}: {mod}" for line, mod in _imports(path)
           if _package(mod) in ABOVE_MODELS]
    # a dynamic import by name would hide the same dependency
    tree = ast.parse(path.read_text())
    bad += [f"line {n.lineno}: string {n.value!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and any(n.value.startswith(f"deepscope.{p}") for p in ABOVE_MODELS)]
    assert not bad, f"deepscope.models must not depend on {ABOVE_MODELS}: {path.name} " + "; ".join(bad)


def test_no_import_cycle_between_packages():
    edges = _graph()
    assert edges, "no imports found: the test is not reading the sources"
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                where = [f"{a} -> {b} ({edges[a][b][0]})" for a, b in zip(cycle, cycle[1:])]
                pytest.fail("import cycle between deepscope packages: " + "; ".join(where))
            if state.get(nxt) is None:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for pkg in sorted(edges):
        if state.get(pkg) is None:
            visit(pkg)


def test_the_checks_see_function_level_imports(tmp_path):
    """The AST walk finds an import inside a function body (the kind that hid the old cycle)."""
    f = tmp_path / "m.py"
    f.write_text("def fit():\n    from deepscope.train.trainer import Trainer\n    return Trainer\n")
    assert (2, "deepscope.train.trainer") in _imports(f)
