"""STARTTLS, implicit TLS and AUTH for the legacy face: opt-in, off by default.

stdlib smtpd had none of these.  An ``SMTPServer`` turns them on with
keyword arguments (see ``SMTPServer.__init__``); each ``SMTPChannel`` reads
them from its server when the connection starts.  A server that sets none
of them gets no ``Extensions`` object at all, and its channels behave as
Python 3.11's smtpd did, byte for byte.

Commands, replies and gates are the engine's (``starttls``, ``sasl``), as
on the modern face.  This module keeps the connection's TLS/AUTH state and
speaks to its channel through ``Host`` only; running hooks (the server's
``handle_STARTTLS``, the authenticator) is the channel's business.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, NamedTuple, Optional, Protocol, Tuple

from smtpd_compat.engine import replies, sasl, starttls

if TYPE_CHECKING:
    import ssl

__all__ = ["Credentials", "Extensions", "Host", "Settings", "settings_of"]


class Credentials(NamedTuple):
    """A completed AUTH exchange, for the channel to hand to the authenticator."""

    mechanism: str
    login_password: sasl.LoginPassword


class Host(Protocol):
    """What extensions use of their channel (an ``SMTPChannel``)."""

    seen_greeting: str
    extended_smtp: bool

    @property
    def ssl_object(self) -> Optional[ssl.SSLObject]: ...

    def push(self, msg: str) -> None: ...

    def start_tls(self, context: ssl.SSLContext) -> None: ...


class Settings(NamedTuple):
    """A server's extension settings, as one channel uses them."""

    tls_context: Optional[ssl.SSLContext]  # STARTTLS
    ssl_context: Optional[ssl.SSLContext]  # implicit TLS from the first byte
    require_starttls: bool
    authenticator: Optional[Callable[..., Any]]
    auth_required: bool
    auth_require_tls: bool
    mechanisms: Tuple[str, ...]  # offered, in EHLO order


def _configured(server: Any, name: str, default: Any) -> Any:
    """``server.<name>`` as an ``SMTPServer`` sets it (on the instance, or
    its class).  Looking no further keeps test doubles such as ``Mock()``
    servers, whose every attribute exists, extension-free."""
    try:
        return vars(server)[name]
    except (TypeError, KeyError):
        return getattr(type(server), name, default)


def settings_of(server: Any) -> Optional[Settings]:
    """The extensions ``server`` turned on; None for none (stdlib smtpd)."""
    tls_context = _configured(server, "tls_context", None)
    ssl_context = _configured(server, "ssl_context", None)
    authenticator = _configured(server, "authenticator", None)
    if tls_context is None and ssl_context is None and authenticator is None:
        return None
    excluded = _configured(server, "auth_exclude_mechanism", None) or ()
    return Settings(
        tls_context=tls_context,
        ssl_context=ssl_context,
        require_starttls=tls_context is not None and bool(_configured(server, "require_starttls", False)),
        authenticator=authenticator,
        auth_required=authenticator is not None and bool(_configured(server, "auth_required", False)),
        auth_require_tls=bool(_configured(server, "auth_require_tls", True)),
        mechanisms=tuple(sorted(set(sasl.MECHANISMS) - set(excluded))),
    )


