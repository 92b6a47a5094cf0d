"""Where smtpd_compat deliberately differs from Python 3.11's smtpd (MIGRATING.md lists each).

All of them replace a hang, a dropped connection or a misparse by a reply.
"""

from __future__ import annotations

import os
import resource
import select
import smtplib
import socket
from typing import Any, Iterator, List, Tuple

import pytest

import smtpd_compat as smtpd
from tests.stdlib._legacy_support import LoopThread, converse


class Recorder(smtpd.SMTPServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: List[Tuple[Any, ...]] = []

    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> None:
        self.messages.append((mailfrom, list(rcpttos), data))


@pytest.fixture
def recorder() -> Iterator[LoopThread]:
    with LoopThread(Recorder, None) as loop:
        yield loop


@pytest.fixture
def small_recorder() -> Iterator[LoopThread]:
    with LoopThread(Recorder, None, 64) as loop:
        yield loop


@pytest.mark.parametrize(
    "line",
    [b"HELO a\nb", b"HELO a\rb", b"NOOP\x00", b"HELO \xff\xfe", b"\xc3\x89HLO x", b"MAIL FROM:<a@b>\n"],
)
def test_malformed_command_lines_get_bad_syntax(recorder: LoopThread, line: bytes) -> None:
    # stdlib: bare CR/LF stayed inside the line (HELO took "a\nb" as its
    # name); bad UTF-8 or a non-ASCII verb raised and dropped the connection.
    replies = converse(recorder.port, [line + b"\r\n", b"HELO fine\r\n"])
    assert replies[1] == b"500 Error: bad syntax\r\n"
    assert replies[2].startswith(b"250 ")


@pytest.mark.parametrize(
    "steps,reply",
    [
        ([b"HELO c\r\n", b"MAIL FROM:@\r\n"], b"501 Syntax: MAIL FROM: <address>\r\n"),
        ([b"HELO c\r\n", b"MAIL FROM:a@\r\n"], b"501 Syntax: MAIL FROM: <address>\r\n"),
        ([b"EHLO c\r\n", b"MAIL FROM:<a@b> SIZE\r\n"], b"501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]\r\n"),
        ([b"VRFY <\r\n"], b"502 Could not VRFY <\r\n"),
    ],
)
def test_inputs_that_crashed_stdlib_get_replies(recorder: LoopThread, steps: List[bytes], reply: bytes) -> None:
    replies = converse(recorder.port, steps + [b"NOOP\r\n"])
    assert replies[len(steps)] == reply
    assert replies[-2] == b"250 OK\r\n"


def test_empty_message_is_answered(recorder: LoopThread) -> None:
    # stdlib waited for "\r\n.\r\n" after the DATA line's own CRLF: a hang.
    replies = converse(recorder.port, [b"HELO c\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n", b"DATA\r\n.\r\n"])
    assert replies[-2] == b"354 End data with <CR><LF>.<CR><LF>\r\n250 OK\r\n"
    assert recorder.server.messages == [("a@b", ["c@d"], b"")]


def test_too_much_data_ends_the_transaction(small_recorder: LoopThread) -> None:
    # stdlib stayed in DATA state: the client's next commands became message text.
    replies = converse(small_recorder.port, [
        b"HELO c\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n", (b"DATA\r\n", False),
        b"x" * 100 + b"\r\n.\r\n", b"RCPT TO:<c@d>\r\n", b"MAIL FROM:<a@b>\r\n",
    ])
    assert replies[4] == b"354 End data with <CR><LF>.<CR><LF>\r\n552 Error: Too much mail data\r\n"
    assert replies[5] == b"503 Error: need MAIL command\r\n"
    assert replies[6] == b"250 OK\r\n"
    assert small_recorder.server.messages == []


def test_message_that_is_not_utf8_with_decode_data() -> None:
    with LoopThread(Recorder, None, decode_data=True) as loop:
        replies = converse(loop.port, [
            b"HELO c\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n", (b"DATA\r\n", False), b"caf\xe9\r\n.\r\n",
            b"MAIL FROM:<a@b>\r\n",
        ])
        assert replies[4].endswith(b"554 Error: message is not valid UTF-8\r\n")
        assert replies[5] == b"250 OK\r\n"
        assert loop.server.messages == []


def test_character_split_between_reads_with_decode_data() -> None:
    # stdlib decoded each received chunk on its own: UnicodeDecodeError.
    from tests.stdlib.test_legacy_channel_styles import FakeSocket

    socket_map: dict = {}
    server = Recorder(("127.0.0.1", 0), None, map=socket_map, decode_data=True)
    try:
        fake = FakeSocket([b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\ncaf\xc3", b"\xa9\r\n.\r\n"])
        channel = smtpd.SMTPChannel(server, fake, ("192.0.2.1", 25), map=socket_map, decode_data=True)
        channel.handle_read()
        channel.handle_read()
        assert fake.sent[-1] == b"250 OK\r\n"
        assert server.messages == [("a@b", ["c@d"], "caf\u00e9")]
    finally:
        smtpd.asyncore.close_all(map=socket_map)


def test_commands_pipelined_after_quit_are_ignored(recorder: LoopThread) -> None:
    # stdlib went on executing them (delivering a message) after "221 Bye".
    with socket.create_connection(("127.0.0.1", recorder.port), timeout=10) as client:
        client.sendall(b"HELO c\r\nQUIT\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n")
        received = b""
        while True:
            data = client.recv(4096)
            if not data:
                break
            received += data
    assert received.split(b"\r\n")[1:] == [b"250 " + socket.getfqdn().encode(), b"221 Bye", b""]
    assert recorder.server.messages == []


def test_listen_backlog_takes_a_burst_of_connections() -> None:
    # stdlib's listen(5) made the 7th simultaneous client wait for a SYN retransmit.
    socket_map: dict = {}
    server = Recorder(("127.0.0.1", 0), None, map=socket_map)
    try:
        assert server.listen_backlog == 128
        clients = [socket.socket() for _ in range(40)]
        for client in clients:
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", server.socket.getsockname()[1]))
        # Nobody has accepted yet: every handshake must still complete.
        _, writable, _ = select.select([], clients, [], 5)
        assert len(writable) == len(clients)
        assert all(client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for client in clients)
    finally:
        for client in clients:
            client.close()
        smtpd.asyncore.close_all(map=socket_map)


class QuickTimeoutChannel(smtpd.SMTPChannel):
    idle_timeout = 0.2


class QuickTimeoutServer(Recorder):
    channel_class = QuickTimeoutChannel


def test_idle_client_gets_421_and_is_disconnected() -> None:
    assert smtpd.SMTPChannel.idle_timeout == 300
    with LoopThread(QuickTimeoutServer, None) as loop:
        with socket.create_connection(("127.0.0.1", loop.port), timeout=10) as client:
            received = b""
            while True:
                data = client.recv(4096)
                if not data:
                    break
                received += data
    assert received.split(b"\r\n")[1:] == [b"421 Error: timeout exceeded", b""]


def test_command_size_limits_are_per_connection(recorder: LoopThread, read_reply) -> None:
    # stdlib shared one class-level dict: any new connection reset the MAIL
    # limit that another client's EHLO had raised.
    long_mail = b"MAIL FROM:<" + b"a" * 515 + b"@b> SIZE=10\r\n"
    with socket.create_connection(("127.0.0.1", recorder.port), timeout=10) as first:
        read_reply(first)
        first.sendall(b"EHLO one\r\n")
        assert read_reply(first).endswith(b"250 HELP\r\n")
        converse(recorder.port, [b"NOOP\r\n"])  # another client comes and goes
        first.sendall(long_mail)
        assert read_reply(first) == b"250 OK\r\n"
    assert "MAIL" not in smtpd.SMTPChannel.command_size_limits


def test_replies_are_not_delayed_by_nagle(recorder: LoopThread) -> None:
    # A multi-line reply is several sends; with Nagle each waited for an ACK.
    with socket.create_connection(("127.0.0.1", recorder.port), timeout=10) as client:
        client.recv(1024)
        for channel in list(recorder.map.values()):
            if isinstance(channel, smtpd.SMTPChannel):
                assert channel.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                break
        else:
            pytest.fail("no channel found")


def test_descriptors_above_fd_setsize() -> None:
    # stdlib's select()-based loop raised "filedescriptor out of range".
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip("needs 1200 file descriptors")
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1030)]
    try:
        with LoopThread(Recorder, None) as loop:
            assert loop.server.socket.fileno() > 1024
            with smtplib.SMTP("127.0.0.1", loop.port, timeout=10) as client:
                client.sendmail("a@b", ["c@d"], b"high descriptors")
            assert loop.server.messages == [("a@b", ["c@d"], b"high descriptors")]
    finally:
        for fd in fillers:
            os.close(fd)
