"""Sizes: message size and SIZE=, long DATA lines, and 100 MB lines without
a newline, with the server's memory measured from outside its process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from ._faces import Face, Wire, codes, memory_kib, reset_peak
from .conftest import MakeFace

REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20


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

SIZE_LIMIT = 10 * MIB
GROWTH_LIMIT_KIB = 40 * 1024
COMMANDS = {
    "modern": ["-m", "smtpd_compat.modern", "-n", "-c", "smtpd_compat.modern.handlers.Sink",
               "-s", str(SIZE_LIMIT), "-l", "127.0.0.1:{port}"],
    # The legacy CLI, like stdlib smtpd's, has no size limit unless given -s.
    "legacy": ["-m", "smtpd_compat", "-n", "-c", "smtpd_compat.DebuggingServer",
               "-s", str(SIZE_LIMIT), "127.0.0.1:{port}"],
}


class ServerProcess:
    def __init__(self, face: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        argv = [sys.executable] + [arg.format(port=self.port) for arg in COMMANDS[face]]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("server did not start: %r" % self.proc.stderr.read())  # type: ignore[union-attr]
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture(params=["modern", "legacy"])
def server_process(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    server = ServerProcess(request.param)
    try:
        yield server
    finally:
        server.stop()


def send_without_newline(wire: Wire, mebibytes: int) -> None:
    block = b"z" * MIB
    for _ in range(mebibytes):
        wire.send(block)


def start_measuring(server: ServerProcess, wire: Wire, steps: List[bytes]) -> int:
    """Run ``steps`` (all must succeed), then reset the server's peak RSS;
    returns its RSS (KiB) at that point."""
    for step in steps:
        assert int(wire.cmd(step)[:1]) in (2, 3), step
    baseline = memory_kib(server.proc.pid)["VmRSS"]
    if not reset_peak(server.proc.pid):
        pytest.skip("cannot reset the peak RSS counter (/proc/PID/clear_refs)")
    return baseline


def peak_growth(server: ServerProcess, baseline: int) -> int:
    return memory_kib(server.proc.pid)["VmHWM"] - baseline


def test_a_100_mb_command_line_costs_bounded_memory(server_process: ServerProcess) -> None:
    with Wire(server_process.port, timeout=60) as wire:
        baseline = start_measuring(server_process, wire, [b"EHLO c", b"NOOP"])
        send_without_newline(wire, 100)
        wire.send(b"\r\n")
        reply = wire.reply()
        assert reply.startswith(b"500 ") and b"too long" in reply
        growth = peak_growth(server_process, baseline)
        assert wire.cmd(b"NOOP") == b"250 OK\r\n"
    print("100 MB command line: peak RSS growth %d KiB" % growth)
    assert growth < GROWTH_LIMIT_KIB


def test_a_100_mb_data_line_costs_bounded_memory(server_process: ServerProcess) -> None:
    with Wire(server_process.port, timeout=60) as wire:
        steps = [b"EHLO c", b"MAIL FROM:<a@x.test>", b"RCPT TO:<b@x.test>", b"DATA"]
        baseline = start_measuring(server_process, wire, steps)
        send_without_newline(wire, 100)
        wire.send(b"\r\n.\r\n")
        assert codes([wire.reply()])[0] in (500, 552)  # line too long / too much data
        growth = peak_growth(server_process, baseline)
        assert wire.cmd(b"NOOP") == b"250 OK\r\n"
    print("100 MB DATA line: peak RSS growth %d KiB" % growth)
    assert growth < GROWTH_LIMIT_KIB
