"""Slow and idle clients: a deadline per line (as Postfix's
``smtpd_per_record_deadline``), answered with 421 before the close.

The deadline restarts when a command line or a message line is complete,
never on a mere read, so a client trickling one byte at a time cannot hold
a connection forever.
"""

from __future__ import annotations

import socket
import time

from ._faces import Wire
from .conftest import MakeFace

TIMEOUT = 0.4


def trickle(wire: Wire, data: bytes, pause: float = 0.04, within: float = 5.0) -> float:
    """Send ``data`` one byte at a time until the server closes the
    connection (or ``within`` seconds pass); the seconds that took."""
    start = time.monotonic()
    wire.sock.settimeout(pause)
    for byte in data:
        if time.monotonic() - start > within:
            break
        try:
            wire.sock.sendall(bytes([byte]))
            received = wire.sock.recv(65536)
        except socket.timeout:
            continue  # nothing to read yet: next byte
        except OSError:  # reset, broken pipe: the server is gone
            break
        if not received:
            break
        wire.buf += received
    return time.monotonic() - start


def assert_timed_out(face_name: str, wire: Wire) -> None:
    rest = wire.rest(timeout=5)
    expected = b"421 4.4.2 mx.test Error: timeout exceeded\r\n" if face_name == "modern" else b"421 Error: timeout exceeded\r\n"
    assert rest.endswith(expected), rest


def test_an_idle_client_gets_421_then_the_connection_closes(make_face: MakeFace) -> None:
    face = make_face(timeout=TIMEOUT)
    with Wire(face.port) as wire:
        start = time.monotonic()
        assert_timed_out(face.name, wire)
        assert TIMEOUT * 0.9 < time.monotonic() - start < TIMEOUT + 3


def test_a_command_trickling_one_byte_at_a_time_times_out(make_face: MakeFace) -> None:
    face = make_face(timeout=TIMEOUT)
    with Wire(face.port) as wire:
        assert wire.cmd(b"HELO c").startswith(b"250")
        took = trickle(wire, b"NOOP " + b"x" * 400)
        assert took < TIMEOUT + 3, "still connected after %.1f s of trickling" % took
        assert_timed_out(face.name, wire)


def test_a_data_line_trickling_one_byte_at_a_time_times_out(make_face: MakeFace) -> None:
    face = make_face(timeout=TIMEOUT)
    with Wire(face.port) as wire:
        wire.cmd(b"HELO c")
        wire.cmd(b"MAIL FROM:<a@x.test>")
        wire.cmd(b"RCPT TO:<b@x.test>")
        assert wire.cmd(b"DATA").startswith(b"354")
        took = trickle(wire, b"y" * 400)
        assert took < TIMEOUT + 3, "still connected after %.1f s of trickling" % took
        assert_timed_out(face.name, wire)
    assert face.deliveries == []


def test_a_slow_but_steady_client_is_served(make_face: MakeFace) -> None:
    """Whole lines, each within the deadline, for longer than the deadline."""
    face = make_face(timeout=TIMEOUT)
    with Wire(face.port) as wire:
        wire.cmd(b"HELO c")
        wire.cmd(b"MAIL FROM:<a@x.test>")
        wire.cmd(b"RCPT TO:<b@x.test>")
        wire.cmd(b"DATA")
        for number in range(6):
            time.sleep(TIMEOUT / 2)
            wire.send(b"line %d\r\n" % number)
        wire.send(b".\r\n")
        assert wire.reply() == b"250 OK\r\n"
        time.sleep(TIMEOUT / 2)
        assert wire.cmd(b"NOOP") == b"250 OK\r\n"
    assert face.wait_for(1)[0].content.count(b"line") == 6


def test_a_refused_message_sent_steadily_gets_its_refusal_not_a_timeout(make_face: MakeFace) -> None:
    """Past the size limit the server keeps nothing, yet each line the
    client sends still restarts the deadline: the answer is 552, not 421."""
    face = make_face(timeout=TIMEOUT, data_size_limit=100)
    with Wire(face.port) as wire:
        wire.cmd(b"HELO c")
        wire.cmd(b"MAIL FROM:<a@x.test>")
        wire.cmd(b"RCPT TO:<b@x.test>")
        wire.cmd(b"DATA")
        for _ in range(6):
            wire.send(b"z" * 70 + b"\r\n")
            time.sleep(TIMEOUT / 2)
        wire.send(b".\r\n")
        assert wire.reply() == b"552 Error: Too much mail data\r\n"
    assert face.deliveries == []
