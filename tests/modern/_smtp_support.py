"""Helpers for the tests of the modern SMTP protocol (tests/modern/test_smtp_*.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, Iterator, List, NamedTuple, Optional, Sequence, Union

import pytest

from smtpd_compat.modern.smtp import SMTP

from ._servers import LoopServer, Step, converse, read_reply

HOST = "mx.test"


class Delivered(NamedTuple):
    """A copy of what a handler saw at DATA time (the envelope is reset after)."""

    mail_from: Optional[str]
    rcpt_tos: List[str]
    mail_options: List[str]
    rcpt_options: List[str]
    content: Union[None, bytes, str]
    original_content: Optional[bytes]
    smtp_utf8: bool


class Recorder:
    """A handler keeping every delivered envelope."""

    def __init__(self) -> None:
        self.delivered: List[Delivered] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.delivered.append(
            Delivered(
                envelope.mail_from, list(envelope.rcpt_tos), list(envelope.mail_options),
                list(envelope.rcpt_options), envelope.content, envelope.original_content, envelope.smtp_utf8,
            )
        )
        return "250 OK"


@contextlib.contextmanager
def serve(handler: Any, protocol: Any = SMTP, **kwargs: Any) -> Iterator[LoopServer]:
    """A server on 127.0.0.1 whose connections are ``protocol(handler, **kwargs)``
    (``protocol`` may be aiosmtpd's SMTP class too, for side-by-side runs)."""
    kwargs.setdefault("hostname", HOST)

    def factory(loop: asyncio.AbstractEventLoop) -> asyncio.Protocol:
        return protocol(handler, loop=loop, **kwargs)  # type: ignore[no-any-return]

    with LoopServer(factory) as server:
        yield server


def dialog(handler: Any, steps: Sequence[Step], protocol: Any = SMTP, **kwargs: Any) -> List[bytes]:
    """The replies (greeting first) of one scripted connection; see ``converse``."""
    with serve(handler, protocol, **kwargs) as server:
        return converse(server.port, steps)


class Client:
    """A raw-socket SMTP client that reads the greeting on connect."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.greeting = self.reply()

    def reply(self) -> bytes:
        """The next complete reply (b"" once the server closed)."""
        return read_reply(self.sock, self.buf)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: Union[str, bytes]) -> bytes:
        """Send one command line (CRLF appended) and return its reply."""
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def rest(self) -> bytes:
        """Everything the server sends until it closes the connection."""
        out = bytes(self.buf)
        del self.buf[:]
        while True:
            data = self.sock.recv(65536)
            if not data:
                return out
            out += data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def mail_transaction(client: Client, body: bytes, sender: str = "<a@x.test>", rcpt: str = "<b@x.test>") -> bytes:
    """MAIL, RCPT, DATA, then ``body`` and the end-of-data line; the final reply."""
    for line in (f"MAIL FROM:{sender}", f"RCPT TO:{rcpt}", "DATA"):
        reply = client.cmd(line)
        assert reply[:1] in (b"2", b"3"), (line, reply)
    client.send(body + b".\r\n")
    return client.reply()


class SideBySide(NamedTuple):
    theirs: List[bytes]
    mine: List[bytes]
    their_handler: Any
    my_handler: Any


def side_by_side(make_handler: Any, steps: Sequence[Step], mixin: Any = None, **kwargs: Any) -> SideBySide:
    """Run the same handler class (and SMTP subclass body ``mixin``) on
    aiosmtpd 1.4.6 and on smtpd_compat.modern; skips where aiosmtpd is absent."""
    theirs_module = pytest.importorskip("aiosmtpd.smtp")
    runs = []
    for base in (theirs_module.SMTP, SMTP):
        protocol = type("Subclass", (mixin, base), {}) if mixin is not None else base
        handler = make_handler()
        runs.append((dialog(handler, steps, protocol, **kwargs), handler))
    (theirs, their_handler), (mine, my_handler) = runs
    return SideBySide(theirs, mine, their_handler, my_handler)
