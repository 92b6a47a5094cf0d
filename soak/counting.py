"""Counting sinks the soak servers run: ``-c counting.ModernCounter`` for
the modern CLI, ``-c counting.LegacyCounter`` for the legacy one.

Each counts the messages its program receives and writes the count to the
file named by ``SOAK_COUNT_FILE`` every second and at exit, so the soak can
compare what was delivered with what was sent.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any, List

from smtpd_compat import SMTPServer

_delivered = [0]


def _write_count() -> None:
    path = os.environ.get("SOAK_COUNT_FILE")
    if path:
        with open(path + ".tmp", "w") as out:
            out.write(str(_delivered[0]))
        os.replace(path + ".tmp", path)


def _report_every_second() -> None:
    while True:
        threading.Event().wait(1.0)
        _write_count()


atexit.register(_write_count)
threading.Thread(target=_report_every_second, daemon=True).start()


class ModernCounter:
    """A modern handler that only counts."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        _delivered[0] += 1
        return "250 OK"


class LegacyCounter(SMTPServer):
    """A legacy ``SMTPServer`` that only counts."""

    def process_message(self, peer: Any, mailfrom: str, rcpttos: List[str], data: Any, **kwargs: Any) -> None:
        _delivered[0] += 1
