"""Running another project's own test suite against smtpd_compat.

The peer's test files are copied from where they are installed into a
temporary directory (nothing of theirs is vendored here), their imports are
pointed at smtpd_compat, and they run in a child process, so their fixtures,
event loops and monkeypatching never touch this test session.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Sequence

import smtpd_compat

# The directory holding the smtpd_compat under test, for the child's sys.path.
PROJECT_ROOT = Path(smtpd_compat.__file__).resolve().parent.parent


def copy_rewritten(source: Path, target: Path, rewrite: Callable[[str], str]) -> None:
    """Copy the file or directory ``source`` to ``target``, passing the text of
    every ``.py`` file through ``rewrite``."""
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        sources = sorted(target.rglob("*.py"))
    else:
        shutil.copyfile(source, target)
        sources = [target]
    for path in sources:
        path.write_text(rewrite(path.read_text(encoding="utf-8")), encoding="utf-8")


def run_python(args: Sequence[str], cwd: Path, timeout: float) -> "subprocess.CompletedProcess[str]":
    """Run this interpreter with ``args`` in ``cwd``; output and errors together."""
    env: Dict[str, str] = dict(os.environ)
    # The outer run's options (its --junitxml above all) are not the child's.
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args],
        cwd=str(cwd),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def tail(output: str, lines: int = 60) -> str:
    return "\n".join(output.splitlines()[-lines:])


#: aiosmtpd's default port and the one its suite gives a second (upstream) server.
WELL_KNOWN_PORTS = (8025, 9025)

_LOOPBACKS = ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"))


def _listen(family: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
        sock.listen(1)
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def _unless_older_checkouts_use_them() -> Iterator[bool]:
    """Whether no run of an older checkout, whose peer suites still listen on 8025 and
    9025 under this machine-wide lock, is running now (then the lock is ours inside)."""
    try:
        import fcntl
    except ImportError:  # Windows: no such runs
        yield True
        return
    with open(os.path.join(tempfile.gettempdir(), "smtpd_compat-port-8025.lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def holding_well_known_ports() -> Iterator[None]:
    """Listen on 8025 and 9025 of every loopback address where they are free, as some
    other program on the machine might: what runs inside must not need them.  Never
    waits: while an older checkout's run uses them, they are busy already."""
    with _unless_older_checkouts_use_them() as ours, contextlib.ExitStack() as held:
        for port in WELL_KNOWN_PORTS if ours else ():
            for family, host in _LOOPBACKS:
                with contextlib.suppress(OSError):  # taken already, or no IPv6
                    held.enter_context(_listen(family, host, port))
        yield


def free_ports(count: int) -> List[int]:
    """``count`` distinct ports, free on both loopback addresses a moment ago."""
    chosen: List[int] = []
    with contextlib.ExitStack() as probes:
        while len(chosen) < count:
            first = probes.enter_context(_listen(socket.AF_INET, "127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                probes.enter_context(_listen(socket.AF_INET6, "::1", port))
            except OSError as e:
                if socket.has_ipv6 and e.errno == errno.EADDRINUSE:
                    continue  # taken on ::1: draw again (the probe keeps this one out)
            chosen.append(port)
    return chosen
