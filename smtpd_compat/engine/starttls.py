"""STARTTLS (RFC 3207) policy shared by both faces: what may precede it and
what the server answers.  The switch itself is the faces' business; the
rule that plaintext buffered behind STARTTLS is dropped is the framer's
(``Framer.discard_buffered``)."""

from __future__ import annotations

from typing import AbstractSet, Optional

__all__ = [
    "ALLOWED_BEFORE_STARTTLS",
    "INSECURE",
    "MUST_STARTTLS",
    "NO_TLS",
    "READY_FOR_TLS",
    "SYNTAX",
    "TLS_ACTIVE",
    "refusal",
    "starttls_refusal",
]

#: Commands a client may send before STARTTLS when the server requires it.
ALLOWED_BEFORE_STARTTLS = frozenset({"NOOP", "EHLO", "STARTTLS", "QUIT"})

MUST_STARTTLS = "530 Must issue a STARTTLS command first"
#: After a handle_STARTTLS hook refused the handshake's outcome.
INSECURE = "554 Command refused due to lack of security"
READY_FOR_TLS = "220 Ready to start TLS"
#: RFC 3207: no TLS inside TLS (aiosmtpd negotiated it again).
TLS_ACTIVE = "503 5.5.1 Error: TLS already active"
NO_TLS = "454 TLS not available"
SYNTAX = "501 Syntax: STARTTLS"


def refusal(
    verb: str,
    *,
    refused_by_hook: bool,
    required: bool,
    active: bool,
    allowed: AbstractSet[str] = ALLOWED_BEFORE_STARTTLS,
) -> Optional[str]:
    """The reply refusing ``verb`` before it runs, or None.

    Once a ``handle_STARTTLS`` hook refused the handshake's outcome only
    QUIT is served; under ``required``, only ``allowed`` before TLS.
    """
    if refused_by_hook and verb != "QUIT":
        return INSECURE
    if required and not active and verb not in allowed:
        return MUST_STARTTLS
    return None


def starttls_refusal(arg: Optional[str], available: bool, requested: bool) -> Optional[str]:
    """The reply refusing a STARTTLS command, or None to say READY_FOR_TLS.

    ``requested``: TLS is up or being negotiated already (RFC 3207: no TLS
    inside TLS).
    """
    if arg:
        return SYNTAX
    if not available:
        return NO_TLS
    if requested:
        return TLS_ACTIVE
    return None
