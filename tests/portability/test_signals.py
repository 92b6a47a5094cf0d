"""``smtpd_compat.common.signals``: SIGINT and SIGTERM stop both command lines, with
and without ``loop.add_signal_handler``."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any, Iterator, List

import pytest

from smtpd_compat.common.signals import STOP_SIGNALS, interrupting, stopping

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix",
                                reason="sends itself POSIX signals")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def refuse_signal_handlers(loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise NotImplementedError  # as Windows' loops do

    monkeypatch.setattr(loop, "add_signal_handler", refuse)


@pytest.mark.parametrize("signum", STOP_SIGNALS)
@pytest.mark.parametrize("loop_handles_signals", [True, False], ids=["add_signal_handler", "signal.signal"])
def test_each_stop_signal_stops_the_loop(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch, signum: int, loop_handles_signals: bool
) -> None:
    if not loop_handles_signals:
        refuse_signal_handlers(loop, monkeypatch)
    before = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    ran: List[str] = []
    with stopping(loop):
        loop.call_soon(os.kill, os.getpid(), signum)
        loop.call_later(30, ran.append, "the signal did not stop the loop")
        loop.run_forever()
    assert ran == []
    assert {number: signal.getsignal(number) for number in STOP_SIGNALS} == before


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_a_signal_caught_by_another_thread_still_stops_the_loop(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    """Without add_signal_handler nothing interrupts the main thread's select()
    when the signal lands in another thread (an executor's, say): the loop must
    still come back to run the handler."""
    refuse_signal_handlers(loop, monkeypatch)
    ran: List[str] = []

    def signal_this_thread() -> None:
        time.sleep(0.5)  # let the main thread block in select()
        signal.pthread_kill(threading.get_ident(), signum)

    with stopping(loop):
        loop.call_soon(lambda: threading.Thread(target=signal_this_thread).start())
        loop.call_later(30, lambda: (ran.append("the signal did not stop the loop"), loop.stop()))
        loop.run_forever()
    assert ran == []


def test_outside_the_main_thread_nothing_is_installed(loop: asyncio.AbstractEventLoop) -> None:
    before = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    errors: List[BaseException] = []

    def serve() -> None:
        try:
            with stopping(loop):
                loop.call_soon(loop.stop)
                loop.run_forever()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join(30)
    assert errors == [] and not thread.is_alive()
    assert {number: signal.getsignal(number) for number in STOP_SIGNALS} == before


def test_sigterm_interrupts_like_ctrl_c() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with interrupting():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between two bytecodes
                threading.Event().wait(0.01)
    assert signal.getsignal(signal.SIGTERM) == before
