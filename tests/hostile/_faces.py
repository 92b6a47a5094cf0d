"""Both faces behind one small interface, and a raw client that checks every
reply it reads, so each hostile probe runs unchanged against each face.

* ``ModernFace``: ``smtpd_compat.modern.smtp.SMTP`` on an asyncio loop in a
  thread (``loop.create_server``, as the CLI serves it);
* ``ControllerFace``: the same through the public ``Controller``;
* ``LegacyFace``: an ``SMTPServer`` subclass pumped by
  ``smtpd_compat.asyncore.loop`` in a thread.

Each records what its program receives as a ``Delivery``; a message whose
content holds ``RAISE`` makes the program raise instead.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
import time
import weakref
from typing import Any, Dict, List, NamedTuple, Tuple, Type

from smtpd_compat import asyncore
from smtpd_compat.legacy.channel import SMTPChannel
from smtpd_compat.legacy.server import SMTPServer
from smtpd_compat.modern.controller import Controller
from smtpd_compat.modern.smtp import SMTP

#: Content that makes the receiving program raise.
RAISE = b"X-Test: raise in the handler"
# One reply line: a code, then text without any control character (a reply
# must never echo a client's CR, LF, ESC or NUL back).
REPLY_LINE = re.compile(rb"\A[2-5]\d\d(?:[ -][^\x00-\x1f\x7f]*)?\Z")


class Delivery(NamedTuple):
    mail_from: str
    rcpt_tos: Tuple[str, ...]
    #: As the program got it: the modern face's ``original_content`` (CRLF
    #: lines), the legacy face's ``data`` (lines joined by LF).
    content: bytes


class Face:
    """A running server of one face; ``close()`` it."""

    name = ""
    port = 0

    def __init__(self) -> None:
        self.deliveries: List[Delivery] = []
        self.handler_calls = 0
        self._lock = threading.Lock()

    def deliver(self, mail_from: str, rcpt_tos: List[str], content: bytes) -> None:
        with self._lock:
            self.handler_calls += 1
            if RAISE in content:
                raise RuntimeError("the handler failed on purpose")
            self.deliveries.append(Delivery(mail_from, tuple(rcpt_tos), content))

    def wait_for(self, count: int, timeout: float = 10.0) -> List[Delivery]:
        """The deliveries once there are ``count`` of them (or the timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.deliveries)

    def close(self) -> None:
        raise NotImplementedError


class _Recorder:
    """The modern handler: hands every message to its face."""

    def __init__(self, face: Face) -> None:
        self.face = face

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.face.deliver(envelope.mail_from, envelope.rcpt_tos, envelope.original_content)
        return "250 OK"


def _smtp_class(bare_newline: str) -> Type[SMTP]:
    return type("HostileSMTP", (SMTP,), {"bare_newline": bare_newline})


class ModernFace(Face):
    name = "modern"

    def __init__(self, timeout: float = 300, bare_newline: str = "accept", **smtp_kwargs: Any) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        smtp_class = _smtp_class(bare_newline)
        handler = smtp_kwargs.pop("handler", None) or _Recorder(self)
        smtp_kwargs.setdefault("hostname", "mx.test")

        self._protocols: "weakref.WeakSet[SMTP]" = weakref.WeakSet()

        def factory() -> SMTP:
            protocol = smtp_class(handler, loop=self.loop, timeout=timeout, **smtp_kwargs)
            self._protocols.add(protocol)
            return protocol

        self.server = self.loop.run_until_complete(self.loop.create_server(factory, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            for protocol in list(self._protocols):
                if protocol.transport is not None:
                    protocol.transport.abort()  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class ControllerFace(Face):
    name = "controller"

    def __init__(self, timeout: float = 300, bare_newline: str = "accept", **smtp_kwargs: Any) -> None:
        super().__init__()
        smtp_class = _smtp_class(bare_newline)
        smtp_kwargs.setdefault("enable_SMTPUTF8", False)

        class HostileController(Controller):
            def factory(self) -> SMTP:
                return smtp_class(self.handler, **self.SMTP_kwargs)

        self.controller = HostileController(
            smtp_kwargs.pop("handler", None) or _Recorder(self),
            hostname="127.0.0.1",
            port=0,
            server_hostname="mx.test",
            timeout=timeout,
            **smtp_kwargs,
        )
        self.controller.start()
        self.port = self.controller.port

    def close(self) -> None:
        self.controller.stop()


class LegacyFace(Face):
    name = "legacy"

    def __init__(self, timeout: float = 300, bare_newline: str = "accept", **server_kwargs: Any) -> None:
        super().__init__()
        face = self
        channel_class = type(
            "HostileChannel", (SMTPChannel,), {"idle_timeout": timeout, "bare_newline": bare_newline}
        )

        class Recorder(SMTPServer):
            def process_message(self, peer: Any, mailfrom: str, rcpttos: List[str], data: Any, **kwargs: Any) -> None:
                face.deliver(mailfrom, rcpttos, data if isinstance(data, bytes) else data.encode())

        Recorder.channel_class = channel_class
        self.map: Dict[int, Any] = {}
        self.server = Recorder(("127.0.0.1", 0), None, map=self.map, **server_kwargs)
        self.port = self.server.socket.getsockname()[1]
        self._thread = threading.Thread(
            target=asyncore.loop, kwargs={"timeout": 0.02, "use_poll": True, "map": self.map}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.close()
        asyncore.close_all(map=self.map)
        self._thread.join(10)


FACES: Dict[str, Type[Face]] = {"modern": ModernFace, "legacy": LegacyFace, "controller": ControllerFace}


def check_reply(reply: bytes) -> bytes:
    """``reply`` after checking each of its lines is a well-formed reply line."""
    assert reply.endswith(b"\r\n"), reply
    lines = reply[:-2].split(b"\r\n")
    for line in lines:
        assert REPLY_LINE.match(line), "reply line with a control character or no code: %r" % line
    return reply


class Wire:
    """A raw client socket; every reply read through it is checked."""

    def __init__(self, port: int, timeout: float = 10.0, greet: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.greeting = self.reply() if greet else b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """One complete reply (all lines of a multi-line one)."""
        start = 0
        while True:
            end = self.buf.find(b"\r\n", start)
            while end >= 0:
                line = self.buf[start:end]
                start = end + 2
                if line[3:4] != b"-":
                    reply = bytes(self.buf[:start])
                    del self.buf[:start]
                    return check_reply(reply)
                end = self.buf.find(b"\r\n", start)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed inside a reply: %r" % bytes(self.buf))
            self.buf += data

    def replies(self, count: int) -> List[bytes]:
        return [self.reply() for _ in range(count)]

    def cmd(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return self.reply()

    def rest(self, timeout: float = 10.0) -> bytes:
        """Everything until the server closes the connection, checked."""
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            self.buf += data
        rest = bytes(self.buf)
        del self.buf[:]
        if rest:
            check_reply(rest)
        return rest

    def transaction(self, body: bytes, sender: bytes = b"<a@x.test>", rcpt: bytes = b"<b@x.test>") -> bytes:
        """MAIL, RCPT, DATA and ``body`` (CRLF-terminated lines, dot-stuffed);
        the reply to the final dot."""
        assert self.cmd(b"MAIL FROM:" + sender).startswith(b"250"), "MAIL refused"
        assert self.cmd(b"RCPT TO:" + rcpt).startswith(b"250"), "RCPT refused"
        assert self.cmd(b"DATA").startswith(b"354"), "DATA refused"
        self.send(body + b".\r\n")
        return self.reply()

    def starttls(self, context: ssl.SSLContext) -> None:
        """Switch to TLS (after the server's 220); nothing may be buffered."""
        assert not self.buf, "plaintext left unread before TLS: %r" % bytes(self.buf)
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Wire":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def codes(replies: List[bytes]) -> List[int]:
    return [int(reply[:3]) for reply in replies]
