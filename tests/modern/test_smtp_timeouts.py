"""The idle timeout of the modern SMTP server (``timeout=0.3`` here).

Deliberate differences from aiosmtpd 1.4.6, which closes silently and only
restarts its timer on recognised commands (so it cuts off any DATA upload
that lasts longer than ``timeout``):

* we send ``421 4.4.2 <host> Error: timeout exceeded`` before closing;
* the deadline is per line: a recognised command or a complete DATA line
  restarts it, bytes trickling inside one line do not.
"""

from __future__ import annotations

import select
import time

import pytest

from ._smtp_support import HOST, Client, Recorder, serve

TIMEOUT = 0.3
TIMED_OUT = f"421 4.4.2 {HOST} Error: timeout exceeded\r\n".encode()


def trickle_until_cut(client: Client, payload: bytes, interval: float = 0.05) -> int:
    """Send ``payload`` a byte at a time; return how many bytes went out
    before the server answered or closed."""
    for sent, byte in enumerate(payload):
        readable, _, _ = select.select([client.sock], [], [], interval)
        if readable:
            return sent
        try:
            client.send(bytes([byte]))
        except OSError:  # reset by the closing server
            return sent
    return len(payload)


def test_idle_client_gets_421_then_close() -> None:
    with serve(Recorder(), timeout=TIMEOUT) as server, Client(server.port) as client:
        assert client.cmd("EHLO c").startswith(b"250-")
        assert client.rest() == TIMED_OUT


def test_aiosmtpd_closes_silently() -> None:
    """The difference above, observed on aiosmtpd itself."""
    theirs = pytest.importorskip("aiosmtpd.smtp")
    with serve(Recorder(), theirs.SMTP, timeout=TIMEOUT) as server, Client(server.port) as client:
        assert client.rest() == b""


def test_only_recognised_commands_restart_the_timer() -> None:
    with serve(Recorder(), timeout=TIMEOUT) as server:
        with Client(server.port) as client:
            for _ in range(3):  # 0.6 s in all, each NOOP within 0.2 s of the last
                time.sleep(0.2)
                assert client.cmd("NOOP") == b"250 OK\r\n"
        with Client(server.port) as client:
            time.sleep(0.2)
            assert client.cmd("FOO") == b'500 Error: command "FOO" not recognized\r\n'
            time.sleep(0.2)  # 0.4 s since the greeting: FOO did not count
            assert client.rest() == TIMED_OUT


def test_a_command_line_trickling_byte_by_byte_times_out() -> None:
    payload = b"NOOP " + b"x" * 40 + b"\r\n"  # 47 bytes at 0.05 s: 2.3 s if never cut
    with serve(Recorder(), timeout=TIMEOUT) as server, Client(server.port) as client:
        sent = trickle_until_cut(client, payload)
        assert sent < len(payload)
        assert client.rest() == TIMED_OUT


def start_data(client: Client) -> None:
    for line in ("EHLO c", "MAIL FROM:<a@x.test>", "RCPT TO:<b@x.test>", "DATA"):
        assert client.cmd(line)[:1] in (b"2", b"3")


def test_a_data_upload_sending_whole_lines_is_not_cut() -> None:
    recorder = Recorder()
    lines = [b"line %d\r\n" % n for n in range(6)]
    with serve(recorder, timeout=TIMEOUT) as server, Client(server.port) as client:
        start_data(client)
        for line in lines:  # 0.6 s in all, twice the timeout
            time.sleep(0.1)
            client.send(line)
        client.send(b".\r\n")
        assert client.reply() == b"250 OK\r\n"
    assert recorder.delivered[0].content == b"".join(lines)


def test_a_data_line_trickling_byte_by_byte_times_out() -> None:
    recorder = Recorder()
    with serve(recorder, timeout=TIMEOUT) as server, Client(server.port) as client:
        start_data(client)
        payload = b"y" * 40 + b"\r\n.\r\n"
        assert trickle_until_cut(client, payload) < len(payload)
        assert client.rest() == TIMED_OUT
    assert recorder.delivered == []
