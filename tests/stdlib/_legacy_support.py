"""Helpers for the legacy-face tests: servers in subprocesses, scripted SMTP dialogs.

The reference is Python 3.11's real ``smtpd``, run by a 3.11 interpreter in a
subprocess; ours runs the same script with ``smtpd_compat`` under the
interpreter running the tests.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Sequence, Tuple, Union

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=None)
def _python311() -> Optional[Tuple[str, str]]:
    """The Python 3.11 the tests compare with, as (its interpreter, its
    stdlib directory); None where there is none."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable, sysconfig.get_paths()["stdlib"]
    found = shutil.which("python3.11")
    if found is None:
        return None
    # A pyenv shim is a shell script that runs pyenv at every start: ask it once
    # what it stands for, and start that interpreter directly from then on.
    asked = subprocess.run(
        [found, "-c", "import sys, sysconfig; print(sys.executable); print(sysconfig.get_paths()['stdlib'])"],
        capture_output=True, text=True, timeout=60,
    )
    lines = asked.stdout.splitlines()
    return (lines[0], lines[1]) if asked.returncode == 0 and len(lines) == 2 else (found, "")


def python311_test_dir() -> Optional[Path]:
    """``Lib/test`` of the Python 3.11 the tests compare with (its
    ``test_smtpd.py``, ``test_asyncore.py``...), or None where there is no
    such interpreter or it was installed without its test package."""
    python311 = _python311()
    if python311 is None or not python311[1]:
        return None
    test_dir = Path(python311[1]) / "test"
    return test_dir if (test_dir / "test_smtpd.py").exists() else None


def reference_python() -> str:
    """A Python 3.11 interpreter (it still has smtpd), or skip the test."""
    python311 = _python311()
    if python311 is None:
        pytest.skip("needs a Python 3.11 interpreter to compare with the real smtpd")
    return python311[0]


def env_with_repo(**extra: str) -> Dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return env


# A server whose process_message prints its arguments.  A message whose text
# starts with "reply:" gets the rest of its first line as the reply.
RECORDER_SCRIPT = r"""
import importlib, sys
module_name, decode, utf8, size = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4]
smtpd = importlib.import_module(module_name)

class Recorder(smtpd.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        print(repr((peer[0], mailfrom, rcpttos, data, sorted(kwargs.items()))), flush=True)
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        if text.startswith("reply:"):
            return text[len("reply:"):].split("\n")[0]

server = Recorder(("127.0.0.1", 0), None, None if size == "none" else int(size),
                  enable_SMTPUTF8=utf8, decode_data=decode)
print("PORT", server.socket.getsockname()[1], flush=True)
smtpd.asyncore.loop(timeout=0.05)
"""


class _OutputFile:
    """A file a child process writes and we re-read from the start.

    The child gets a file description of its own, opened for appending.  With
    one shared description (a plain ``TemporaryFile`` handed to ``Popen``) our
    ``seek(0)`` before a read also moved the child's write position: a write
    landing then (``print`` writes a line's text and its newline separately)
    overwrote the file's first bytes, and a ``PORT`` line could be lost."""

    def __init__(self) -> None:
        fd, self._path = tempfile.mkstemp(prefix="smtpd_compat-test-")
        os.close(fd)
        self.for_child: Optional[BinaryIO] = open(self._path, "ab")
        self._reader = open(self._path, "rb")

    def close_child_end(self) -> None:
        """Our copy of the child's end; the child holds its own once started."""
        if self.for_child is not None:
            self.for_child.close()
            self.for_child = None

    def read(self) -> bytes:
        self._reader.seek(0)
        return self._reader.read()

    def close(self) -> None:
        self.close_child_end()
        self._reader.close()
        os.unlink(self._path)


