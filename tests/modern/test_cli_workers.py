"""``-w``/``--workers``, ``--drain-timeout`` and ``--proxy-from`` on both
command lines, with the servers in child processes and real sockets."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from typing import List

import pytest

from tests.portability._children import TerminalServer
from tests.portability._platforms import REPO_ROOT, child_env
from tests.portability.test_windows_like import servers  # noqa: F401  (fixture)

from ._extensions import Dialog
from ._worker_support import only_localhost_may_proxy, pids_seen

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks workers")

CLIS = {
    "modern": [sys.executable, "-m", "smtpd_compat.modern", "-n", "-l", "127.0.0.1:0",
               "-c", "tests.modern._pid_classes.PidHandler"],
    "legacy": [sys.executable, "-m", "smtpd_compat", "-n", "-c", "tests.modern._pid_classes.PidServer",
               "127.0.0.1:0"],
}
CLOSING = b"Service not available, closing transmission channel\r\n"


def start(servers: List[TerminalServer], cli: str, *args: str) -> TerminalServer:
    command = CLIS[cli]
    # The legacy CLI takes its address last.
    argv = command[:-1] + list(args) + command[-1:] if cli == "legacy" else command + list(args)
    server = TerminalServer(argv, cwd=REPO_ROOT)
    servers.append(server)
    return server


@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("flag", ["-w", "--workers"])
def test_two_workers(servers: List[TerminalServer], cli: str, flag: str) -> None:
    server = start(servers, cli, flag, "2")
    pids = pids_seen(server.port, 2)
    assert len(pids) == 2 and server.proc.pid not in pids
    assert server.stop(signal.SIGTERM)[0] == 0


def goodbye(dialog: Dialog) -> bytes:
    """The rest of a drained session, without the server's hostname."""
    rest = dialog.rest_until_closed(20)
    code, _, text = rest.partition(b" ")
    return code + b" " + text.partition(b" ")[2]


@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_drain(servers: List[TerminalServer], cli: str, workers: str) -> None:
    server = start(servers, cli, "-w", workers, "--drain-timeout", "60")
    busy = Dialog(server.port, timeout=20)
    for line in (b"HELO c", b"MAIL FROM:<a@x>", b"RCPT TO:<b@x>"):
        assert busy.cmd(line).startswith(b"250")
    idle = Dialog(server.port, timeout=20)
    assert idle.cmd(b"HELO c").startswith(b"250")
    server.proc.send_signal(signal.SIGTERM)
    assert goodbye(idle) == b"421 " + CLOSING
    assert busy.cmd(b"DATA").startswith(b"354")
    assert busy.cmd(b"Subject: x\r\n\r\nfinished after the signal\r\n.").startswith(b"250")
    assert goodbye(busy) == b"421 " + CLOSING
    assert server.proc.wait(60) == 0


@pytest.mark.parametrize("cli", CLIS)
def test_second_signal_and_deadline(servers: List[TerminalServer], cli: str) -> None:
    for args, signals in ((["--drain-timeout", "300"], 2), (["--drain-timeout", "0.5"], 1)):
        server = start(servers, cli, *args)
        busy = Dialog(server.port, timeout=20)
        for line in (b"HELO c", b"MAIL FROM:<a@x>"):
            assert busy.cmd(line).startswith(b"250")
        idle = Dialog(server.port, timeout=20)
        server.proc.send_signal(signal.SIGTERM)
        assert goodbye(idle) == b"421 " + CLOSING  # the drain began
        if signals == 2:
            server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(60) == 0  # long before the 300 s deadline
        assert busy.rest_until_closed(20) == b""


@pytest.mark.parametrize("cli,args", [
    ("modern", ["-w", "0"]), ("modern", ["--drain-timeout", "-1"]), ("modern", ["--proxy-from", "10.0.0.0/33"]),
    ("legacy", ["-w", "0"]), ("legacy", ["--workers=x"]), ("legacy", ["--drain-timeout=nan"]),
])
def test_bad_values(cli: str, args: List[str]) -> None:
    command = CLIS[cli]
    argv = command[:-1] + args + command[-1:] if cli == "legacy" else command + args
    result = subprocess.run(argv, capture_output=True, text=True, env=child_env(), cwd=str(REPO_ROOT), timeout=30)
    assert result.returncode in (1, 2) and result.stdout == ""
    assert ("invalid" in result.stderr.lower()) or ("Invalid" in result.stderr), result.stderr


def test_proxy_from(servers: List[TerminalServer]) -> None:
    server = start(servers, "modern", "-w", "2", "--proxy-from", "127.0.0.1", "--proxy-timeout", "5")
    only_localhost_may_proxy(server.port)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as no_header:
        no_header.sendall(b"EHLO c\r\n")
        assert no_header.recv(100) == b""  # a trusted peer without a header is refused too
    assert server.stop(signal.SIGTERM)[0] == 0