class Extensions:
    """One connection's TLS and AUTH state, and the commands that change it."""

    def __init__(self, channel: Host, settings: Settings) -> None:
        self.channel = channel
        self.settings = settings
        self.authenticated = False
        self.auth_data: Any = None
        #: What the modern face puts in ``session.ssl``, once TLS is up.
        self.ssl: Optional[Dict[str, Any]] = None
        #: Set when the server's handle_STARTTLS hook refused the handshake.
        self.starttls_refused = False
        self._tls_requested = False
        self._exchange: Optional[Tuple[str, sasl.Conversation]] = None

    @property
    def tls_active(self) -> bool:
        return self.channel.ssl_object is not None

    # -- what the channel asks ----------------------------------------------------------

    def connected(self) -> None:
        """The connection was accepted; with implicit TLS, it starts now."""
        if self.settings.ssl_context is not None:
            self._tls_requested = True
            self.channel.start_tls(self.settings.ssl_context)

    def refusal(self, command: str) -> Optional[str]:
        """The reply refusing ``command`` before it runs, if any."""
        return starttls.refusal(
            command,
            refused_by_hook=self.starttls_refused,
            required=self.settings.require_starttls,
            active=self.tls_active,
        )

    def command(self, verb: str) -> Optional[Callable[[Optional[str]], Optional[Credentials]]]:
        """The method for an extension command (stdlib smtpd knew neither)."""
        if verb == "STARTTLS":
            return self.smtp_STARTTLS
        if verb == "AUTH" and self.settings.authenticator is not None:
            return self.smtp_AUTH
        return None

    def auth_needed(self) -> bool:
        """Refuse a command with 530 unless the client authenticated (when required)."""
        if self.settings.auth_required and not self.authenticated:
            self.channel.push(sasl.AUTH_REQUIRED)
            return True
        return False

    def offered_starttls(self) -> bool:
        return self.settings.tls_context is not None and not self._tls_requested

    def offered_auth(self) -> Optional[Tuple[str, ...]]:
        """The AUTH mechanisms EHLO names now (None: AUTH not offered)."""
        settings = self.settings
        if settings.authenticator is not None and (not settings.auth_require_tls or self.tls_active):
            return settings.mechanisms
        return None

    @property
    def in_exchange(self) -> bool:
        """True while the next line answers an AUTH challenge."""
        return self._exchange is not None

    # -- STARTTLS -----------------------------------------------------------------------

    def smtp_STARTTLS(self, arg: Optional[str]) -> None:
        refusal = starttls.starttls_refusal(arg, self.settings.tls_context is not None, self._tls_requested)
        if refusal is not None:
            self.channel.push(refusal)
            return
        self.channel.push(starttls.READY_FOR_TLS)
        self._tls_requested = True
        assert self.settings.tls_context is not None
        self.channel.start_tls(self.settings.tls_context)

    def tls_established(self) -> bool:
        """TLS is up; True when the session starts over (after STARTTLS, not
        with implicit TLS), which the channel then does."""
        from smtpd_compat.legacy.tls import ssl_info

        ssl_object = self.channel.ssl_object
        assert ssl_object is not None
        self.ssl = ssl_info(ssl_object)
        if self.settings.ssl_context is not None:
            return False  # implicit TLS: nothing was said before it
        # RFC 3207 4.2: forget everything learnt from the client in the clear.
        self.authenticated = False
        self.auth_data = None
        return True

    # -- AUTH ---------------------------------------------------------------------------

    def smtp_AUTH(self, arg: Optional[str]) -> Optional[Credentials]:
        """Start an AUTH exchange; the credentials when already complete."""
        channel = self.channel
        if not channel.seen_greeting:
            channel.push(replies.need_greeting("EHLO"))
            return None
        try:
            args = sasl.auth_arguments(
                arg,
                extended=channel.extended_smtp,
                require_tls=self.settings.auth_require_tls,
                tls_active=self.tls_active,
                authenticated=self.authenticated,
                mechanisms=self.settings.mechanisms,
            )
            conversation = sasl.MECHANISMS[args[0]](sasl.initial_response(args))
        except sasl.SaslFailure as failure:
            channel.push(failure.reply)
            return None
        self._exchange = (args[0], conversation)
        return self._step(None)

    def answer(self, line: bytes) -> Optional[Credentials]:
        """The client's answer to the last ``334`` challenge; the
        credentials once the exchange is complete."""
        try:
            decoded = sasl.decode_response(line)
        except sasl.SaslFailure as failure:
            self._exchange = None
            self.channel.push(failure.reply)
            return None
        return self._step(decoded)

    def _step(self, answer: Optional[bytes]) -> Optional[Credentials]:
        assert self._exchange is not None
        mechanism, conversation = self._exchange
        try:
            challenge = conversation.send(answer)  # type: ignore[arg-type]  # None starts it
        except StopIteration as done:
            self._exchange = None
            return Credentials(mechanism, done.value)
        except sasl.SaslFailure as failure:
            self._exchange = None
            self.channel.push(failure.reply)
            return None
        self.channel.push(sasl.challenge_line(challenge).decode("ascii"))
        return None

    def finish_auth(self, result: Any) -> None:
        """Conclude the exchange with the authenticator's ``result``."""
        result = sasl.synchronous(result)
        if not isinstance(result, sasl.AuthResult):
            result = sasl.AuthResult(success=False, handled=False)  # fail closed
        if result.success:
            self.authenticated = True
            self.auth_data = result.auth_data
        reply = sasl.reply_for(result)
        assert reply is not None  # synchronous() leaves no failure "handled"
        self.channel.push(reply)