class ServerProcess:
    """A server script in a subprocess; its stdout goes to a file we can re-read."""

    def __init__(self, argv: Sequence[str], env: Optional[Dict[str, str]] = None, **popen: Any) -> None:
        self._out = _OutputFile()
        self._err = _OutputFile()
        try:
            self.proc = subprocess.Popen(
                list(argv), stdout=self._out.for_child, stderr=self._err.for_child, env=env or env_with_repo(), **popen
            )
        except BaseException:
            self._out.close()
            self._err.close()
            raise
        self._out.close_child_end()
        self._err.close_child_end()
        self._read_upto = 0

    def wait_for_port_line(self) -> int:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            out = self.stdout()
            start = 0
            # Only whole lines: unbuffered print() writes the text and its
            # newline separately, and the newline must not count as output.
            while (end := out.find(b"\n", start)) >= 0:
                line, start = out[start:end], end + 1
                if line.startswith(b"PORT "):
                    self._read_upto = start
                    return int(line.split()[1])
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if self.proc.poll() is None:
            state = "still running"
            self.proc.kill()  # the caller never gets it to stop
            self.proc.wait()
        else:
            state = "exit code %s" % self.proc.returncode
        raise AssertionError("server did not start within 15 s (%s): stdout %r, stderr %r" % (state, self.stdout(), self.stderr()))

    def stdout(self) -> bytes:
        return self._out.read()

    def stderr(self) -> bytes:
        return self._err.read()

    def new_output(self) -> bytes:
        """What the server printed since the last call."""
        out = self.stdout()
        fresh, self._read_upto = out[self._read_upto:], len(out)
        return fresh

    def stop(self, sig: Optional[int] = None) -> int:
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("server did not stop within 10 s")

    def close(self) -> None:
        self.stop()
        self._out.close()
        self._err.close()


def start_recorder(reference: bool, decode: bool = False, utf8: bool = False, size: Union[int, str] = 33554432) -> Tuple[ServerProcess, int]:
    python, module = (reference_python(), "smtpd") if reference else (sys.executable, "smtpd_compat")
    argv = [python, "-W", "ignore", "-c", RECORDER_SCRIPT, module, str(int(decode)), str(int(utf8)), str(size)]
    server = ServerProcess(argv)
    return server, server.wait_for_port_line()


SYNC = b"XSYNC"
SYNC_REPLY = b'500 Error: command "XSYNC" not recognized\r\n'

# A dialog step: bytes to send, then (unless sync is False) wait for every
# reply they caused.  Use sync=False for a step that leaves the server
# reading message content (after DATA), which a marker would become part of.
Step = Union[bytes, Tuple[bytes, bool]]


def _recv_until(sock: socket.socket, buf: bytearray, marker: bytes) -> bytes:
    while True:
        at = buf.find(marker)
        if at >= 0:
            got = bytes(buf[:at])
            del buf[: at + len(marker)]
            return got
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed; got %r" % bytes(buf))
        buf += data


def converse(port: int, steps: Sequence[Step], quit: bool = True) -> List[bytes]:
    """Run a dialog; return the greeting, the replies to each synced step, and
    (with ``quit``) everything after a final QUIT up to the server's close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        buf = bytearray()
        transcript = [_recv_until(sock, buf, b"\r\n") + b"\r\n"]
        for step in steps:
            data, sync = (step, True) if isinstance(step, bytes) else step
            sock.sendall(data)
            if sync:
                sock.sendall(SYNC + b"\r\n")
                transcript.append(_recv_until(sock, buf, SYNC_REPLY))
        if quit:
            sock.sendall(b"QUIT\r\n")
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                buf += data
            transcript.append(bytes(buf))
        return transcript


class LoopThread:
    """An in-process legacy server on its own socket map, looping in a thread."""

    def __init__(self, server_class: type, *args: object, **kwargs: object) -> None:
        from smtpd_compat import asyncore

        self.map: Dict[int, object] = {}
        self.server = server_class(("127.0.0.1", 0), *args, map=self.map, **kwargs)
        self.port: int = self.server.socket.getsockname()[1]
        self._thread = threading.Thread(
            target=asyncore.loop, kwargs={"timeout": 0.05, "map": self.map}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        from smtpd_compat import asyncore

        self.server.close()
        asyncore.close_all(map=self.map)
        self._thread.join(5)
        assert not self._thread.is_alive(), "asyncore.loop did not return"

    def __enter__(self) -> "LoopThread":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
