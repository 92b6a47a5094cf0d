"""How SIGINT (Ctrl-C) and SIGTERM stop a server, on every platform.

Both command lines stop cleanly, with exit status 0, on either signal.  An
asyncio loop gets them through ``loop.add_signal_handler`` where it has one;
where it does not (Windows, or a loop that must not own the process's signal
wakeup descriptor) plain ``signal.signal`` handlers stop the loop from the
main thread instead.  Outside the main thread no handler can be installed at
all: the caller must stop the loop itself, and Ctrl-C keeps arriving as
``KeyboardInterrupt`` in the main thread.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager, suppress
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Tuple

if TYPE_CHECKING:  # the legacy CLI imports this module; asyncio stays unloaded there
    import asyncio

__all__ = ["STOP_SIGNALS", "interrupting", "stopping"]

#: The signals that end a server cleanly, where the platform has them
#: (SIGBREAK: Ctrl-Break in a Windows console).
STOP_SIGNALS: Tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)

_Handler = Callable[[int, Optional[FrameType]], Any]


@contextmanager
def _handling(handler: _Handler) -> Iterator[List[int]]:
    """``handler`` for every stop signal while inside (those it could take, listed);
    the previous handlers come back on the way out."""
    previous: List[Tuple[int, Any]] = []
    try:
        for signum in STOP_SIGNALS:
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
def stopping(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM stop ``loop`` (``loop.run_forever()`` returns)."""
    installed: List[int] = []
    try:
        for signum in STOP_SIGNALS:
            # NotImplementedError: Windows' loops; RuntimeError/ValueError: not the main thread.
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, loop.stop)
                installed.append(signum)
        if installed:
            yield
            return

        def stop_soon(signum: int, frame: Optional[FrameType]) -> None:
            # A signal handler runs between two bytecodes of the main thread,
            # maybe inside the loop's own machinery: let the loop stop itself.
            loop.call_soon_threadsafe(loop.stop)

        with _handling(stop_soon):
            yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
