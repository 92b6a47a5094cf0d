"""What the command lines tell a person at a terminal, and only them.

A script that captures the output sees exactly what stdlib smtpd and aiosmtpd
printed; someone who started a server in a terminal sees where it listens and
how to stop it, instead of a silent prompt that looks hung.
"""

from __future__ import annotations

import sys

from smtpd_compat.common.address import format_address

__all__ = ["announce_listening"]


def announce_listening(program: str, what: str, host: str, port: int) -> None:
    """One line on stderr if stderr is a terminal: ``program``, the server class
    ``what``, its address, and how to stop it."""
    stream = sys.stderr
    if stream is None or not stream.isatty():
        return
    print(
        "%s: %s listening on %s; press Ctrl-C to stop" % (program, what, format_address(host, port)),
        file=stream,
        flush=True,
    )
