"""Run ``_worker_server.py`` (a multi-process server) as a child process."""

from __future__ import annotations

import os
import select
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Set, Union

from tests.portability._platforms import child_env

from ._extensions import Dialog
from .test_proxy_smtp import V1

SCRIPT = Path(__file__).with_name("_worker_server.py")


class WorkerServer:
    """The server script in its own session (process group); ``port`` is set
    once it printed ``listening``."""

    def __init__(self, log_path: Path, *args: str, start_timeout: float = 20.0) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(SCRIPT), *args],
                stdout=subprocess.PIPE,
                stderr=log,
                env=child_env(),
                start_new_session=True,
            )
        self.port = 0
        line = self._stdout_line(start_timeout)
        if not line.startswith(b"listening "):
            self.kill()
            raise AssertionError(f"server did not start ({line!r}):\n{self.log()}")
        self.port = int(line.split()[1])

    def _stdout_line(self, timeout: float) -> bytes:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        return self.process.stdout.readline() if ready else b""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 20.0) -> bool:
        return poll_until(lambda: text in self.log(), timeout)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the whole group: the supervisor and every worker."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def poll_until(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """True once ``condition()`` holds; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def group_pids(pgid: int) -> List[int]:
    """The live processes of a process group (Linux /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            # Fields after the ")" that ends the command name: state ppid pgrp.
            fields = stat.rpartition(")")[2].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                pids.append(int(entry))
    return pids



def worker_pid(port: int) -> int:
    """The pid of the worker that served one new connection (its NOOP says)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        code, text = client.noop()
    assert code == 250, text
    return int(text.split()[-1])


def pids_seen(port: int, wanted: Union[int, Set[int]], attempts: int = 300) -> Set[int]:
    """Worker pids over new connections until ``wanted`` (those pids, or that
    many) are seen, or ``attempts`` connections were made: the kernel decides
    which worker accepts."""
    seen: Set[int] = set()
    for _ in range(attempts):
        seen.add(worker_pid(port))
        if (len(seen) >= wanted) if isinstance(wanted, int) else (wanted <= seen):
            break
    return seen


def only_localhost_may_proxy(port: int) -> None:
    """A PROXY header from 127.0.0.1 gets the greeting; the same header from
    127.0.0.2 gets the connection closed without a byte."""
    with Dialog(port, greet=False) as trusted:
        trusted.send(V1)
        assert trusted.reply().startswith(b"220 ")
    with Dialog(port, greet=False, source=("127.0.0.2", 0)) as stranger:
        stranger.send(V1)
        assert stranger.rest_until_closed() == b""
