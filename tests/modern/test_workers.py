"""Worker processes on one port, their supervisor, and the graceful drain,
with the server in a child process and real sockets (``workers.serve``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Set

import pytest

from smtpd_compat.modern.workers import Listeners, serve

from ._extensions import Dialog
from ._worker_support import (
    SCRIPT,
    WorkerServer,
    child_env,
    group_pids,
    only_localhost_may_proxy,
    pids_seen,
    poll_until,
    worker_pid,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks workers; reads /proc")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[List[WorkerServer]]:
    started: List[WorkerServer] = []
    yield started
    for server in started:
        server.kill()


@pytest.fixture
def start(servers: List[WorkerServer], tmp_path: Path):  # type: ignore[no-untyped-def]
    def start(*args: str) -> WorkerServer:
        server = WorkerServer(tmp_path / f"server{len(servers)}.log", *args)
        servers.append(server)
        return server

    return start


def workers_of(server: WorkerServer, count: int) -> Set[int]:
    assert poll_until(lambda: len(group_pids(server.process.pid)) == count + 1, 10)
    return set(group_pids(server.process.pid)) - {server.process.pid}


@pytest.mark.parametrize("reuse_port", ["yes", "no"])
def test_two_workers_serve_one_port(start, reuse_port: str) -> None:  # type: ignore[no-untyped-def]
    server = start("--workers", "2", "--reuse-port", reuse_port)
    workers = workers_of(server, 2)
    assert pids_seen(server.port, workers) == workers
    server.signal(signal.SIGTERM)
    assert server.wait() == 0


def test_killed_worker_is_replaced(start) -> None:  # type: ignore[no-untyped-def]
    server = start("--workers", "2")
    first = workers_of(server, 2)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    assert server.wait_for_log("was killed by signal 9")
    now = workers_of(server, 2)
    assert victim not in now and len(now - first) == 1
    assert pids_seen(server.port, now) == now


def test_crash_looping_worker_is_given_up(start, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    crash = tmp_path / "crash"
    server = start("--workers", "2", "--crash-when", str(crash))
    survivor, victim = sorted(workers_of(server, 2))
    crash.touch()  # from now on a starting worker exits at once
    os.kill(victim, signal.SIGKILL)
    assert server.wait_for_log("not restarting it"), server.log()
    assert "worker 1 exited with status 3" in server.log()
    assert workers_of(server, 1) == {survivor}
    assert worker_pid(server.port) == survivor
    server.signal(signal.SIGTERM)
    assert server.wait() == 0


def test_every_worker_failing_ends_the_server(tmp_path: Path) -> None:
    crash = tmp_path / "crash"
    crash.touch()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--workers", "2", "--crash-when", str(crash)],
        capture_output=True, text=True, env=child_env(), timeout=60,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert "every worker failed at start; giving up" in result.stderr




# -- drain -------------------------------------------------------------------------


CLOSING = b"421 mx.test Service not available, closing transmission channel\r\n"


def open_transaction(port: int) -> Dialog:
    dialog = Dialog(port, timeout=20)
    assert dialog.cmd(b"EHLO c").startswith(b"250")
    assert dialog.cmd(b"MAIL FROM:<a@x>").startswith(b"250")
    assert dialog.cmd(b"RCPT TO:<b@x>").startswith(b"250")
    return dialog


@pytest.mark.parametrize("workers,signum", [(1, signal.SIGTERM), (1, signal.SIGINT), (2, signal.SIGTERM), (2, signal.SIGINT)])
def test_drain_finishes_transactions_and_closes_idle_sessions(start, workers: int, signum: int) -> None:  # type: ignore[no-untyped-def]
    server = start("--workers", str(workers), "--drain-timeout", "60")
    busy = open_transaction(server.port)
    idle = Dialog(server.port, timeout=20)
    assert idle.cmd(b"EHLO c").startswith(b"250")
    server.signal(signum)
    # The idle session hears 421 and is closed; the open one may finish.
    assert idle.rest_until_closed(20) == CLOSING
    assert busy.cmd(b"DATA").startswith(b"354")
    assert busy.cmd(b"Subject: late\r\n\r\nstill accepted\r\n.").startswith(b"250 OK pid")
    assert busy.rest_until_closed(20) == CLOSING
    # No new connections once draining.
    assert server.wait() == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def test_sigterm_to_every_process_still_drains(start) -> None:  # type: ignore[no-untyped-def]
    """systemd's default KillMode signals the supervisor and every worker:
    a worker then hears SIGTERM twice (directly and passed on), which must
    not count as the "stop now" second signal."""
    server = start("--workers", "2", "--drain-timeout", "60")
    busy = open_transaction(server.port)
    os.killpg(server.process.pid, signal.SIGTERM)
    assert busy.cmd(b"DATA").startswith(b"354")
    assert busy.cmd(b"Subject: late\r\n\r\nstill accepted\r\n.").startswith(b"250 OK pid")
    assert busy.rest_until_closed(20) == CLOSING
    assert server.wait() == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_second_signal_stops_at_once(start, workers: int) -> None:  # type: ignore[no-untyped-def]
    server = start("--workers", str(workers), "--drain-timeout", "300")
    busy = open_transaction(server.port)
    idle = Dialog(server.port, timeout=20)
    server.signal(signal.SIGTERM)
    # Signals do not queue: the second must come after the first was taken.
    assert idle.rest_until_closed(20) == CLOSING
    server.signal(signal.SIGTERM)
    assert server.wait(60) == 0  # far sooner than the 300 s drain deadline
    assert b"250" not in busy.rest_until_closed(20)


def test_drain_deadline_cuts_what_is_left(start) -> None:  # type: ignore[no-untyped-def]
    server = start("--workers", "1", "--drain-timeout", "0.5")
    busy = open_transaction(server.port)
    server.signal(signal.SIGTERM)
    assert server.wait(60) == 0
    assert busy.rest_until_closed(20) == b""
    assert "drain ended with 1 session(s) still open" in server.log()


def test_workers_of_a_killed_supervisor_drain_and_exit(start) -> None:  # type: ignore[no-untyped-def]
    server = start("--workers", "2")
    workers = workers_of(server, 2)
    idle = Dialog(server.port, timeout=20)
    os.kill(server.process.pid, signal.SIGKILL)
    assert idle.rest_until_closed(20) == CLOSING
    assert poll_until(lambda: not set(group_pids(server.process.pid)) & workers, 20)


# -- in-process: binding, and platforms without fork -------------------------------


@pytest.mark.parametrize("reuse_port", [True, False])
def test_listeners_put_every_family_on_one_port(reuse_port: bool) -> None:
    listeners = Listeners("localhost", 0, reuse_port=reuse_port)
    try:
        ports = {address[1] for address in listeners.addresses}
        assert ports == {listeners.port} and listeners.port
        own = listeners.for_worker()
        assert [sock.getsockname() for sock in own] == listeners.addresses
        # Only a worker's own sockets listen when the port is SO_REUSEPORT's.
        assert (own is listeners._held) is not reuse_port
        listeners.release(own)
    finally:
        listeners.close()


def test_workers_need_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "fork")
    with pytest.raises(RuntimeError, match="worker processes need os.fork"):
        serve(object, "127.0.0.1", 0, workers=2)


def test_allowlist_needs_proxy_protocol() -> None:
    with pytest.raises(ValueError, match="needs proxy_protocol_timeout"):
        serve(object, "127.0.0.1", 0, proxy_trusted_networks="10.0.0.0/8")


def test_lmtp_workers(start) -> None:  # type: ignore[no-untyped-def]
    """The back end of "Postfix in front, delivering by LMTP"."""
    server = start("--workers", "2", "--lmtp")
    with Dialog(server.port) as dialog:
        for line in (b"LHLO c", b"MAIL FROM:<a@x>", b"RCPT TO:<b@x>", b"RCPT TO:<c@x>", b"DATA"):
            assert dialog.cmd(line)[:1] in (b"2", b"3")
        first = dialog.cmd(b"Subject: lmtp\r\n\r\nhi\r\n.")
        assert first.startswith(b"250 OK pid") and dialog.reply() == first  # one reply per recipient
    server.signal(signal.SIGTERM)
    assert server.wait() == 0


def test_workers_with_an_allowlist(start) -> None:  # type: ignore[no-untyped-def]
    server = start("--workers", "2", "--proxy-timeout", "5", "--trust", "127.0.0.1/32")
    only_localhost_may_proxy(server.port)
    assert server.wait_for_log("PROXY header refused: not a trusted proxy")
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
