"""Helpers for the AUTH, TLS, LMTP and PROXY tests (helper "extensions")."""

from __future__ import annotations

import asyncio
import importlib
import socket
import ssl
import warnings
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import pytest

from smtpd_compat.modern.smtp import SMTP, Envelope, Session

from ._servers import LoopServer, read_reply, wait_closed

CRLF = b"\r\n"


class Dialog:
    """A raw SMTP client on a blocking socket that can switch to TLS in place."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        timeout: float = 5.0,
        tls: Optional[ssl.SSLContext] = None,
        greet: bool = True,
        source: Optional[Tuple[str, int]] = None,
    ) -> None:
        self.sock: socket.socket = socket.create_connection((host, port), timeout=timeout, source_address=source)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = bytearray()
        self.greeting = self.reply() if greet else b""

    def reply(self) -> bytes:
        return read_reply(self.sock, self.buf)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: bytes) -> bytes:
        self.send(line + CRLF)
        return self.reply()

    def starttls(self, context: ssl.SSLContext) -> None:
        """Handshake on the same socket (after the server's 220)."""
        assert not self.buf, "plaintext left unread before the handshake"
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def rest_until_closed(self, timeout: float = 5.0) -> bytes:
        """Every byte the server still sends until it closes (b"" if only closed)."""
        try:
            return bytes(self.buf) + wait_closed(self.sock, timeout)
        except ConnectionResetError:
            return bytes(self.buf)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Dialog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class HookRecorder:
    """Records what the handler hooks saw; accepts everything."""

    def __init__(self) -> None:
        self.mail_froms: List[str] = []
        self.sessions: List[Session] = []
        self.envelopes: List[Envelope] = []
        self.errors: List[BaseException] = []

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: List[str]
    ) -> str:
        self.mail_froms.append(address)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.sessions.append(session)
        self.envelopes.append(envelope)
        return "250 OK"

    def handle_exception(self, error: BaseException) -> str:
        self.errors.append(error)
        return "451 4.3.0 Error"


def serve(
    handler: Any, cls: Callable[..., SMTP] = SMTP, **kwargs: Any
) -> LoopServer:
    """A ``cls(handler, **kwargs)`` server on 127.0.0.1, hostname mx.test."""
    kwargs.setdefault("hostname", "mx.test")

    def factory(loop: asyncio.AbstractEventLoop) -> SMTP:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(handler, loop=loop, **kwargs)

    return LoopServer(factory)


def run_dialog(port: int, lines: Sequence[bytes], tls: Optional[ssl.SSLContext] = None) -> List[bytes]:
    """Greeting plus one reply per line, each line sent after the previous reply."""
    with Dialog(port, tls=tls) as dialog:
        return [dialog.greeting] + [dialog.cmd(line) for line in lines]


#: In a dialog for ``replies_of_both``: do the TLS handshake here.
HANDSHAKE = b""

Setup = Callable[[ModuleType], Tuple[Any, Dict[str, Any]]]


def replies_of_both(
    lines: Sequence[bytes],
    setup: Setup,
    client_tls: Optional[ssl.SSLContext] = None,
    module_name: str = "smtp",
    class_name: str = "SMTP",
) -> List[Tuple[List[bytes], Any]]:
    """Run one dialog against aiosmtpd 1.4.6 and against us.

    ``setup(module)`` gives the handler and keyword arguments for
    ``module`` (``aiosmtpd.<module_name>`` or ours), so hooks can use that
    module's own ``AuthResult``/``MISSING``.  Every line gets one reply.
    Returns ``[(aiosmtpd replies, handler), (our replies, handler)]``.
    """
    theirs = pytest.importorskip("aiosmtpd." + module_name)
    results = []
    for module in (theirs, importlib.import_module("smtpd_compat.modern." + module_name)):
        handler, kwargs = setup(module)
        cls = getattr(module, class_name)
        with serve(handler, cls=cls, **kwargs) as server, Dialog(server.port) as dialog:
            replies = [dialog.greeting]
            for line in lines:
                if line == HANDSHAKE:
                    assert client_tls is not None
                    dialog.starttls(client_tls)
                else:
                    replies.append(dialog.cmd(line))
        results.append((replies, handler))
    return results
