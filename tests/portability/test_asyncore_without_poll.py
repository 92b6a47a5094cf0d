"""``smtpd_compat.asyncore`` where ``select.poll`` does not exist (Windows): it waits
with ``select()``, as the stdlib did there."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
from typing import Dict, List

import pytest

from smtpd_compat import asyncore
from tests.portability._platforms import NO_POLL, REPO_ROOT, child_env


@pytest.fixture
def no_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(select, "poll")


@pytest.mark.usefixtures("no_poll")
@pytest.mark.parametrize("use_poll", [False, True], ids=["poll", "poll2"])
def test_descriptor_closed_behind_its_back_is_closed_not_fatal(use_poll: bool) -> None:
    channels: Dict[int, asyncore.dispatcher] = {}
    closed: List[str] = []

    class Watcher(asyncore.dispatcher):
        def handle_close(self) -> None:
            closed.append(self.name)
            self.close()

    left, right = socket.socketpair()
    other_left, other_right = socket.socketpair()
    try:
        doomed = Watcher(left, map=channels)
        doomed.name = "doomed"
        healthy = Watcher(other_left, map=channels)
        healthy.name = "healthy"
        left.close()  # behind asyncore's back: the map still has its number
        for _ in range(5):
            asyncore.loop(timeout=0.01, use_poll=use_poll, map=channels, count=1)
        assert closed == ["doomed"]
        assert list(channels.values()) == [healthy]
    finally:
        for sock in (right, other_left, other_right):
            sock.close()


@pytest.mark.usefixtures("no_poll")
def test_readiness_is_reported_as_select_reports_it() -> None:
    events: List[str] = []

    class Recorder(asyncore.dispatcher):
        def writable(self) -> bool:
            return True

        def handle_read(self) -> None:
            events.append("read %r" % self.recv(10))

        def handle_write(self) -> None:
            events.append("write")

    channels: Dict[int, asyncore.dispatcher] = {}
    ours, theirs = socket.socketpair()
    try:
        Recorder(ours, map=channels)
        theirs.send(b"hi")
        asyncore.loop(timeout=1, map=channels, count=1)
        assert events == ["read b'hi'", "write"]
    finally:
        ours.close()
        theirs.close()


def test_the_legacy_tests_pass_without_poll() -> None:
    """The project's own asyncore and asynchat tests, in a child without poll() (legacy
    servers run that way in test_windows_like)."""
    tests = ["tests/stdlib/test_asyncore.py", "tests/stdlib/test_asynchat.py"]
    code = NO_POLL + (
        "import sys, select, selectors, pytest\n"
        "assert not hasattr(select, 'poll') and selectors.DefaultSelector is selectors.SelectSelector\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider'] + sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *tests], cwd=str(REPO_ROOT), env=child_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
