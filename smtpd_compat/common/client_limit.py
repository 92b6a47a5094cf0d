"""``connection_limit_per_client``, the one decision for both faces: how
many connections one client address holds at once, and whether the next
one may stay.  The modern face counts per event loop, the legacy face per
``SMTPServer``; beyond the limit the connection gets its dialect's
``too_many_connections`` 421 and is closed.
"""

from __future__ import annotations

import collections
import weakref
from typing import Any, Optional

__all__ = ["ConnectionCounts", "counts_for"]


class ConnectionCounts:
    """Open connections per client address."""

    def __init__(self) -> None:
        self._open: "collections.Counter[str]" = collections.Counter()

    def admit(self, peer: Any, limit: int) -> Optional[str]:
        """Count a connection from ``peer`` and return its client key; None:
        ``limit`` connections from that address are open already (not counted)."""
        key = peer[0] if isinstance(peer, tuple) else str(peer)
        if self._open[key] >= limit:
            return None
        self._open[key] += 1
        return key

    def open_from(self, peer: Any) -> int:
        return self._open[peer[0] if isinstance(peer, tuple) else str(peer)]

    def release(self, key: str) -> None:
        """A connection ``admit`` counted under ``key`` ended."""
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]


_counts: "weakref.WeakKeyDictionary[Any, ConnectionCounts]" = weakref.WeakKeyDictionary()


def counts_for(owner: Any) -> ConnectionCounts:
    """The counts shared by ``owner``'s connections (an event loop, a server)."""
    counts = _counts.get(owner)
    if counts is None:
        counts = _counts[owner] = ConnectionCounts()
    return counts
