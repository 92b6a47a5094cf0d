"""How SIGINT (Ctrl-C) and SIGTERM stop a server, on every platform.

Both command lines stop cleanly, with exit status 0, on either signal.  An
asyncio loop gets them through ``loop.add_signal_handler`` where it has one;
where it does not (Windows, or a loop that must not own the process's signal
wakeup descriptor) plain ``signal.signal`` handlers stop the loop from the
main thread instead.  Outside the main thread no handler can be installed at
all: the caller must stop the loop itself, and Ctrl-C keeps arriving as
``KeyboardInterrupt`` in the main thread.

Servers that drain use :func:`draining` (asyncio) or :func:`draining_blocking`
(asyncore): the first signal asks for a drain, a second one for a stop at once,
both recorded in a :class:`StopRequests`.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager, suppress
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator, List, Optional, Sequence, Tuple

if TYPE_CHECKING:  # the legacy CLI imports this module; asyncio stays unloaded there
    import asyncio

__all__ = ["STOP_SIGNALS", "StopRequests", "draining", "draining_blocking", "interrupting", "stopping"]

#: The signals that end a server cleanly, where the platform has them
#: (SIGBREAK: Ctrl-Break in a Windows console).
STOP_SIGNALS: Tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)

_Handler = Callable[[int, Optional[FrameType]], Any]


@contextmanager
def _handling(handler: _Handler, signals: Sequence[int] = STOP_SIGNALS) -> Iterator[List[int]]:
    """``handler`` for every stop signal while inside (those it could take, listed);
    the previous handlers come back on the way out."""
    previous: List[Tuple[int, Any]] = []
    try:
        for signum in signals:
            with suppress(ValueError):  # not the main thread
                previous.append((signum, signal.signal(signum, handler)))
        yield [signum for signum, _ in previous]
    finally:
        for signum, old in previous:
            signal.signal(signum, old)


def _interrupt(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt


@contextmanager
def interrupting() -> Iterator[None]:
    """While inside, SIGTERM raises ``KeyboardInterrupt`` just as Ctrl-C does, so a
    blocking loop (asyncore's) takes one way out for both."""
    with _handling(_interrupt):
        yield


@contextmanager
def _calling(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None], signals: Sequence[int] = STOP_SIGNALS
) -> Iterator[None]:
    """While inside, each of ``signals`` runs ``callback`` in ``loop``."""
    installed: List[int] = []
    try:
        for signum in signals:
            # NotImplementedError: Windows' loops; RuntimeError/ValueError: not the main thread.
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, callback)
                installed.append(signum)
        if installed:
            yield
            return

        def soon(signum: int, frame: Optional[FrameType]) -> None:
            # A signal handler runs between two bytecodes of the main thread,
            # maybe inside the loop's own machinery: let the loop call back.
            loop.call_soon_threadsafe(callback)

        # Nothing wakes a loop blocked in select() for a signal here (no
        # wakeup descriptor: Windows does not interrupt select() for Ctrl-C,
        # and a POSIX signal may land in an executor thread), so the main
        # thread must come back to Python often enough to run ``soon``.
        heartbeat = _Heartbeat(loop)
        try:
            with _handling(soon, signals):
                yield
        finally:
            heartbeat.cancel()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


class _Heartbeat:
    """A timer that fires every :attr:`INTERVAL` seconds until cancelled."""

    INTERVAL = 0.25

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._beat()

    def _beat(self) -> None:
        self._timer = self._loop.call_later(self.INTERVAL, self._beat)

    def cancel(self) -> None:
        self._timer.cancel()


def stopping(loop: asyncio.AbstractEventLoop) -> "ContextManager[None]":
    """While inside, SIGINT and SIGTERM stop ``loop`` (``loop.run_forever()`` returns)."""
    return _calling(loop, loop.stop)


class StopRequests:
    """What the stop signals asked for so far: the first a drain, the second
    (when ``escalate``) a stop at once.  Blocking loops read ``draining`` and
    ``now_asked``; asyncio code awaits the futures ``drain`` and ``now``."""

    def __init__(self, loop: Optional[asyncio.AbstractEventLoop] = None, escalate: bool = True) -> None:
        self.escalate = escalate
        self.draining = False
        self.now_asked = False
        self._futures: "Tuple[asyncio.Future[None], ...]" = (
            (loop.create_future(), loop.create_future()) if loop is not None else ()
        )

    @property
    def drain(self) -> "asyncio.Future[None]":
        return self._futures[0]

    @property
    def now(self) -> "asyncio.Future[None]":
        return self._futures[1]

    def request(self) -> None:
        """One more stop request (a signal, or a program's own reason)."""
        if not self.draining:
            self.draining = True
            self._resolve(0)
        elif self.escalate and not self.now_asked:
            self.now_asked = True
            self._resolve(1)

    def _resolve(self, index: int) -> None:
        if self._futures and not self._futures[index].done():
            self._futures[index].set_result(None)


@contextmanager
def draining(
    loop: asyncio.AbstractEventLoop, escalate: bool = True, signals: Sequence[int] = STOP_SIGNALS
) -> Iterator[StopRequests]:
    """While inside, ``signals`` are recorded as stop requests for ``loop``."""
    requests = StopRequests(loop, escalate)
    with _calling(loop, requests.request, signals):
        yield requests


@contextmanager
def draining_blocking(escalate: bool = True, signals: Sequence[int] = STOP_SIGNALS) -> Iterator[StopRequests]:
    """:func:`draining` for a loop that polls (asyncore's): read the flags
    between two passes."""
    requests = StopRequests(None, escalate)
    with _handling(lambda signum, frame: requests.request(), signals):
        yield requests
