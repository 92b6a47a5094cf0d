"""Running another project's own test suite against smtpd_compat.

The peer's test files are copied from where they are installed into a
temporary directory (nothing of theirs is vendored here), their imports are
pointed at smtpd_compat, and they run in a child process, so their fixtures,
event loops and monkeypatching never touch this test session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, Sequence

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


@contextlib.contextmanager
def machine_wide_lock(name: str) -> Iterator[None]:
    """Hold a lock shared by every process on this machine.

    tox runs the Python versions in parallel, and a peer suite that listens on
    a fixed port must not run twice at once.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no parallel runs to guard against there
        yield
        return
    with open(os.path.join(tempfile.gettempdir(), "smtpd_compat-%s.lock" % name), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tail(output: str, lines: int = 60) -> str:
    return "\n".join(output.splitlines()[-lines:])
