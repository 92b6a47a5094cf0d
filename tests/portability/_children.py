"""Servers in child processes with stderr on a terminal (see ``_platforms`` for
the preludes that make the child look like Windows)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import Optional, Sequence, Tuple

import pytest

from tests.portability._platforms import child_env

pty = pytest.importorskip("pty", reason="needs a pseudo-terminal (POSIX)")

# The startup line both command lines print on a terminal.
LISTENING = re.compile(rb"listening on (?:\[[^\]]*\]|[^\s;]*):(\d+); press Ctrl-C to stop")


class TerminalServer:
    """A server command with stderr on a pseudo-terminal and stdout on a pipe.

    The port comes from the startup line the server prints on the terminal.
    """

    def __init__(self, argv: Sequence[str], cwd: Optional[Path] = None) -> None:
        master, slave = pty.openpty()
        self._master = master
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
            env=child_env(), cwd=str(cwd) if cwd else None,
        )
        os.close(slave)
        self._closed = False
        self._terminal = b""
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_terminal, daemon=True)
        self._reader.start()
        self.port = self._wait_for_port()

    def _read_terminal(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # EIO: the child closed its side
                chunk = b""
            with self._changed:
                self._terminal += chunk
                self._changed.notify_all()
            if not chunk:
                return

    def _wait_for_port(self) -> int:
        with self._changed:
            for _ in range(150):  # 0.1 s each
                match = LISTENING.search(self._terminal)
                if match:
                    return int(match.group(1))
                if self.proc.poll() is not None and not self._reader.is_alive():
                    break
                self._changed.wait(0.1)
        self.stop(signal.SIGKILL)
        raise AssertionError("no startup line on the terminal: %r" % self._terminal)

    def terminal(self) -> bytes:
        """Everything written to the terminal so far, line ends as the pty made them."""
        with self._changed:
            return self._terminal

    def stop(self, signum: int = signal.SIGINT) -> Tuple[int, bytes]:
        """Signal the server; (exit status, stdout).  Kills it if the signal did not stop it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            stdout, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, _ = self.proc.communicate()
        self._reader.join(5)
        if not self._closed:
            self._closed = True
            os.close(self._master)
        return self.proc.returncode, stdout
