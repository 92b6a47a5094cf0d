"""Helpers for the legacy face's AUTH and TLS tests: the same dialog against a
legacy ``SMTPServer`` and the modern ``SMTP``, set up to greet alike."""

from __future__ import annotations

import socket
import ssl
from typing import Any, Dict, List, Optional, Sequence, Tuple

import smtpd_compat as smtpd
from smtpd_compat.engine.sasl import AuthResult, LoginPassword
from tests.modern._extensions import Dialog, serve
from tests.stdlib._legacy_support import LoopThread

__all__ = [
    "HANDSHAKE",
    "CallLog",
    "LegacyRecorder",
    "ModernRecorder",
    "both_faces",
    "legacy",
    "transcript",
]

# The modern server, given these, greets and answers EHLO with the same bytes.
FQDN = socket.getfqdn()
LEGACY_IDENT = smtpd.__version__

MESSAGE = b"Subject: hi\r\n\r\nHello.\r\n"

#: In a dialog: do the TLS handshake here (an empty line is a valid AUTH answer).
HANDSHAKE: Any = object()


class CallLog:
    """An authenticator (modern signature) that accepts alice/secret and
    records every call; "custom" logins get the authenticator's own message."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, Any]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        self.calls.append((mechanism, data))
        if data.login == b"custom":
            ok = data.password == b"pw"
            return AuthResult(success=ok, handled=False, message="235 2.7.0 welcome" if ok else "535 5.7.8 nope",
                              auth_data={"user": "custom"})
        return AuthResult(success=data == LoginPassword(b"alice", b"secret"), handled=False, auth_data=data)


class LegacyRecorder(smtpd.SMTPServer):
    """Keeps what ``process_message`` receives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: List[Tuple[Any, ...]] = []

    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> None:
        self.messages.append((mailfrom, rcpttos, data, kwargs))


class ModernRecorder:
    """The modern face's counterpart: keeps each session's AUTH result."""

    def __init__(self) -> None:
        self.messages: List[Tuple[Any, ...]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, session.authenticated, session.auth_data))
        return "250 OK"


def legacy(**kwargs: Any) -> LoopThread:
    """A ``LegacyRecorder`` on 127.0.0.1 with ``kwargs``, looping in a thread."""
    return LoopThread(LegacyRecorder, None, **kwargs)


def transcript(port: int, lines: Sequence[Any], client_tls: Optional[ssl.SSLContext] = None) -> List[bytes]:
    """Greeting plus one reply per line; ``HANDSHAKE`` starts TLS there."""
    with Dialog(port) as dialog:
        replies = [dialog.greeting]
        for line in lines:
            if line is HANDSHAKE:
                assert client_tls is not None
                dialog.starttls(client_tls)
            else:
                replies.append(dialog.cmd(line))
        return replies


def both_faces(
    lines: Sequence[Any], client_tls: Optional[ssl.SSLContext] = None, **kwargs: Any
) -> Tuple[List[bytes], List[bytes], Dict[str, Any]]:
    """(modern replies, legacy replies, details) for one dialog, each face
    built with ``kwargs`` and a ``CallLog`` authenticator of its own."""
    modern_log, legacy_log = CallLog(), CallLog()
    handler = ModernRecorder()
    with serve(handler, hostname=FQDN, ident=LEGACY_IDENT, authenticator=modern_log, **kwargs) as server:
        modern_replies = transcript(server.port, lines, client_tls)
    with legacy(authenticator=legacy_log, **kwargs) as loop:
        legacy_replies = transcript(loop.port, lines, client_tls)
        delivered = loop.server.messages
    details = {
        "modern_calls": modern_log.calls,
        "legacy_calls": legacy_log.calls,
        "modern_messages": handler.messages,
        "legacy_messages": delivered,
    }
    return modern_replies, legacy_replies, details
