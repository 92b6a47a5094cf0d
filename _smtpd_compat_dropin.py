"""Start-up hook: top-level ``smtpd``, ``asyncore`` and ``asynchat`` on Python >= 3.12.

The wheel installs this module next to ``smtpd_compat`` with two one-line
files that run :func:`install` when the interpreter starts: ``smtpd_compat.pth``
(an ``import`` line, which every Python up to 3.14 runs) and
``smtpd_compat.start`` (a PEP 829 entry point; from Python 3.15 on, its
presence makes ``site`` skip the ``import`` line of the ``.pth`` of the same
name, which is deprecated there).

:func:`install` only puts one finder at the front of ``sys.meta_path``;
nothing of ``smtpd_compat`` is imported until a program imports one of the
three names.  They are then the very module objects ``smtpd_compat``,
``smtpd_compat.asyncore`` and ``smtpd_compat.asynchat``, so what legacy code
assigns (``smtpd.DEBUGSTREAM``, ``asyncore.socket_map``, ``smtpd.socket``)
reaches this project's code.  ``smtpd.<name>`` stands for
``smtpd_compat.<name>``: ``python -m smtpd`` runs ``smtpd_compat.__main__``.

``SMTPD_COMPAT_TOPLEVEL=0`` in the environment leaves the three names alone
(then only ``import smtpd_compat`` works, or another distribution's
``smtpd``).  Python <= 3.11 still has its own modules and is never touched.

PYTEST_DONT_REWRITE: the distribution declares a pytest plugin, so pytest
would mark this module for assertion rewriting, find it imported already by
the start-up hook and warn in every test run of every project that has
smtpd_compat installed; this marker tells pytest to leave it alone.
"""

from __future__ import annotations

import os
import sys

# Nothing beyond what site.py has already loaded: typing alone would cost
# every interpreter start ~10 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Optional, Sequence

__all__ = ["ALIASES", "DISABLE_VARIABLE", "AliasFinder", "install", "target_of"]

# Top-level name -> the module that answers for it.
ALIASES = {"smtpd": "smtpd_compat", "asyncore": "smtpd_compat.asyncore", "asynchat": "smtpd_compat.asynchat"}
DISABLE_VARIABLE = "SMTPD_COMPAT_TOPLEVEL"


def target_of(fullname: str) -> Optional[str]:
    """The name of our module that ``fullname`` stands for, or None."""
    top, dot, rest = fullname.partition(".")
    target = ALIASES.get(top)
    if target is None or (dot and top != "smtpd"):
        return None
    return target + dot + rest


class AliasLoader:
    """Loads an alias as the already-imported target module object itself."""

    def __init__(self, target: str, target_spec: Any) -> None:
        self.target = target
        self.target_spec = target_spec
        self.own_spec: Any = None

    def create_module(self, spec: Any) -> ModuleType:
        import importlib

        module = importlib.import_module(self.target)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system has just set module.__spec__ to the alias's spec;
        # the module gets its own back, so importlib.reload(smtpd) reloads
        # smtpd_compat in place and the alias stays the same object.
        module.__spec__ = self.own_spec

    def get_code(self, fullname: str) -> Any:
        """What ``runpy`` runs for ``python -m smtpd`` (that is, ``smtpd.__main__``)."""
        return self.target_spec.loader.get_code(self.target)


class AliasFinder:
    """A meta-path finder that answers only for the aliased names."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None, target: Optional[ModuleType] = None) -> Any:
        target_name = target_of(fullname)
        if target_name is None:
            return None
        import importlib.util
        from importlib.machinery import ModuleSpec

        target_spec = importlib.util.find_spec(target_name)
        if target_spec is None:  # the package is gone (uninstalled beside a leftover hook)
            return None
        loader: Any = AliasLoader(target_name, target_spec)  # a Loader by protocol
        spec = ModuleSpec(fullname, loader, origin=target_spec.origin)
        spec.submodule_search_locations = target_spec.submodule_search_locations
        spec.has_location = target_spec.has_location
        return spec


def install() -> None:
    """Put the finder first in ``sys.meta_path`` (once), on Python >= 3.12 unless disabled."""
    if sys.version_info >= (3, 12):
        if os.environ.get(DISABLE_VARIABLE) != "0" and not any(
            type(finder).__module__ == __name__ for finder in sys.meta_path
        ):
            sys.meta_path.insert(0, AliasFinder())
