"""Host and port as the command lines read and print them, IPv6 in brackets."""

from __future__ import annotations

from typing import Optional, Tuple

__all__ = ["MAX_PORT", "format_address", "split_bracketed"]

MAX_PORT = 65535


def split_bracketed(spec: str) -> Optional[Tuple[str, str]]:
    """``"[::1]:8025"`` -> ``("::1", ":8025")``: the host inside the brackets and
    what follows them; None unless ``spec`` starts with a bracketed host."""
    if not spec.startswith("["):
        return None
    host, bracket, rest = spec[1:].partition("]")
    if not bracket:
        return None
    return host, rest


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets so the port stays readable."""
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
