"""The legacy command line's run: asyncore's loop until a stop signal, then
a graceful drain; optionally in several forked workers.

Drain: the server stops accepting, every channel is asked to
``close_when_idle()`` (idle ones hear 421 at once, a transaction under way
finishes first), and the loop runs until they are gone, ``drain_timeout``
passes or a second signal comes; what is left is closed.  Signals only set
flags (``common.signals.draining_blocking``) that the loop reads between two
``poll()`` passes, so a handler never interrupts a channel mid-callback.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Any, Callable, List, Optional

from smtpd_compat import asyncore
from smtpd_compat.common.signals import StopRequests, draining_blocking
from smtpd_compat.common.supervisor import Listeners, Supervisor

__all__ = ["serve_legacy"]

#: How long one poll() pass may wait: how soon a signal is noticed.
_POLL_S = 0.5


def _open(channels: List[Any]) -> bool:
    live = set(asyncore.socket_map.values())
    return any(channel in live for channel in channels)


def _run(server: Any, drain_timeout: float, stop: StopRequests, parent: Optional[int]) -> int:
    while not stop.draining:
        asyncore.loop(_POLL_S, count=1)
        if parent is not None and os.getppid() != parent:
            stop.request()  # the supervisor is gone: do not serve on unsupervised
    server.close()
    channels: List[Any] = [d for d in list(asyncore.socket_map.values()) if hasattr(d, "close_when_idle")]
    for channel in channels:
        channel.close_when_idle()
    deadline = time.monotonic() + drain_timeout
    while not stop.now_asked and _open(channels):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        asyncore.loop(min(_POLL_S, remaining), count=1)
    asyncore.close_all()
    return 0


def serve_legacy(
    server: Any, drain_timeout: float, workers: int = 1, ready: Optional[Callable[[], None]] = None
) -> int:
    """Serve ``server`` (an ``SMTPServer``, bound and listening) until
    SIGINT/SIGTERM, then drain; ``workers > 1`` forks that many processes
    accepting from its socket.  ``ready`` runs once it serves.  Returns the
    exit status."""
    if workers == 1:
        with draining_blocking() as stop:
            if ready is not None:
                ready()
            return _run(server, drain_timeout, stop, None)

    def body(sockets: List[socket.socket], worker_ready: Callable[[], None]) -> int:
        parent = os.getppid()
        # Supervised: SIGTERM drains and repeats are ignored (the parent
        # escalates with SIGKILL), as in the modern face's workers.
        with draining_blocking(escalate=False, signals=[signal.SIGTERM]) as stop:
            worker_ready()
            return _run(server, drain_timeout, stop, parent)

    supervisor = Supervisor(
        body, Listeners.of([server.socket]), workers, drain_timeout=drain_timeout, on_ready=ready
    )
    return supervisor.run()
