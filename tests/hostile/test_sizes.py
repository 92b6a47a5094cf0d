"""Sizes: message size and SIZE=, long DATA lines, and 100 MB lines without
a newline, with the server's memory measured from outside its process."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from ._faces import Face, Wire
from .conftest import MakeFace


def test_data_beyond_the_size_limit_is_refused_and_the_session_goes_on(make_face: MakeFace) -> None:
    face = make_face(data_size_limit=1000)
    with Wire(face.port) as wire:
        wire.cmd(b"EHLO c")
        assert wire.transaction(b"x" * 98 + b"\r\n" + b"y" * 1000 + b"\r\n") == b"552 Error: Too much mail data\r\n"
        assert wire.cmd(b"NOOP") == b"250 OK\r\n"
        assert wire.transaction(b"x" * 996 + b"\r\n") == b"250 OK\r\n"
    (delivery,) = face.wait_for(1)
    assert delivery.content.rstrip(b"\r\n") == b"x" * 996


@pytest.mark.parametrize(
    "params,code",
    [(b"SIZE=1000", 250), (b"SIZE=1001", 552), (b"SIZE=" + b"9" * 40, 552), (b"SIZE=abc", 501),
     (b"SIZE=-1", 501), (b"SIZE=", 501), (b"SIZE", 501)],
)
def test_mail_size_parameter_over_the_limit(make_face: MakeFace, params: bytes, code: int) -> None:
    face = make_face(data_size_limit=1000)
    with Wire(face.port) as wire:
        wire.cmd(b"EHLO c")
        reply = wire.cmd(b"MAIL FROM:<a@x.test> " + params)
        assert int(reply[:3]) == code, reply
        if code == 552:
            assert reply == b"552 Error: message size exceeds fixed maximum message size\r\n"
        # Refused or not, the session is usable.
        assert wire.cmd(b"RSET") == b"250 OK\r\n"


def test_a_data_line_over_1000_bytes(face: Face) -> None:
    """Modern: RFC 5321 4.5.3.1.6 (1000 with CRLF, plus a stuffing dot),
    refused as aiosmtpd does.  Legacy: stdlib smtpd accepted any length."""
    with Wire(face.port) as wire:
        wire.cmd(b"EHLO c")
        assert wire.transaction(b"a" * 999 + b"\r\n") == b"250 OK\r\n"
        reply = wire.transaction(b"ok\r\n" + b"b" * 1000 + b"\r\nok\r\n")
        if face.name == "modern":
            assert reply == b"500 Line too long (see RFC5321 4.5.3.1.6)\r\n"
        else:
            assert reply == b"250 OK\r\n"
        assert wire.cmd(b"NOOP") == b"250 OK\r\n"
    expected = 1 if face.name == "modern" else 2
    assert len(face.wait_for(expected)) == expected


# -- a 100 MB line, measured in a server process -----------------------------------


def load_line_memory() -> ModuleType:
    """soak/line_memory.py: the measurement, shared with the comparison script."""
    path = Path(__file__).resolve().parents[2] / "soak" / "line_memory.py"
    spec = importlib.util.spec_from_file_location("line_memory", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


line_memory = load_line_memory()
GROWTH_LIMIT_KIB = 40 * 1024


@pytest.mark.parametrize("mode", ["command", "data"])
@pytest.mark.parametrize("face_name", ["modern", "legacy"])
def test_a_100_mb_line_without_newline_costs_bounded_memory(face_name: str, mode: str) -> None:
    """Over-long lines are discarded as they arrive: the server's peak RSS
    (VmHWM, read from /proc) grows by far less than the 100 MiB it was sent.
    The legacy face keeps message data up to its size limit (10 MiB here),
    as stdlib smtpd did, and never more."""
    server = line_memory.Server(line_memory.SERVERS[face_name])
    try:
        growth, reply, serves_on = line_memory.measure_line(server, mode, 100)
    finally:
        server.stop()
    if growth is None:
        pytest.skip("cannot reset the peak RSS counter (/proc/PID/clear_refs)")
    print("%s, 100 MiB %s line: peak RSS growth %d KiB" % (face_name, mode, growth))
    assert growth < GROWTH_LIMIT_KIB
    expected = {"command": (b"500",), "data": (b"500", b"552")}[mode]  # too long / too much data
    assert reply[:3] in expected, reply
    assert serves_on
