"""Module-level names of stdlib ``smtpd``, and call-time access to the settable ones.

Programs assign ``smtpd.DEBUGSTREAM = sys.stderr`` (and the stdlib's own test
suite swaps ``smtpd.socket`` for a mock).  Those assignments land on the
``smtpd_compat`` package, so the legacy modules look such names up there at
the moment they are used instead of binding them at import time.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

__all__ = [
    "COMMASPACE",
    "DATA_SIZE_DEFAULT",
    "EMPTYSTRING",
    "NEWLINE",
    "VERSION",
    "Devnull",
    "debug",
    "debugging",
    "install_deprecated_aliases",
    "package",
]

VERSION = "Python SMTP proxy version 0.3"
DATA_SIZE_DEFAULT = 33554432
NEWLINE = "\n"
COMMASPACE = ", "
# Gone from the stdlib module after Python 3.4; old programs still import it.
EMPTYSTRING = ""

_PACKAGE = __name__.partition(".")[0]


class Devnull:
    """The default ``DEBUGSTREAM``: a text stream that discards everything."""

    def write(self, msg: str) -> None:
        pass

    def flush(self) -> None:
        pass


def package() -> Any:
    """The ``smtpd_compat`` module object, where users set ``DEBUGSTREAM`` & co.

    (Typed Any: its settable attributes are whatever the user put there.)
    """
    return sys.modules[_PACKAGE]


def debugging() -> bool:
    """False while ``DEBUGSTREAM`` is the default ``Devnull``: output that
    costs something to format (a whole message's repr) can be skipped."""
    return type(package().DEBUGSTREAM) is not Devnull


def debug(*values: Any) -> None:
    """``print(*values)`` to whatever ``smtpd_compat.DEBUGSTREAM`` is right now."""
    stream = package().DEBUGSTREAM
    if type(stream) is not Devnull:
        print(*values, file=stream)


def check_data_options(enable_SMTPUTF8: bool, decode_data: bool) -> None:
    """stdlib's refusal of the one contradictory option pair (both classes)."""
    if enable_SMTPUTF8 and decode_data:
        raise ValueError("decode_data and enable_SMTPUTF8 cannot be set to True at the same time")


# SMTPChannel's pre-3.5 private names, each mapped to its public successor.
_DEPRECATED_ALIASES = (
    ("server", "smtp_server"),
    ("line", "received_lines"),
    ("state", "smtp_state"),
    ("greeting", "seen_greeting"),
    ("mailfrom", "mailfrom"),
    ("rcpttos", "rcpttos"),
    ("data", "received_data"),
    ("fqdn", "fqdn"),
    ("peer", "peer"),
    ("conn", "conn"),
    ("addr", "addr"),
)


def _deprecated_alias(old: str, new: str) -> property:
    """The pre-3.5 private name ``__<old>``, warning on use, mapped to ``new``."""

    def fget(self: Any) -> Any:
        warnings.warn(
            "Access to __%s attribute on SMTPChannel is deprecated, use '%s' instead" % (old, new),
            DeprecationWarning,
            2,
        )
        return getattr(self, new)

    def fset(self: Any, value: Any) -> None:
        warnings.warn(
            "Setting __%s attribute on SMTPChannel is deprecated, set '%s' instead" % (old, new),
            DeprecationWarning,
            2,
        )
        setattr(self, new, value)

    return property(fget, fset)


def install_deprecated_aliases(channel_class: type) -> None:
    """Give ``SMTPChannel`` stdlib's ``_SMTPChannel__<name>`` properties."""
    for old, new in _DEPRECATED_ALIASES:
        setattr(channel_class, "_SMTPChannel__" + old, _deprecated_alias(old, new))
