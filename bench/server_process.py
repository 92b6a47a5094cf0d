"""Start one server command in its own process group, watch it, stop it.

The command runs as `bash -c 'ulimit -S -n N && exec CMD'`: the ulimit lets the
server hold the idle workload's thousands of sockets, and `exec` makes the
measured process the server itself rather than a shell.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import IO, Dict, Optional

from proc_stats import Sample, open_files_limit, sample_group
from smtp_probe import greets

STOP_GRACE_S = 5.0


class ServerDidNotStart(Exception):
    """The server exited or never greeted on its port."""


class ServerProcess:
    def __init__(self, command: str, env: Dict[str, str], cwd: str, nofile: int,
                 log_path: str) -> None:
        self.command = command
        self._log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")
        wrapped = "ulimit -S -n %d && exec %s" % (nofile, command)
        self._proc = subprocess.Popen(["bash", "-c", wrapped], cwd=cwd, env=env,
                                      stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        self.pgid = self._proc.pid  # start_new_session: the leader's pid is the group id
        self.peak_hwm_kib = 0
        self.last_sample: Optional[Sample] = None

    def alive(self) -> bool:
        return self._proc.poll() is None

    def sample(self) -> Optional[Sample]:
        """Sample the group; remembers the last live sample and the peak VmHWM."""
        current = sample_group(self.pgid) if self.alive() else None
        if current is not None:
            self.last_sample = current
            self.peak_hwm_kib = max(self.peak_hwm_kib, current.hwm_kib)
        return current

    def nofile_limit(self) -> Optional[int]:
        return open_files_limit(self._proc.pid)

    def wait_ready(self, port: int, timeout: float) -> None:
        """Return once the port greets with 220; raise ServerDidNotStart otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerDidNotStart("server did not start (exit status %s): %s"
                                        % (self._proc.returncode, self.log_tail()))
            if greets(port, timeout=2.0):
                return
            time.sleep(0.05)
        raise ServerDidNotStart("server did not start (no 220 on port %d within %.0f s): %s"
                                % (port, timeout, self.log_tail()))

    def log_tail(self, limit: int = 400) -> str:
        if not self._log.closed:
            self._log.flush()
        try:
            with open(self._log_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace").strip()

    def exit_status(self) -> Optional[int]:
        return self._proc.poll()

    def _signal_group(self, signum: int) -> bool:
        """Signal our own process group; False once it no longer exists."""
        try:
            os.killpg(self.pgid, signum)
            return True
        except ProcessLookupError:
            return False

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after a grace period."""
        if self._signal_group(signal.SIGTERM):
            deadline = time.monotonic() + STOP_GRACE_S
            while time.monotonic() < deadline and sample_group(self.pgid) is not None:
                self._proc.poll()  # reap the leader so it stops counting as live
                time.sleep(0.05)
            self._signal_group(signal.SIGKILL)
        try:
            self._proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass  # unkillable (D state); nothing more we may do
        self._log.close()
