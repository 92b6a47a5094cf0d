"""The modern face: an asyncio SMTP server with aiosmtpd 1.4's public API.

Code written for aiosmtpd runs here by changing ``aiosmtpd`` to
``smtpd_compat.modern`` in its imports.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Optional

#: The aiosmtpd API level this face mirrors (it also names the ident).
__version__ = "1.4.6"


def _current_loop() -> Optional[asyncio.AbstractEventLoop]:
    """The running loop, else the loop set as this thread's current one, else None;
    never creates a loop and never warns."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    if sys.version_info >= (3, 14):
        # 3.14+: get_event_loop() returns the loop set as current, or raises.
        try:
            return asyncio.get_event_loop()
        except RuntimeError:
            return None
    # Before 3.14 get_event_loop() creates a loop itself in the main thread when
    # none is set (with a DeprecationWarning from 3.12 on).  The stdlib policies
    # keep the thread's loop in `_local._loop` (3.9 to 3.13 alike); a policy of
    # one's own decides for itself.
    policy = asyncio.get_event_loop_policy()
    local = getattr(policy, "_local", None)
    if local is not None:
        loop: Optional[asyncio.AbstractEventLoop] = getattr(local, "_loop", None)
        return loop
    try:
        return policy.get_event_loop()
    except RuntimeError:
        return None


def _get_or_new_eventloop() -> asyncio.AbstractEventLoop:
    """The current event loop, or a new one set as current (aiosmtpd's name)."""
    loop = _current_loop()
    if loop is None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop
