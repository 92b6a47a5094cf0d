"""The ways programs extended stdlib smtpd's SMTPChannel keep working, byte for byte.

Each channel subclass below is written the way stdlib-era programs wrote
them; the same script runs on Python 3.11's smtpd and on smtpd_compat, and
the dialogs must produce the same bytes.  Then: channels driven without a
loop (``handle_read()`` by hand) and a loop in a background thread.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import pytest

import smtpd_compat as smtpd
from smtpd_compat import asyncore
from tests.stdlib._legacy_support import ServerProcess, Step, converse, reference_python
import sys

STYLES_SCRIPT = r'''
import base64, importlib, sys
smtpd = importlib.import_module(sys.argv[1])
style = sys.argv[2]


class ExtraVerb(smtpd.SMTPChannel):
    def smtp_XHELLO(self, arg):
        self.push("250 hello %s" % (arg or "nobody"))


class OwnEhlo(smtpd.SMTPChannel):
    """Re-implements EHLO to announce AUTH, and wraps MAIL."""
    def smtp_EHLO(self, arg):
        if not arg:
            self.push("501 Syntax: EHLO hostname")
            return
        self.seen_greeting = arg
        self.extended_smtp = True
        self.push("250-%s" % self.fqdn)
        self.push("250-AUTH PLAIN")
        self.push("250 HELP")

    def smtp_MAIL(self, arg):
        print("MAIL seen:", arg, flush=True)
        super().smtp_MAIL(arg)


class AuthDialog(OwnEhlo):
    """AUTH PLAIN with its own smtp_state, handled in found_terminator."""
    AUTH = 2
    authenticated = False

    def smtp_AUTH(self, arg):
        if not arg or arg.split()[0].upper() != "PLAIN":
            self.push("504 Unrecognized authentication type")
            return
        parts = arg.split()
        if len(parts) == 2:
            self._check(parts[1])
            return
        self.smtp_state = self.AUTH
        self.push("334 ")

    def _check(self, encoded):
        try:
            _, user, password = base64.b64decode(encoded).split(b"\0")
        except ValueError:
            self.push("501 Cannot decode response")
            return
        self.authenticated = password == b"secret"
        self.push("235 Authentication successful" if self.authenticated else "535 Authentication failed (%d bytes)" % len(user))

    def found_terminator(self):
        if self.smtp_state == self.AUTH:
            line = self._emptystring.join(self.received_lines)
            self.received_lines = []
            self.smtp_state = self.COMMAND
            self._check(line)
            return
        super().found_terminator()

    def smtp_MAIL(self, arg):
        if not self.authenticated:
            self.push("530 Authentication required")
            return
        super().smtp_MAIL(arg)


class Chunking(smtpd.SMTPChannel):
    """BDAT <size>: reads exactly <size> bytes with a numeric terminator."""
    CHUNK = 3

    def smtp_BDAT(self, arg):
        self.chunk = []
        self.smtp_state = self.CHUNK
        self.set_terminator(int(arg.split()[0]))

    def collect_incoming_data(self, data):
        if self.smtp_state == self.CHUNK:
            self.chunk.append(data)
            return
        super().collect_incoming_data(data)

    def found_terminator(self):
        if self.smtp_state == self.CHUNK:
            data = b"".join(self.chunk)
            self.smtp_state = self.COMMAND
            self.set_terminator(b"\r\n")
            print("CHUNK", repr(data), flush=True)
            self.push("250 %d octets received" % len(data))
            return
        super().found_terminator()


class LfLines(smtpd.SMTPChannel):
    """XLINES switches to LF-terminated records until a line reading END."""
    LINES = 4

    def smtp_XLINES(self, arg):
        self.smtp_state = self.LINES
        self.set_terminator(b"\n")
        self.push("354 send lines")

    def found_terminator(self):
        if self.smtp_state == self.LINES:
            line = self._emptystring.join(self.received_lines)
            self.received_lines = []
            if line == b"END":
                self.smtp_state = self.COMMAND
                self.set_terminator(b"\r\n")
                self.push("250 done")
            else:
                self.push("250 line %r" % line)
            return
        super().found_terminator()


class ExtraArgs(smtpd.SMTPChannel):
    def __init__(self, server, conn, addr, motto, **kwargs):
        self.motto = motto
        super().__init__(server, conn, addr, **kwargs)

    def smtp_MOTTO(self, arg):
        self.push("250 %s" % self.motto)


class OwnInit(smtpd.SMTPChannel):
    """Re-implements __init__ (for its own greeting) without calling SMTPChannel's."""
    def __init__(self, server, conn, addr, map=None):
        smtpd.asynchat.async_chat.__init__(self, conn, map=map)
        self.smtp_server = server
        self.conn = conn
        self.addr = addr
        self.data_size_limit = smtpd.DATA_SIZE_DEFAULT
        self.enable_SMTPUTF8 = False
        self._decode_data = False
        self._emptystring = b""
        self._linesep = b"\r\n"
        self._dotsep = ord(b".")
        self._newline = b"\n"
        self._set_rset_state()
        self.seen_greeting = ""
        self.extended_smtp = False
        self.command_size_limits.clear()
        self.fqdn = "mx.example"
        self.peer = conn.getpeername()
        self.push("220 mx.example says hello")


class Server(smtpd.SMTPServer):
    def handle_accepted(self, conn, addr):
        if style == "ExtraArgs":
            ExtraArgs(self, conn, addr, "carpe diem", data_size_limit=self.data_size_limit, map=self._map)
        else:
            globals()[style](self, conn, addr, map=self._map)

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        print("MESSAGE", mailfrom, rcpttos, repr(data), flush=True)


server = Server(("127.0.0.1", 0), None)
print("PORT", server.socket.getsockname()[1], flush=True)
smtpd.asyncore.loop(timeout=0.05)
'''

MAIL = b"MAIL FROM:<a@b>\r\n"
RCPT = b"RCPT TO:<c@d>\r\n"
PLAIN = base64.b64encode(b"\0user\0secret")

DIALOGS: Dict[str, List[Step]] = {
    "ExtraVerb": [b"XHELLO\r\n", b"XHELLO world\r\n", b"xhello lower\r\n", b"HELP\r\n"],
    "OwnEhlo": [b"EHLO c\r\n", b"MAIL FROM:<a@b> SIZE=10\r\n", RCPT, (b"DATA\r\n", False), b"x\r\n.\r\n"],
    "AuthDialog": [
        b"EHLO c\r\n", MAIL, b"AUTH LOGIN\r\n", (b"AUTH PLAIN\r\n", False),
        base64.b64encode(b"\0" + b"u" * 600 + b"\0wrong") + b"\r\n",  # a response over 512 bytes
        (b"AUTH PLAIN\r\n", False), PLAIN + b"\r\n", MAIL, RCPT, (b"DATA\r\n", False), b"authed\r\n.\r\n",
        b"AUTH PLAIN " + PLAIN + b"\r\n",
    ],
    "Chunking": [
        b"EHLO c\r\n", MAIL, RCPT,
        (b"BDAT 5\r\nhello", False), b"NOOP\r\n",  # the chunk and a command in one packet
        b"BDAT 7\r\nsplit\r\n", (b"BDAT 3\r\nab", False), (b"c", False), b"RSET\r\nNOOP\r\n",
    ],
    "LfLines": [(b"XLINES\r\n", False), b"one\ntwo\r\nEND\nNOOP\r\n", (b"XLINES\r\npart", False), b"ial\nEND\n"],
    "OwnInit": [b"EHLO c\r\n", MAIL, RCPT, (b"DATA\r\n", False), b"own\r\n..init\r\n.\r\n", b"HELP\r\n"],
    "ExtraArgs": [b"MOTTO\r\n", b"HELO c\r\n", MAIL, RCPT, (b"DATA\r\n", False), b"args\r\n.\r\n"],
}


@pytest.fixture(scope="module")
def style_servers() -> Iterator[Dict[Tuple[str, bool], Tuple[ServerProcess, int]]]:
    started: Dict[Tuple[str, bool], Tuple[ServerProcess, int]] = {}
    try:
        for style in DIALOGS:
            for reference in (True, False):
                python, module = (reference_python(), "smtpd") if reference else (sys.executable, "smtpd_compat")
                server = ServerProcess([python, "-W", "ignore", "-c", STYLES_SCRIPT, module, style])
                started[style, reference] = (server, server.wait_for_port_line())
        yield started
    finally:
        for server, _ in started.values():
            server.close()


@pytest.mark.parametrize("style", list(DIALOGS))
def test_channel_subclass_behaves_as_on_the_stdlib(style_servers, style: str) -> None:
    results = []
    for reference in (True, False):
        server, port = style_servers[style, reference]
        results.append((converse(port, DIALOGS[style]), server.new_output()))
    expected, got = results
    assert got == expected
    assert expected[1] or style in ("ExtraVerb", "LfLines"), "the dialog should have printed something"


# -- driving a channel without a loop -----------------------------------------------------


class Recorder(smtpd.SMTPServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: List[Tuple[Any, ...]] = []

    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> None:
        self.messages.append((peer, mailfrom, list(rcpttos), data, kwargs))


class FakeSocket:
    """Just the socket methods an SMTPChannel uses: what tests used as a double."""

    def __init__(self, incoming: Sequence[bytes]) -> None:
        self.incoming = list(incoming)
        self.sent: List[bytes] = []

    def recv(self, size: int) -> bytes:
        return self.incoming.pop(0)

    def send(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        return len(data)

    def getpeername(self) -> Tuple[str, int]:
        return ("192.0.2.1", 4321)

    def setblocking(self, flag: bool) -> None:
        pass

    def fileno(self) -> int:
        return 999

    def close(self) -> None:
        pass


@pytest.fixture
def private_map() -> Iterator[Dict[int, Any]]:
    socket_map: Dict[int, Any] = {}
    yield socket_map
    asyncore.close_all(map=socket_map)


def test_channel_on_a_socket_like_object_driven_by_hand(private_map) -> None:
    server = Recorder(("127.0.0.1", 0), None, map=private_map)
    fake = FakeSocket([b"EHLO x\r\nMAIL FROM:<a@b> BODY=8BITMIME\r\n", b"RCPT TO:<c@d>\r\nDA", b"TA\r\nhello\r\n.", b"\r\n"])
    channel = smtpd.SMTPChannel(server, fake, ("192.0.2.1", 4321), map=private_map)
    for _ in range(4):
        channel.handle_read()
    replies = b"".join(fake.sent).split(b"\r\n")
    assert replies[0].startswith(b"220 ")
    assert replies[1:-1] == [
        b"250-" + channel.fqdn.encode(), b"250-SIZE 33554432", b"250-8BITMIME", b"250 HELP",
        b"250 OK", b"250 OK", b"354 End data with <CR><LF>.<CR><LF>", b"250 OK",
    ]
    assert server.messages == [
        (("192.0.2.1", 4321), "a@b", ["c@d"], b"hello", {"mail_options": ["BODY=8BITMIME"], "rcpt_options": []})
    ]
    assert channel.received_data == b"hello"
    assert (channel.mailfrom, channel.rcpttos, channel.smtp_state) == (None, [], channel.COMMAND)


def test_channel_on_a_socketpair_driven_by_hand(private_map) -> None:
    server = Recorder(("127.0.0.1", 0), None, map=private_map, decode_data=True)
    ours, client = socket.socketpair()
    with client:
        channel = smtpd.SMTPChannel(server, ours, "peer", map=private_map, decode_data=True)
        client.settimeout(5)
        assert client.recv(1024).startswith(b"220 ")
        client.sendall(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nline\r\n..dots\r\n.\r\n")
        channel.handle_read()
        received = b""
        while received.count(b"\r\n") < 5:
            received += client.recv(1024)
        assert received == (
            b"250 " + channel.fqdn.encode() + b"\r\n"
            b"250 OK\r\n250 OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 OK\r\n"
        )
    assert server.messages == [("", "a@b", ["c@d"], "line\n.dots", {})]


def test_background_loop_stops_with_close_and_close_all(private_map) -> None:
    server = Recorder(("127.0.0.1", 0), None, map=private_map)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=asyncore.loop, kwargs={"timeout": 30, "map": private_map}, daemon=True)
    thread.start()
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("a@b", ["c@d"], b"Subject: bg\r\n\r\nfrom a thread\r\n")
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)  # a client that stays
    with idle:
        assert idle.recv(1024).startswith(b"220 ")
        started = time.monotonic()
        server.close()
        asyncore.close_all(map=private_map)
        thread.join(5)
        assert not thread.is_alive()
        assert time.monotonic() - started < 5
        assert idle.recv(1024) == b""  # its channel was closed too
    assert server.messages[0][3] == b"Subject: bg\n\nfrom a thread"


def test_discard_buffers_drops_unparsed_input(private_map) -> None:
    server = Recorder(("127.0.0.1", 0), None, map=private_map)
    fake = FakeSocket([b"HELO x\r\nNOOP half a li", b"ne\r\nNOOP\r\n"])
    channel = smtpd.SMTPChannel(server, fake, ("192.0.2.1", 4321), map=private_map)
    channel.handle_read()
    channel.discard_buffers()  # drops "NOOP half a li" (and queued output)
    channel.handle_read()
    assert fake.sent[1:] == [b"250 " + channel.fqdn.encode() + b"\r\n", b"500 Error: command \"NE\" not recognized\r\n", b"250 OK\r\n"]
