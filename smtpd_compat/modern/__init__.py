"""The modern face: an asyncio SMTP server with aiosmtpd 1.4's public API.

Code written for aiosmtpd runs here by changing ``aiosmtpd`` to
``smtpd_compat.modern`` in its imports.
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from typing import Optional

#: The aiosmtpd API level this face mirrors (it also names the ident).
__version__ = "1.4.6"


def _current_loop() -> Optional[asyncio.AbstractEventLoop]:
    """The running loop, else the loop set as this thread's current one, else None."""
    if sys.version_info >= (3, 14):
        # 3.14+: get_event_loop() never creates a loop; without one it raises.
        try:
            return asyncio.get_event_loop()
        except RuntimeError:
            return None
    try:
        with warnings.catch_warnings():
            # Before 3.14 get_event_loop() may create a loop itself: 3.10-3.13 warn
            # when they would (3.12+ deprecate it), 3.9 does it silently in the main
            # thread.  Turned into an error, the warning means "no loop".
            warnings.simplefilter("error", DeprecationWarning)
            return asyncio.get_event_loop()
    except (DeprecationWarning, RuntimeError):
        return None


def _get_or_new_eventloop() -> asyncio.AbstractEventLoop:
    """The current event loop, or a new one set as current (aiosmtpd's name)."""
    loop = _current_loop()
    if loop is None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop
