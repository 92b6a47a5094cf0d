"""STARTTLS, implicit TLS and AUTH for the legacy face: opt-in, off by default.

stdlib smtpd had none of these.  An ``SMTPServer`` turns them on with
keyword arguments (see ``SMTPServer.__init__``); each ``SMTPChannel`` reads
them from its server when the connection starts.  A server that sets none
of them gets no ``Extensions`` object at all, and its channels behave as
Python 3.11's smtpd did, byte for byte.

Commands, replies and gates are those of the modern face (``modern.smtp``,
``modern.auth``): the SASL conversations and texts come from the engine's
``sasl`` module, and the TLS texts are checked against the modern face by
``tests/stdlib/test_legacy_tls.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from smtpd_compat.engine import sasl

from smtpd_compat.engine.starttls import (
    ALLOWED_BEFORE_STARTTLS,
    INSECURE,
    MUST_STARTTLS,
    NO_TLS,
    READY_FOR_TLS,
    SYNTAX,
    TLS_ACTIVE,
)

if TYPE_CHECKING:
    import ssl

    from smtpd_compat.legacy.channel import SMTPChannel

__all__ = ["Extensions", "Settings", "settings_of"]



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

    def __init__(self, channel: SMTPChannel, settings: Settings) -> None:
        self.channel = channel
        self.settings = settings
        self.authenticated = False
        self.auth_data: Any = None
        #: What the modern face puts in ``session.ssl``, once TLS is up.
        self.ssl: Optional[Dict[str, Any]] = None
        self._tls_requested = False
        self._starttls_refused = False  # by the server's handle_STARTTLS hook
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
        if self._starttls_refused and command != "QUIT":
            return INSECURE
        if self.settings.require_starttls and not self.tls_active and command not in ALLOWED_BEFORE_STARTTLS:
            return MUST_STARTTLS
        return None

    def command(self, verb: str) -> Optional[Callable[[Optional[str]], None]]:
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

    def ehlo_lines(self) -> List[str]:
        """EHLO keywords to add, in the modern face's order."""
        settings = self.settings
        lines = []
        if settings.tls_context is not None and not self._tls_requested:
            lines.append("250-STARTTLS")
        if settings.authenticator is not None and (not settings.auth_require_tls or self.tls_active):
            lines.append("250-AUTH " + " ".join(settings.mechanisms))
        return lines

    @property
    def in_exchange(self) -> bool:
        """True while the next line answers an AUTH challenge."""
        return self._exchange is not None

    # -- STARTTLS -----------------------------------------------------------------------

    def smtp_STARTTLS(self, arg: Optional[str]) -> None:
        channel = self.channel
        if arg:
            channel.push(SYNTAX)
            return
        if self.settings.tls_context is None:
            channel.push(NO_TLS)
            return
        if self._tls_requested:
            # RFC 3207: no TLS inside TLS.
            channel.push(TLS_ACTIVE)
            return
        channel.push(READY_FOR_TLS)
        self._tls_requested = True
        channel.start_tls(self.settings.tls_context)

    def tls_established(self) -> None:
        channel = self.channel
        ssl_object = channel.ssl_object
        assert ssl_object is not None
        from smtpd_compat.legacy.tls import ssl_info

        self.ssl = ssl_info(ssl_object)
        if self.settings.ssl_context is not None:
            return  # implicit TLS: nothing was said before it
        # RFC 3207 4.2: forget everything learnt from the client in the clear.
        self.authenticated = False
        self.auth_data = None
        channel._start_over()
        hook = channel._hook("STARTTLS")
        if hook is not None:
            self._starttls_refused = not channel._hook_context().call(hook)

    # -- AUTH ---------------------------------------------------------------------------

    def smtp_AUTH(self, arg: Optional[str]) -> None:
        channel = self.channel
        if not channel.seen_greeting:
            channel.push("503 Error: send EHLO first")
            return
        if not channel.extended_smtp:
            channel.push("500 Error: command 'AUTH' not recognized")
            return
        if self.settings.auth_require_tls and not self.tls_active:
            channel.push(sasl.ENCRYPTION_REQUIRED)
            return
        if self.authenticated:
            channel.push(sasl.ALREADY_AUTHENTICATED)
            return
        if not arg:
            channel.push(sasl.NOT_ENOUGH_VALUE)
            return
        args = arg.split()
        if len(args) > 2:
            channel.push(sasl.TOO_MANY_VALUES)
            return
        mechanism = args[0]
        if mechanism not in self.settings.mechanisms:
            channel.push(sasl.UNRECOGNIZED_MECHANISM)
            return
        try:
            conversation = sasl.MECHANISMS[mechanism](sasl.initial_response(args))
        except sasl.SaslFailure as failure:
            channel.push(failure.reply)
            return
        self._exchange = (mechanism, conversation)
        self._step(None)

    def answer(self, line: bytes) -> None:
        """The client's answer to the last ``334`` challenge."""
        try:
            decoded = sasl.decode_response(line)
        except sasl.SaslFailure as failure:
            self._exchange = None
            self.channel.push(failure.reply)
            return
        self._step(decoded)

    def _step(self, answer: Optional[bytes]) -> None:
        assert self._exchange is not None
        mechanism, conversation = self._exchange
        try:
            challenge = conversation.send(answer)  # type: ignore[arg-type]  # None starts it
        except StopIteration as done:
            self._exchange = None
            self._authenticate(mechanism, done.value)
            return
        except sasl.SaslFailure as failure:
            self._exchange = None
            self.channel.push(failure.reply)
            return
        self.channel.push(sasl.challenge_line(challenge).decode("ascii"))

    def _authenticate(self, mechanism: str, credentials: sasl.LoginPassword) -> None:
        channel = self.channel
        # The modern authenticator signature: (server, session, envelope,
        # mechanism, auth_data), with the bridge's server/session/envelope.
        authenticator = self.settings.authenticator
        assert authenticator is not None  # AUTH is offered only with one
        result = sasl.synchronous(channel._hook_context().call(authenticator, mechanism, credentials))
        if not isinstance(result, sasl.AuthResult):
            result = sasl.AuthResult(success=False, handled=False)  # fail closed
        if result.success:
            self.authenticated = True
            self.auth_data = result.auth_data
        reply = sasl.reply_for(result)
        assert reply is not None  # synchronous() leaves no failure "handled"
        channel.push(reply)

