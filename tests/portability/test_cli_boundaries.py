"""The two command lines share code only through ``smtpd_compat.common`` and public
names: the legacy CLI takes no private name of the modern face, the modern CLI
imports nothing legacy, and ``common`` imports neither face."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

from tests.portability._platforms import REPO_ROOT


def imports(path: Path) -> Iterator[Tuple[str, str]]:
    """(module, name) for every ``from module import name`` and ``import module`` in ``path``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ""


def test_legacy_cli_takes_only_public_names_of_the_modern_face() -> None:
    taken = [(module, name) for module, name in imports(REPO_ROOT / "smtpd_compat/legacy/cli.py")
             if module.startswith("smtpd_compat.modern")]
    assert taken and all(not name.startswith("_") for _, name in taken), taken


def test_modern_cli_imports_nothing_legacy() -> None:
    legacy = [(module, name) for module, name in imports(REPO_ROOT / "smtpd_compat/modern/main.py")
              if module.startswith("smtpd_compat.legacy") or module in ("smtpd_compat", "smtpd_compat.asyncore")]
    assert legacy == []


def test_common_imports_neither_face() -> None:
    for path in sorted((REPO_ROOT / "smtpd_compat/common").glob("*.py")):
        faces = [module for module, _ in imports(path)
                 if module.startswith(("smtpd_compat.legacy", "smtpd_compat.modern", "smtpd_compat.asyn"))]
        assert faces == [], path.name
