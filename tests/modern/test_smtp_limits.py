"""Size limits of the modern SMTP server: command lines, DATA lines, message
size, and memory that stays bounded whatever a client sends."""

from __future__ import annotations

import tracemalloc
from typing import Any, Iterator

import pytest

from smtpd_compat.modern.smtp import SMTP

from ._smtp_support import Client, Recorder, mail_transaction, serve

CHUNK = b"x" * 65536


def mail_line(length: int) -> bytes:
    """A well-formed ``MAIL FROM:<...>`` command of exactly ``length`` bytes."""
    head, tail = b"MAIL FROM:<", b"@x.test>"
    return head + b"a" * (length - len(head) - len(tail)) + tail


def rcpt_line(length: int) -> bytes:
    head, tail = b"RCPT TO:<", b"@x.test>"
    return head + b"b" * (length - len(head) - len(tail)) + tail


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_command_line_limit_is_512_without_crlf(recorder: Recorder) -> None:
    with serve(recorder) as server, Client(server.port) as client:
        assert client.cmd(b"NOOP " + b"x" * 507) == b"250 OK\r\n"
        assert client.cmd(b"NOOP " + b"x" * 508) == b"500 Command line too long\r\n"
        assert client.cmd(b"NOOP " + b"x" * 100_000) == b"500 Command line too long\r\n"
        assert client.cmd("HELO c") == b"250 mx.test\r\n"
        # Without EHLO there is no SIZE/SMTPUTF8 allowance for MAIL.
        assert client.cmd(mail_line(513)) == b"500 Command line too long\r\n"
        assert client.cmd(mail_line(512)) == b"250 OK\r\n"


@pytest.mark.parametrize(
    "options, mail_limit",
    [({}, 512 + 26), ({"enable_SMTPUTF8": True}, 512 + 26 + 10), ({"data_size_limit": None}, 512),
     ({"data_size_limit": None, "enable_SMTPUTF8": True}, 512 + 10)],
)
def test_mail_allowance_after_ehlo_does_not_accumulate(options: Any, mail_limit: int, recorder: Recorder) -> None:
    """aiosmtpd adds the SIZE/SMTPUTF8 allowance on every EHLO, to a dict
    shared by all sessions (three EHLOs let a 578-byte MAIL through); here
    it is computed per session, once."""
    with serve(recorder, **options) as server, Client(server.port) as client:
        for _ in range(3):
            assert client.cmd("EHLO c").startswith(b"250-")
        assert client.cmd(mail_line(mail_limit + 1)) == b"500 Command line too long\r\n"
        assert client.cmd(mail_line(mail_limit)) == b"250 OK\r\n"
        # Only MAIL gets the allowance.
        assert client.cmd(rcpt_line(513)) == b"500 Command line too long\r\n"
        assert client.cmd(rcpt_line(512)) == b"250 OK\r\n"
        assert client.cmd("RSET") == b"250 OK\r\n"
        # HELO turns ESMTP off, and the allowance with it.
        client.cmd("HELO c")
        assert client.cmd(mail_line(513)) == b"500 Command line too long\r\n"
        # Another session starts from the plain limits too.
        with Client(server.port) as other:
            assert other.cmd(mail_line(513)) == b"500 Command line too long\r\n"
            other.cmd("HELO c")
            assert other.cmd(mail_line(513)) == b"500 Command line too long\r\n"
    assert "MAIL" not in SMTP.command_size_limits  # no state left on the class


def test_data_line_limit_is_1001_with_crlf(recorder: Recorder) -> None:
    with serve(recorder) as server, Client(server.port) as client:
        client.cmd("EHLO c")
        assert mail_transaction(client, b"a" * 999 + b"\r\n") == b"250 OK\r\n"
        too_long = mail_transaction(client, b"ok\r\n" + b"a" * 1000 + b"\r\nok\r\n")
        assert too_long == b"500 Line too long (see RFC5321 4.5.3.1.6)\r\n"
        # The failed transaction is over: a new one starts cleanly.
        assert client.cmd("RCPT TO:<b@x.test>") == b"503 Error: need MAIL command\r\n"
        assert mail_transaction(client, b"after\r\n") == b"250 OK\r\n"
    assert [d.content for d in recorder.delivered] == [b"a" * 999 + b"\r\n", b"after\r\n"]


