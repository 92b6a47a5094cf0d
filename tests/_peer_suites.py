"""Running another project's own test suite against smtpd_compat.

The peer's test files are copied from where they are installed, or fetched
from PyPI at test time, into a temporary directory (nothing of theirs is
vendored here), their imports are pointed at smtpd_compat (rewritten, or
through an import alias plugin from ``tests/peer_plugins``), and they run in
a child process, so their fixtures, event loops and monkeypatching never
touch this test session.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence
from urllib.parse import urlsplit

import pytest

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


def run_python(
    args: Sequence[str], cwd: Path, timeout: float, path: Sequence[Path] = ()
) -> "subprocess.CompletedProcess[str]":
    """Run this interpreter with ``args`` in ``cwd``, the project and ``path``
    first on its sys.path; output and errors together."""
    env: Dict[str, str] = dict(os.environ)
    # The outer run's options (its --junitxml above all) are not the child's.
    env.pop("PYTEST_ADDOPTS", None)
    entries = [str(PROJECT_ROOT), *map(str, path), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, entries))
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


def _unreachable_indexes(pip_output: str) -> Optional[str]:
    """Why pip could not reach any http(s) package index it used, or None
    if one of them answers (pip's failure is then a real one)."""
    urls = ["https://pypi.org/simple"]
    for line in pip_output.splitlines():
        if line.startswith("Looking in indexes:"):
            urls = [url.strip() for url in line.split(":", 1)[1].split(",")]
    errors = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=10).close()
            return None
        except OSError as error:
            errors.append("%s: %s" % (parts.hostname, error))
    return "; ".join(errors) or None


def pip(args: Sequence[str], cwd: Path, timeout: float = 300) -> None:
    """Run this interpreter's pip; skip the test when no package index can
    be reached (CI can reach PyPI), fail on any other error."""
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not installed in this environment, so the peer package cannot be fetched")
    result = run_python(["-m", "pip", "--disable-pip-version-check", "--no-input", *args], cwd, timeout)
    if result.returncode != 0:
        unreachable = _unreachable_indexes(result.stdout)
        if unreachable:
            pytest.skip("the package index cannot be reached (%s)" % unreachable)
        raise AssertionError("pip %s failed:\n%s" % (" ".join(args), tail(result.stdout)))


def unpack_sdist(archive: Path, target: Path) -> Path:
    """Extract an sdist (``name-version.tar.gz``) into ``target``; its top directory."""
    with tarfile.open(str(archive)) as sdist:
        if hasattr(tarfile, "data_filter"):
            sdist.extractall(str(target), filter="data")
        else:  # Python without extraction filters; the archive comes from PyPI
            sdist.extractall(str(target))
    return target / archive.name[: -len(".tar.gz")]


def junit_totals(report: Path) -> Dict[str, int]:
    """tests/failures/errors/skipped summed over a JUnit XML report's suites."""
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in ET.parse(str(report)).getroot().iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
    return totals


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
