"""The layering ARCHITECTURE.md promises, checked on the source: no import
cycle between the project's modules (TYPE_CHECKING imports included), the
engine imports nothing of the project but itself, ``common`` neither face,
the modern face never the legacy one, and the legacy face no ``modern.*``
module (its CLI, which can serve modern handlers, excepted)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parents[2] / "smtpd_compat"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> Dict[str, Set[str]]:
    files = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: Dict[str, Set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: List[str] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                targets += [module] + [module + "." + alias.name for alias in node.names]
        deps = set()
        for target in targets:
            while target and target not in files:
                target = target.rpartition(".")[0]
            # The package root re-exports the legacy face: not a layer.
            if target and target not in (name, "smtpd_compat"):
                deps.add(target)
        graph[name] = deps
    return graph


GRAPH = _graph()


def _reachable_cycle(start: str) -> List[str]:
    path: List[str] = []

    def visit(node: str) -> bool:
        if node in path:
            path.append(node)
            return node == start
        path.append(node)
        if any(visit(dep) for dep in sorted(GRAPH[node])):
            return True
        path.pop()
        return False

    return path if visit(start) else []


def test_no_import_cycles() -> None:
    cycles = [cycle for cycle in map(_reachable_cycle, sorted(GRAPH)) if cycle]
    assert not cycles, cycles


def _imports(prefix: str) -> Dict[str, Set[str]]:
    return {name: deps for name, deps in GRAPH.items() if name.startswith(prefix)}


def test_layers() -> None:
    for name, deps in _imports("smtpd_compat.engine").items():
        assert all(dep.startswith("smtpd_compat.engine") for dep in deps), (name, deps)
    for name, deps in _imports("smtpd_compat.common").items():
        assert all(dep.startswith(("smtpd_compat.engine", "smtpd_compat.common")) for dep in deps), (name, deps)
    for name, deps in _imports("smtpd_compat.modern").items():
        assert not any(dep.startswith("smtpd_compat.legacy") for dep in deps), (name, deps)
    for name, deps in _imports("smtpd_compat.legacy").items():
        if name != "smtpd_compat.legacy.cli":
            assert not any(dep.startswith("smtpd_compat.modern") for dep in deps), (name, deps)
