"""Per-connection and per-transaction state handed to handler hooks, on
either face (the legacy face through its bridge)."""

from __future__ import annotations

import enum
import logging
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, Union

if TYPE_CHECKING:
    import asyncio  # only named: importing the legacy face loads no asyncio

__all__ = ["MISSING", "Envelope", "PeerType", "Session"]

log = logging.getLogger("mail.log")

PeerType = Union[Tuple[str, int], Tuple[str, int, int, int], str, None]


class _Missing(enum.Enum):
    MISSING = object()

    def __repr__(self) -> str:
        return "MISSING"


#: Returned by a hook lookup when the handler does not define the hook.
MISSING = _Missing.MISSING


class Session:
    """What is known about one client connection.

    Hooks may add attributes of their own to carry state between hooks.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.peer: PeerType = None
        self.ssl: Optional[Dict[str, Any]] = None
        self.host_name: Optional[str] = None
        self.extended_smtp = False
        self.loop = loop
        #: Data from the PROXY protocol header, when enabled.
        self.proxy_data: Any = None
        #: Whatever the authenticator returned as AuthResult.auth_data.
        self.auth_data: Any = None
        #: None: AUTH not tried; False: failed; True: succeeded.
        self.authenticated: Optional[bool] = None
        self._login_data: Any = None

    @property
    def login_data(self) -> Any:
        """Deprecated: use ``auth_data``."""
        log.warning("Session.login_data is deprecated and will be removed in version 2.0")
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        log.warning("Session.login_data is deprecated and will be removed in version 2.0")
        self._login_data = value


class Envelope:
    """One mail transaction: sender, recipients and content."""

    #: DSN (RFC 3461): MAIL FROM's RET and ENVID (``engine.dsn.MailDsn``),
    #: and each accepted recipient's NOTIFY and ORCPT (``engine.dsn.RcptDsn``)
    #: by address.  Set on the instance only when the server offers DSN, so
    #: that by default an envelope's attributes are aiosmtpd's.
    dsn: Any = None
    rcpt_dsn: Mapping[str, Any] = MappingProxyType({})

    def __init__(self) -> None:
        self.mail_from: Optional[str] = None
        self.mail_options: List[str] = []
        self.smtp_utf8 = False
        #: bytes, or str when the server decodes data.
        self.content: Union[None, bytes, str] = None
        #: The content as bytes, after dot-unstuffing.
        self.original_content: Optional[bytes] = None
        self.rcpt_tos: List[str] = []
        self.rcpt_options: List[str] = []

