"""``_get_or_new_eventloop`` (aiosmtpd's name, ``smtp.make_loop``): the current loop or a
new one set as current, without a warning on any version from 3.9 to 3.15."""

from __future__ import annotations

import asyncio
import threading
import warnings
from typing import Iterator, List

import pytest

from smtpd_compat.modern import _get_or_new_eventloop


@pytest.fixture(autouse=True)
def warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture
def no_current_loop() -> Iterator[None]:
    asyncio.set_event_loop(None)
    yield
    asyncio.set_event_loop(None)


def test_the_loop_set_as_current_is_returned(no_current_loop: None) -> None:
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        assert _get_or_new_eventloop() is loop
    finally:
        loop.close()


def test_without_a_current_loop_a_new_one_becomes_current(no_current_loop: None) -> None:
    loop = _get_or_new_eventloop()
    try:
        assert not loop.is_closed() and not loop.is_running()
        assert _get_or_new_eventloop() is loop
    finally:
        loop.close()


def test_inside_a_running_loop_that_loop() -> None:
    async def current() -> asyncio.AbstractEventLoop:
        return _get_or_new_eventloop()

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(current()) is loop
    finally:
        loop.close()


def test_a_thread_without_a_loop_gets_its_own() -> None:
    loops: List[asyncio.AbstractEventLoop] = []

    def make() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loops.append(_get_or_new_eventloop())
            loops.append(_get_or_new_eventloop())
            loops[0].close()

    thread = threading.Thread(target=make)
    thread.start()
    thread.join(30)
    assert len(loops) == 2 and loops[0] is loops[1]
