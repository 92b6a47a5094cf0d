"""The modern face: an asyncio SMTP server with aiosmtpd 1.4's public API.

Code written for aiosmtpd runs here by changing ``aiosmtpd`` to
``smtpd_compat.modern`` in its imports.
"""

from __future__ import annotations

import asyncio
import warnings

#: The aiosmtpd API level this face mirrors (it also names the ident).
__version__ = "1.4.6"


def _get_or_new_eventloop() -> asyncio.AbstractEventLoop:
    """The current event loop, or a new one set as current (aiosmtpd's name)."""
    try:
        with warnings.catch_warnings():
            # 3.10/3.11 only warn where 3.12+ raise: treat both as "no loop".
            warnings.simplefilter("error", DeprecationWarning)
            return asyncio.get_event_loop()
    except (DeprecationWarning, RuntimeError):
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return loop
