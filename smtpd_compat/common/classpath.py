"""Finding the class a command line's ``-c package.module.Class`` names."""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

__all__ = ["import_class"]


def _search_current_directory() -> None:
    # `python -m` puts the current directory on sys.path; a console script
    # (smtpd-compat, smtpd-compat-modern) puts its own bin/ directory there
    # instead, so `-c mymodule.Handler` would not be found.  Appended, not
    # prepended: a file in the current directory never shadows an installed
    # module.  `python -P` / PYTHONSAFEPATH asked for no such entry.
    if getattr(sys.flags, "safe_path", False):
        return
    try:
        here = os.path.normcase(os.path.abspath(os.getcwd()))
    except OSError:  # the current directory was removed
        return
    for entry in sys.path:
        if os.path.normcase(os.path.abspath(entry or os.curdir)) == here:
            return
    sys.path.append(here)


def import_class(dotted: str) -> Any:
    """The object ``module.path.Name`` names, importing the module (also from
    the current directory); ImportError or AttributeError if there is none."""
    module_name, dot, name = dotted.rpartition(".")
    if not dot or not module_name or not name:
        raise ImportError("not a dotted name module.Class: %r" % dotted)
    _search_current_directory()
    return getattr(import_module(module_name), name)
