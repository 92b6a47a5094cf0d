"""The two ways a test server runs: the modern face's Controller, or a
legacy ``SMTPServer`` subclass on its own asyncore loop in a thread.

Both store every message in a shared ``MessageStore`` and take the same
``ServerOptions`` (faults only on the modern face).
"""

from __future__ import annotations

import ssl
import threading
import warnings
from typing import Any, Callable, Dict, Optional

from smtpd_compat import asyncore
from smtpd_compat.engine.sasl import AuthResult, LoginPassword
from smtpd_compat.inbox.store import BaseStore, StoringHandler
from smtpd_compat.legacy.server import SMTPServer
from smtpd_compat.modern.controller import Controller

from .faults import FaultPlan, FaultySMTP
from .options import ServerOptions
from .tlsfiles import server_ssl_context

__all__ = ["LegacyFace", "ModernFace", "StoringSMTPServer"]

#: The name in the greeting and EHLO reply: fixed, so no DNS lookup happens.
SERVER_NAME = "localhost"
# How often the legacy loop looks at its stop flag.
_LEGACY_POLL = 0.05


def _authenticator(options: ServerOptions) -> Optional[Callable[..., AuthResult]]:
    """An authenticator accepting exactly ``options.auth`` (both faces call
    it as ``(server, session, envelope, mechanism, auth_data)``)."""
    if options.auth is None:
        return None
    expected = LoginPassword(options.auth[0].encode(), options.auth[1].encode())

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        return AuthResult(success=auth_data == expected, auth_data=auth_data)

    return authenticate


def _tls_contexts(options: ServerOptions) -> Dict[str, Optional[ssl.SSLContext]]:
    """``tls_context`` (STARTTLS) and ``ssl_context`` (SMTPS), one of them set
    when ``options.tls`` asks; the keywords both faces use."""
    context = None
    if options.tls is not None:
        context = server_ssl_context(options.certfile, options.keyfile) if options.certfile else server_ssl_context()
    return {
        "tls_context": context if options.tls == "starttls" else None,
        "ssl_context": context if options.tls == "smtps" else None,
    }


class _FaultyController(Controller):
    def __init__(self, handler: Any, options: ServerOptions, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._plan = FaultPlan(options.faults, options.delays, options.drop_during_data)
        self._auth_required = options.auth_required

    def factory(self) -> FaultySMTP:
        smtp = FaultySMTP(self.handler, **self.SMTP_kwargs)
        smtp.fault_plan = self._plan
        # Set after __init__, which warns when AUTH is required without TLS:
        # right for production, noise for a loopback test server.
        smtp._auth_required = self._auth_required
        return smtp


class ModernFace:
    """The asyncio server (``smtpd_compat.modern``) in a Controller thread."""

    def __init__(self, options: ServerOptions, store: BaseStore) -> None:
        self.controller = _FaultyController(
            StoringHandler(store),
            options,
            hostname=options.host,
            port=options.port,
            server_hostname=SERVER_NAME,
            require_starttls=options.require_starttls,
            authenticator=_authenticator(options),
            auth_require_tls=options.requires_tls_for_auth,
            **_tls_contexts(options),
        )

    def start(self) -> int:
        self.controller.start()
        port: int = self.controller.port
        return port

    def stop(self) -> None:
        self.controller.stop()


class StoringSMTPServer(SMTPServer):
    """A stdlib-style ``SMTPServer`` whose ``process_message`` stores the message.

    It sees what ``process_message`` always saw (lines joined with ``\\n``);
    the stored copy has its CRLF line ends back.
    """

    def __init__(self, store: BaseStore, *args: Any, **kwargs: Any) -> None:
        self.store = store
        super().__init__(*args, **kwargs)

    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> Optional[str]:
        self.store.add(
            data.replace(b"\n", b"\r\n") + b"\r\n",
            mail_from=mailfrom,
            rcpt_tos=rcpttos,
            peer=peer,
            mail_options=kwargs.get("mail_options", ()),
            rcpt_options=kwargs.get("rcpt_options", ()),
        )
        return None


class LegacyFace:
    """``StoringSMTPServer`` on a private asyncore map, looped in a thread."""

    server: StoringSMTPServer

    def __init__(self, options: ServerOptions, store: BaseStore) -> None:
        self._options = options
        self._store = store
        self._map: Dict[int, Any] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="smtpd_compat legacy test server", daemon=True)

    def _serve(self) -> None:
        # One pass at a time so the flag is seen; the map is closed in this
        # thread, never under a running poll.
        while not self._stopping.is_set():
            asyncore.loop(timeout=_LEGACY_POLL, map=self._map, count=1)
        asyncore.close_all(self._map)

    def start(self) -> int:
        # Bound here, not in __init__: a server never started holds no socket.
        options = self._options
        with warnings.catch_warnings():
            # "Requiring AUTH while not requiring TLS": see _FaultyController.
            warnings.simplefilter("ignore", UserWarning)
            self.server = StoringSMTPServer(
                self._store,
                (options.host, options.port),
                None,
                map=self._map,
                require_starttls=options.require_starttls,
                authenticator=_authenticator(options),
                auth_required=options.auth_required,
                auth_require_tls=options.requires_tls_for_auth,
                **_tls_contexts(options),
            )
        self._thread.start()
        port: int = self.server.socket.getsockname()[1]
        return port

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
