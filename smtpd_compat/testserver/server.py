"""``SMTPTestServer``: a running SMTP server that keeps what it receives.

The object behind the pytest fixtures, usable without pytest too::

    with SMTPTestServer(tls="starttls") as server:
        ...  # send to server.host, server.port
        server.wait_for(lambda m: m["Subject"] == "Hello")
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from typing import Any, Callable, List, Optional, Union

from smtpd_compat.common.address import format_address
from smtpd_compat.inbox.store import BaseStore, MessageStore, StoredMessage

from .faces import LegacyFace, ModernFace
from .options import ServerOptions, resolve_options
from .tlsfiles import CA_FILE, client_ssl_context

__all__ = ["MessageTimeout", "SMTPTestServer"]

DEFAULT_TIMEOUT = 5.0


class MessageTimeout(AssertionError):
    """No matching message arrived in time (an AssertionError, so pytest
    reports it as a failed expectation, not as a crash)."""


class SMTPTestServer:
    """An SMTP server on ``host:port`` storing every message it accepts.

    Keywords are ``ServerOptions`` fields and override the ``SMTPD_*``
    environment variables; or pass a ready ``options``.
    """

    def __init__(
        self, options: Optional[ServerOptions] = None, *, store: Optional[BaseStore] = None, **keywords: Any
    ) -> None:
        if options is not None and keywords:
            raise TypeError("pass either options or keywords, not both")
        self.options = options if options is not None else resolve_options(keywords)
        #: Every accepted message (advanced use: queries, listeners, async waits).
        self.store: BaseStore = store if store is not None else MessageStore()
        face = LegacyFace if self.options.face == "legacy" else ModernFace
        self._face: Union[ModernFace, LegacyFace] = face(self.options, self.store)
        self.host = self.options.host
        self.port = self.options.port
        self._running = False

    def start(self) -> "SMTPTestServer":
        self.port = self._face.start()
        self._running = True
        return self

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._face.stop()

    def __enter__(self) -> "SMTPTestServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SMTPTestServer {self.options.face} {format_address(self.host, self.port)} tls={self.options.tls}>"

    # -- what was received ---------------------------------------------

    @property
    def messages(self) -> List[EmailMessage]:
        """The accepted messages, oldest first; each has ``.envelope``
        (``mail_from``, ``rcpt_tos``, ``raw``, ``peer``...)."""
        return [stored.message for stored in self.store]

    def clear(self) -> None:
        """Forget every message (between tests sharing a session server)."""
        self.store.clear()

    def wait_for(
        self, predicate: Optional[Callable[[EmailMessage], bool]] = None, timeout: Optional[float] = DEFAULT_TIMEOUT
    ) -> EmailMessage:
        """The newest message satisfying ``predicate`` (any message if None),
        waiting up to ``timeout`` seconds (None: forever) for one to arrive.

        Raises ``MessageTimeout`` naming what was received instead.
        """
        match = None if predicate is None else _on_message(predicate)
        try:
            return self.store.wait_for(match, timeout).message
        except TimeoutError:
            raise MessageTimeout(self._timeout_text(predicate, timeout)) from None

    def _timeout_text(self, predicate: Optional[Callable[[EmailMessage], bool]], timeout: Optional[float]) -> str:
        wanted = "message" if predicate is None else f"message matching {_describe(predicate)}"
        received = self.store.all()
        text = f"no {wanted} arrived at {format_address(self.host, self.port)} within {timeout:g} s; {len(received)} received"
        shown = received[-5:]
        if shown:
            text += (" (last %d)" % len(shown) if len(received) > len(shown) else "") + ":"
            text += "".join(
                f"\n  from {m.mail_from!r} to {list(m.rcpt_tos)!r} subject {m.subject!r}" for m in shown
            )
        return text

    # -- TLS for clients -----------------------------------------------

    @property
    def ca_file(self) -> str:
        """The certificate clients should trust: the shipped test CA, or
        with your own ``certfile`` that file (right for a self-signed one)."""
        return self.options.certfile or CA_FILE

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client context for this server: connect to ``localhost``
        or ``127.0.0.1``."""
        return client_ssl_context(self.ca_file)


def _on_message(predicate: Callable[[EmailMessage], bool]) -> Callable[[StoredMessage], bool]:
    def matches(stored: StoredMessage) -> bool:
        return bool(predicate(stored.message))

    return matches


def _describe(predicate: Callable[..., Any]) -> str:
    name = getattr(predicate, "__qualname__", None) or repr(predicate)
    code = getattr(predicate, "__code__", None)
    if code is not None:
        name += f" ({code.co_filename}:{code.co_firstlineno})"
    return name
