"""The helpers the legacy tests stand on: a server child's output read while it writes."""

from __future__ import annotations

import sys

from tests.stdlib._legacy_support import ServerProcess

LINES = 5000
# Unbuffered, print() writes each line's text and its newline separately: the
# moments a reader that shares the child's file position would corrupt.
CHILD = "for i in range(%d): print('PORT', i, flush=True)" % LINES


def test_output_read_while_the_child_writes_keeps_every_line() -> None:
    server = ServerProcess([sys.executable, "-u", "-c", CHILD])
    try:
        polls = 0
        while server.proc.poll() is None and polls < 200_000:  # bounded: the child ends by itself
            server.stdout()
            polls += 1
        assert server.proc.wait(30) == 0
        assert server.stdout().decode().splitlines() == ["PORT %d" % i for i in range(LINES)]
        assert server.stderr() == b""
    finally:
        server.close()
