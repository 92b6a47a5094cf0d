"""Which event loop an asyncio server runs on, decided in one place.

``"asyncio"`` (the default) is the standard library's loop; ``"uvloop"`` is
the optional extra (``pip install smtpd_compat[uvloop]``; not on Windows),
imported only when asked for, so the package keeps zero runtime
dependencies.  No event-loop *policy* is touched (policies are deprecated
from Python 3.14 on): every loop is made by a factory and handed over
explicitly.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any, Callable, Coroutine, Dict, TypeVar, Union

__all__ = ["DEFAULT_LOOP", "LOOP_NAMES", "LoopChoice", "LoopFactory", "LoopUnavailable", "close", "loop_factory", "run"]

T = TypeVar("T")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
#: A loop's name (one of ``LOOP_NAMES``) or a factory of one's own.
LoopChoice = Union[str, LoopFactory]

DEFAULT_LOOP = "asyncio"
LOOP_NAMES = ("asyncio", "uvloop")
#: The distribution and extra that provide each optional loop.
_EXTRAS: Dict[str, str] = {"uvloop": "smtpd_compat[uvloop]"}


class LoopUnavailable(RuntimeError):
    """The loop asked for needs a package that is not installed."""


def _imported_factory(name: str) -> LoopFactory:
    try:
        # By name: the module is optional, and mypy need not have its stubs.
        module = importlib.import_module(name)
    except ImportError as error:
        raise LoopUnavailable(
            f"the {name} event loop is not installed: pip install {_EXTRAS[name]}"
        ) from error
    factory: LoopFactory = module.new_event_loop
    return factory


def loop_factory(choice: LoopChoice = DEFAULT_LOOP) -> LoopFactory:
    """The factory for ``choice``: a name from ``LOOP_NAMES``, or a factory,
    returned as it is.  Raises ``LoopUnavailable`` when the named loop's
    package is missing, ``ValueError`` for an unknown name."""
    if callable(choice):
        return choice
    if choice == DEFAULT_LOOP:
        return asyncio.new_event_loop
    if choice in _EXTRAS:
        return _imported_factory(choice)
    raise ValueError(f"unknown event loop {choice!r}: choose from {', '.join(LOOP_NAMES)}")


def run(main: Coroutine[Any, Any, T], factory: LoopFactory) -> T:
    """Run ``main`` to completion on a new loop from ``factory``, then cancel
    what is left and close the loop (``asyncio.run`` with a loop factory)."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    loop = factory()
    try:
        return loop.run_until_complete(main)
    finally:
        close(loop)


def close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the loop's remaining tasks, finish its async generators and
    default executor, and close it (what ``asyncio.run`` does on the way out)."""
    try:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
