"""Moving the modern face's default port (aiosmtpd's 8025) for code that relies on it.

aiosmtpd's own suite and the Mailbox example of its documentation listen on the
Controller's default port, 8025 (and 9025 for a second server).  Another program
holding those ports on the machine must not fail our run: the defaults are moved
to free ports for the duration, in this process or (copied next to a peer suite,
see ``tests._peer_suites``) in a child.  This file imports nothing from ``tests``.
"""

from __future__ import annotations

import inspect
from typing import Callable, Dict, List

import smtpd_compat.modern.controller as controller_module
import smtpd_compat.modern.main as main_module


def move_default_ports(moves: Dict[int, int]) -> Callable[[], None]:
    """Every default port ``old`` in ``moves`` (``__init__`` defaults of the Controller
    family, the command line's ``DEFAULT_PORT``) becomes ``moves[old]``; returns the undo."""
    undo: List[Callable[[], None]] = []

    def moved(values: tuple) -> tuple:  # type: ignore[type-arg]
        return tuple(moves.get(value, value) if type(value) is int else value for value in values)

    for cls in vars(controller_module).values():
        init = vars(cls).get("__init__") if inspect.isclass(cls) else None
        if init is not None and init.__defaults__:
            old = init.__defaults__
            init.__defaults__ = moved(old)
            undo.append(lambda init=init, old=old: setattr(init, "__defaults__", old))
    old_port = main_module.DEFAULT_PORT
    main_module.DEFAULT_PORT = moves.get(old_port, old_port)
    undo.append(lambda: setattr(main_module, "DEFAULT_PORT", old_port))

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore
