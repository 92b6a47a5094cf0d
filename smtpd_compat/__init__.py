"""Python 3.11's ``smtpd`` module, kept alive: ``import smtpd_compat as smtpd``.

Programs written for the stdlib module (removed in Python 3.12) run
unchanged, with the same replies, the same ``process_message`` calls and the
same printed output, on top of this project's SMTP engine.  ``asyncore`` and
``asynchat`` come along: ``from smtpd_compat import asyncore``.

The asyncio server with aiosmtpd's API is ``smtpd_compat.modern``; both
faces can serve the same ``SMTPServer`` subclass (see MIGRATING.md).
"""

from __future__ import annotations

# Read at call time through this module, so assigning them here (as smtpd
# users do with DEBUGSTREAM, and smtpd's own tests with socket) takes effect.
import socket as socket
import sys
import typing
from typing import Any

# ("X as X": names programs use, though not in stdlib smtpd's __all__.)
from smtpd_compat import asynchat as asynchat
from smtpd_compat import asyncore as asyncore
from smtpd_compat.legacy.channel import SMTPChannel
from smtpd_compat.legacy.cli import Options as Options
from smtpd_compat.legacy.cli import parseargs as parseargs
from smtpd_compat.legacy.cli import usage as usage
from smtpd_compat.legacy.names import COMMASPACE as COMMASPACE
from smtpd_compat.legacy.names import DATA_SIZE_DEFAULT as DATA_SIZE_DEFAULT
from smtpd_compat.legacy.names import NEWLINE as NEWLINE
from smtpd_compat.legacy.names import VERSION as __version__
from smtpd_compat.legacy.names import Devnull as Devnull
from smtpd_compat.legacy.server import SMTPServer
from smtpd_compat.legacy.servers import DebuggingServer
from smtpd_compat.legacy.servers import MailmanProxy as MailmanProxy
from smtpd_compat.legacy.servers import PureProxy

__all__ = [
    "SMTPChannel",
    "SMTPServer",
    "DebuggingServer",
    "PureProxy",
]

program = sys.argv[0]
DEBUGSTREAM: Any = Devnull()

if typing.TYPE_CHECKING:  # (a module attribute: no extra public name)
    from smtpd_compat.legacy.names import EMPTYSTRING as EMPTYSTRING
else:

    def __getattr__(name: str) -> Any:
        # EMPTYSTRING left stdlib smtpd after Python 3.4, but programs still import
        # it (secure-smtpd does).  Served on demand, it stays out of dir(), where
        # CPython 3.11's test_smtpd (check__all__) takes every constant for API
        # missing from __all__.
        if name == "EMPTYSTRING":
            from smtpd_compat.legacy.names import EMPTYSTRING

            return EMPTYSTRING
        raise AttributeError("module %r has no attribute %r" % (__name__, name))


# Shown (repr, pickle) under the name programs import them by.
for _public in (SMTPChannel, SMTPServer, DebuggingServer, PureProxy):
    _public.__module__ = __name__
del _public