def test_data_size_limit(recorder: Recorder) -> None:
    with serve(recorder, data_size_limit=100) as server, Client(server.port) as client:
        client.cmd("EHLO c")
        exact = b"x" * 98 + b"\r\n"  # 100 bytes as received, CRLF included
        assert mail_transaction(client, exact) == b"250 OK\r\n"
        assert mail_transaction(client, b"x" * 99 + b"\r\n") == b"552 Error: Too much mail data\r\n"
        assert client.cmd("RCPT TO:<b@x.test>") == b"503 Error: need MAIL command\r\n"
        big = (b"y" * 998 + b"\r\n") * 5000
        assert mail_transaction(client, big) == b"552 Error: Too much mail data\r\n"
        assert mail_transaction(client, b"ok\r\n") == b"250 OK\r\n"
    assert [d.content for d in recorder.delivered] == [exact, b"ok\r\n"]


@pytest.fixture
def traced() -> Iterator[None]:
    """Trace Python allocations of the whole process (server thread included)."""
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def send_mebibytes(client: Client, count: int) -> None:
    """``count`` MiB without any newline, from one reused 64 KiB buffer."""
    for _ in range(count * 16):
        client.send(CHUNK)


def test_20_mb_command_line_keeps_memory_bounded(recorder: Recorder, traced: None) -> None:
    with serve(recorder) as server, Client(server.port) as client:
        tracemalloc.reset_peak()
        send_mebibytes(client, 20)
        # The loop keeps serving others while one client streams garbage.
        with Client(server.port) as other:
            assert other.cmd("NOOP") == b"250 OK\r\n"
        send_mebibytes(client, 1)
        assert client.cmd(b"") == b"500 Command line too long\r\n"
        assert client.cmd("NOOP") == b"250 OK\r\n"
        _, peak = tracemalloc.get_traced_memory()
    assert peak < 4 * 2**20, f"peak {peak} bytes for a 21 MiB line"


def test_20_mb_data_line_keeps_memory_bounded_by_the_size_limit(recorder: Recorder, traced: None) -> None:
    with serve(recorder, data_size_limit=2**20) as server, Client(server.port) as client:
        client.cmd("EHLO c")
        for line in ("MAIL FROM:<a@x.test>", "RCPT TO:<b@x.test>", "DATA"):
            client.cmd(line)
        tracemalloc.reset_peak()
        send_mebibytes(client, 20)
        client.send(b"\r\n.\r\n")
        assert client.reply() == b"500 Line too long (see RFC5321 4.5.3.1.6)\r\n"
        assert client.cmd("NOOP") == b"250 OK\r\n"
        _, peak = tracemalloc.get_traced_memory()
    assert peak < 5 * 2**20, f"peak {peak} bytes for a 20 MiB line"
    assert recorder.delivered == []


def test_doomed_data_is_not_kept(recorder: Recorder, traced: None) -> None:
    with serve(recorder) as server, Client(server.port) as client:
        client.cmd("EHLO c")
        for line in ("MAIL FROM:<a@x.test>", "RCPT TO:<b@x.test>", "DATA"):
            client.cmd(line)
        tracemalloc.reset_peak()
        send_mebibytes(client, 20)
        client.send(b"\r\n.\r\n")
        assert client.reply() == b"500 Line too long (see RFC5321 4.5.3.1.6)\r\n"
        _, peak = tracemalloc.get_traced_memory()
    assert peak < 5 * 2**20


def test_client_that_never_sends_a_newline(recorder: Recorder) -> None:
    """No reply is due until a line ends; the server neither answers early
    nor stops serving; closing the connection is clean."""
    with serve(recorder) as server:
        with Client(server.port) as client:
            send_mebibytes(client, 4)
            client.sock.settimeout(0.2)
            with pytest.raises(OSError):  # socket.timeout: nothing was answered
                client.sock.recv(1)
        with Client(server.port) as client:
            assert client.cmd("NOOP") == b"250 OK\r\n"
