"""Stepping a session's coroutines inline, from ``data_received``.

A connection's commands run in its task (``SMTPProtocol._handler_coroutine``).
Waking that task for every command line costs a future, a loop pass and the
resumption of a stack of coroutines: about a third of a busy server's time
per message.  Most commands never really suspend (no handler hook awaits
anything, replies go straight to the socket), so while the task is parked
waiting for input the protocol runs what arrived right away, inside the
callback, *as the task*: ``current_task()`` is the session's task and
context variables are the task's.  Whatever does suspend goes back to the
task, which finishes it as if it had started it:

- a wait for more input (the message after DATA) stays inline: the
  coroutine yields ``AWAIT_INPUT`` instead of a future and is resumed by the
  next ``data_received``; at the end of input the task takes it over;
- anything else (a hook awaiting I/O, a full write buffer, ``sleep``) is
  handed to the task as a ``Continuation``, which passes what the coroutine
  waits for up to the task and steps the coroutine on from there.

This is the "eager task" idea of Python 3.12, applied to each command.  It
needs the task's context, so the task is made with an explicit one
(``start_task``), which ``create_task`` takes from Python 3.11 with the
default task factory; elsewhere every command runs in the task as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import types
from typing import Any, Coroutine, Generator, Optional, Tuple

__all__ = ["AWAIT_INPUT", "Continuation", "enter_task", "leave_task", "start_task", "wait_input_inline"]

#: What an inline coroutine yields to wait for input (never a task's concern).
AWAIT_INPUT = object()

_CONTEXT_PARAMETER = sys.version_info >= (3, 11)
# current_task() is kept right with asyncio's own bookkeeping (C-accelerated
# on every supported Python); without it, no inline steps.
enter_task = getattr(asyncio.tasks, "_enter_task", None)
leave_task = getattr(asyncio.tasks, "_leave_task", None)


def start_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
) -> Tuple["asyncio.Task[None]", Optional[contextvars.Context]]:
    """Start ``coro`` as a task; also the context it runs in, or None when
    it cannot be known (no inline steps then)."""
    if _CONTEXT_PARAMETER and enter_task is not None and loop.get_task_factory() is None:
        context = contextvars.copy_context()
        return loop.create_task(coro, context=context), context  # type: ignore[call-arg]
    return loop.create_task(coro), None


@types.coroutine
def wait_input_inline() -> Generator[Any, None, bool]:
    """Suspend an inline coroutine until more input arrived (always True:
    the caller looks at the input again, as after a woken future)."""
    yield AWAIT_INPUT
    return True


class Continuation:
    """Finish, in the task, a coroutine that started inline and then
    yielded ``pending`` (what it waits for; ``AWAIT_INPUT``: input that has
    arrived or ended by now)."""

    __slots__ = ("_coro", "_pending", "_error")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro: Optional[Coroutine[Any, Any, Any]] = coro
        self._pending = pending
        self._error: Optional[BaseException] = None

    def throw_first(self, error: BaseException) -> None:
        """Raise ``error`` in the coroutine instead of waiting (cancellation)."""
        self._error = error

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending, error = self._coro, self._pending, self._error
        self._coro = self._pending = self._error = None  # no cycle through a traceback
        assert coro is not None, "a continuation is awaited once"
        while True:
            value: Any = None
            if error is None and pending is not AWAIT_INPUT:
                try:
                    value = yield pending  # the task waits for it, as for its own coroutine
                except BaseException as raised:  # cancellation included: it belongs to coro
                    error = raised
            try:
                pending = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as done:
                return done.value
            finally:
                error = None
