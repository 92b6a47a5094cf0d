"""The modern face's command decorator; hook and command discovery is
shared with the legacy face (``smtpd_compat.common.hooks``)."""

from __future__ import annotations

from typing import Any, Callable

from ..common.hooks import bind_prefixed as bind_prefixed
from ..common.hooks import class_functions as class_functions
from ..common.hooks import ehlo_hook_version as ehlo_hook_version

__all__ = ["bind_prefixed", "class_functions", "ehlo_hook_version", "syntax"]


def syntax(
    text: str, extended: "str | None" = None, when: "str | None" = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give an ``smtp_*`` method its HELP text.

    ``extended`` is appended under ESMTP; ``when`` names an SMTP attribute
    that must be truthy for the command to be listed.  Methods without it
    are hidden from HELP.
    """

    def decorator(method: Callable[..., Any]) -> Callable[..., Any]:
        method.__smtp_syntax__ = text  # type: ignore[attr-defined]
        method.__smtp_syntax_extended__ = extended  # type: ignore[attr-defined]
        method.__smtp_syntax_when__ = when  # type: ignore[attr-defined]
        return method

    return decorator
