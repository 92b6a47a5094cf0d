"""The modern SMTP server protocol: aiosmtpd 1.4's ``SMTP`` class.

This module is the asyncio adapter over the sans-I/O engine
(``smtpd_compat.engine``): ``data_received`` only feeds the ``Framer``;
one task per connection pulls events from it and runs the ``smtp_*``
command methods and the handler's ``handle_*`` hooks.  Replies are
collected and written once per batch of input (RFC 2920 pipelining
needs no more), not one ``write``+``drain`` per line.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import socket
import ssl
import warnings
from typing import AbstractSet, Any, Dict, Iterable, List, MutableMapping, Optional, Tuple, Union

from ..engine.framing import (
    BARE_NEWLINE_REFUSAL,
    CommandLine,
    CommandTooLong,
    DataChunk,
    DataEnd,
    bare_newline_action,
    normalize_newlines,
    unstuff,
)
from ..engine import starttls
from ..engine.starttls import ALLOWED_BEFORE_STARTTLS as ALLOWED_BEFORE_STARTTLS  # aiosmtpd name
from ..engine.grammar import (
    BadCommand,
    get_address,
    parse_params,
    printable,
    split_command,
    strip_keyword,
)
from . import __version__, _get_or_new_eventloop
from .connection import ConnectionAdapter
from .streams import AiosmtpdStreams
from .auth import (  # AuthResult, AuthenticatorType: importable, as in aiosmtpd
    AuthCallbackType,
    AuthenticatorType,
    AuthMechanismType,
    AuthMixin,
    AuthResult,
    LoginPassword,
    auth_mechanism,
    login_always_fail,
    mechanism_name,
)
from .hooks import bind_prefixed, class_functions, ehlo_hook_version, syntax
from .session import MISSING, Envelope, Session, _Missing

__all__ = [
    "AuthCallbackType",
    "AuthMechanismType",
    "MISSING",
    "__version__",
    "Envelope",
    "LoginPassword",
    "SMTP",
    "Session",
    "TLSSetupException",
    "auth_mechanism",
    "sanitize",
    "sanitized_log",
    "syntax",
]

log = logging.getLogger("mail.log")

__ident__ = f"Python SMTP {__version__}"
DATA_SIZE_DEFAULT = 2**25
CALL_LIMIT_DEFAULT = 20
BOGUS_LIMIT = 5


_fqdn: Optional[str] = None


def _default_hostname() -> str:
    # getfqdn() may block on DNS: do it once per process, not per
    # connection as aiosmtpd did (its issue #178).
    global _fqdn
    if _fqdn is None:
        _fqdn = socket.getfqdn()
    return _fqdn


#: The current event loop, or a new one set as current.
make_loop = _get_or_new_eventloop


class TLSSetupException(Exception):
    """The STARTTLS handshake failed; the connection is closed."""


def sanitize(text: bytes) -> bytes:
    """Mask the credentials of an ``AUTH <mechanism> <response>`` line."""
    verb, _, rest = text.partition(b" ")
    if verb.upper() != b"AUTH":
        return text
    mechanism, sep, response = rest.partition(b" ")
    if not sep or not response.strip():
        return text
    crlf = b"\r\n" if text.endswith(b"\r\n") else b"\n" if text.endswith(b"\n") else b""
    return b"%s %s ********%s" % (verb, mechanism, crlf)


def sanitized_log(func: Any, msg: Any, *args: Any, **kwargs: Any) -> None:
    """Log with every bytes argument passed through ``sanitize``."""
    func(msg, *(sanitize(a) if isinstance(a, bytes) else a for a in args), **kwargs)


class SMTP(AuthMixin, AiosmtpdStreams, ConnectionAdapter):
    """One SMTP connection: create one per client (a protocol factory)."""

    command_size_limit = 512
    #: Kept for API compatibility; every instance has its own copy (the
    #: class-level dict of aiosmtpd leaked limits across sessions).
    command_size_limits: MutableMapping[str, int] = collections.defaultdict(lambda: SMTP.command_size_limit)
    #: Longest DATA line, CRLF included (RFC 5321 4.5.3.1.6 plus one dot).
    line_length_limit = 1001
    #: Longest local part of an address (0: no limit).
    local_part_limit = 0
    #: Commands a client may send before STARTTLS under require_starttls;
    #: a subclass with its own greeting (LMTP's LHLO) extends it.
    allowed_before_starttls: AbstractSet[str] = ALLOWED_BEFORE_STARTTLS
    #: A bare CR or LF inside message content: "accept" keeps it (aiosmtpd's
    #: behaviour, the default), "normalize" turns it into CRLF, "reject"
    #: refuses the message with 550 and delivers nothing.  Only CRLF.CRLF
    #: ever ends a message, whatever this says.
    bare_newline = "accept"
    #: Most recipients of one message; the next RCPT gets "452 4.5.3 Error:
    #: too many recipients" (RFC 5321 4.5.3.1.10; at least 100 must be
    #: accepted).  aiosmtpd had no limit, so a client could grow memory one
    #: RCPT at a time; 1000 is Postfix's smtpd_recipient_limit.  0: none.
    recipient_limit = 1000

    def __init__(
        self,
        handler: Any,
        *,
        data_size_limit: Optional[int] = DATA_SIZE_DEFAULT,
        enable_SMTPUTF8: bool = False,
        decode_data: bool = False,
        hostname: Optional[str] = None,
        ident: Optional[str] = None,
        tls_context: Optional[ssl.SSLContext] = None,
        require_starttls: bool = False,
        timeout: float = 300,
        auth_required: bool = False,
        auth_require_tls: bool = True,
        auth_exclude_mechanism: Optional[Iterable[str]] = None,
        auth_callback: Optional[AuthCallbackType] = None,
        command_call_limit: Union[int, Dict[str, int], None] = None,
        authenticator: Optional[AuthenticatorType] = None,
        proxy_protocol_timeout: Optional[Union[int, float]] = None,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        self.__ident__ = ident or __ident__
        ConnectionAdapter.__init__(self, loop if loop else make_loop(), self.command_size_limit, timeout)
        self.event_handler = handler
        assert data_size_limit is None or isinstance(data_size_limit, int)
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = decode_data
        self.command_size_limits = collections.defaultdict(lambda: self.command_size_limit)
        self.hostname = hostname or _default_hostname()
        self.tls_context = tls_context
        if tls_context:
            if tls_context.verify_mode not in {ssl.CERT_NONE, ssl.CERT_OPTIONAL}:
                log.warning(
                    "tls_context.verify_mode not in {CERT_NONE, CERT_OPTIONAL}; "
                    "this might cause client connection problems"
                )
            elif tls_context.check_hostname:
                log.warning("tls_context.check_hostname == True; this might cause client connection problems")
        self.require_starttls = bool(tls_context) and require_starttls
        self._tls_handshake_okay = True
        self._tls_started = False
        self._smtps = False
        self.session: Optional[Session] = None
        self.envelope: Optional[Envelope] = None
        self._handler_coroutine: Optional["asyncio.Task[None]"] = None
        if auth_required and not auth_require_tls:
            warnings.warn("Requiring AUTH while not requiring TLS can lead to security vulnerabilities!")
            log.warning("auth_required == True but auth_require_tls == False")
        self._auth_require_tls = auth_require_tls
        self._auth_required = auth_required
        if proxy_protocol_timeout is not None:
            if proxy_protocol_timeout <= 0:
                raise ValueError("proxy_protocol_timeout must be > 0")
            if proxy_protocol_timeout < 3.0:
                log.warning("proxy_protocol_timeout < 3.0")
        self._proxy_timeout = proxy_protocol_timeout
        if authenticator is not None:
            self._authenticator = authenticator
            self._auth_callback = None
        else:
            self._authenticator = None
            self._auth_callback = auth_callback or login_always_fail
        # Found when first needed (EHLO over TLS, AUTH): most connections
        # never ask, and the table costs memory per connection.
        self._auth_exclude = tuple(auth_exclude_mechanism or ())
        self._auth_methods_found: Optional[Dict[str, Any]] = None
        if log.isEnabledFor(logging.INFO):
            log.info(
                "Available AUTH mechanisms: %s",
                " ".join(
                    name + "(builtin)" if getattr(method, "__self__", None) is self else name
                    for name, method in sorted(self._auth_methods.items())
                ),
            )
        self._handle_hooks: Dict[str, Any] = bind_prefixed(handler, "handle_")
        ehlo_hook = self._handle_hooks.get("EHLO")
        self._ehlo_hook_ver = None if ehlo_hook is None else ehlo_hook_version(ehlo_hook)
        if self._ehlo_hook_ver == "old":
            warnings.warn(
                "Use the 5-argument handle_EHLO() hook instead of the 4-argument handle_EHLO() hook; "
                "support for the 4-argument handle_EHLO() hook will be removed in version 2.0",
                DeprecationWarning,
            )
        self._call_limit_base: Dict[str, int] = {}
        self._call_limit_default = CALL_LIMIT_DEFAULT
        if command_call_limit is None:
            self._enforce_call_limit = False
        elif isinstance(command_call_limit, int):
            self._enforce_call_limit = True
            self._call_limit_default = command_call_limit
        elif isinstance(command_call_limit, dict):
            if not all(isinstance(v, int) for v in command_call_limit.values()):
                raise TypeError("All command_call_limit values must be int")
            self._enforce_call_limit = True
            self._call_limit_base = command_call_limit
            self._call_limit_default = command_call_limit.get("*", CALL_LIMIT_DEFAULT)
        else:
            raise TypeError("command_call_limit must be int or Dict[str, int]")
        self._greeting_sent = False

    # -- overridable factories and state resets (aiosmtpd API) ---------

    def _create_session(self) -> Session:
        return Session(self.loop)

    def _create_envelope(self) -> Envelope:
        return Envelope()

    def _set_post_data_state(self) -> None:
        self.envelope = self._create_envelope()

    def _set_rset_state(self) -> None:
        self._set_post_data_state()

    @property
    def _auth_methods(self) -> Dict[str, Any]:
        """AUTH mechanism name -> bound method; a handler's override the
        built-in ones, then ``auth_exclude_mechanism`` removes names."""
        methods = self._auth_methods_found
        if methods is None:
            methods = {}
            # The server's mechanisms are methods of its class; a handler's
            # may also be set on the instance.
            for owner, instance_too in ((self, False), (self.event_handler, True)):
                for name, method in bind_prefixed(owner, "auth_", instance_too).items():
                    methods[mechanism_name(name, method)] = method
            for name in self._auth_exclude:
                methods.pop(name, None)
            self._auth_methods_found = methods
        return methods

    @_auth_methods.setter
    def _auth_methods(self, methods: Dict[str, Any]) -> None:
        self._auth_methods_found = methods

    @property
    def _smtp_methods(self) -> Dict[str, Any]:
        """aiosmtpd's verb -> bound ``smtp_*`` method table, made on demand;
        dispatch uses the per-class table of functions instead."""
        return bind_prefixed(self, "smtp_", instance_too=False)

    @property
    def max_command_size_limit(self) -> int:
        try:
            return max(self.command_size_limits.values())
        except ValueError:
            return self.command_size_limit

    @property
    def _tls_active(self) -> bool:
        """TLS is up, by STARTTLS or implicitly (SMTPS)."""
        return self._tls_started or self._smtps

    # -- asyncio.Protocol ----------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._set_rset_state()
        self.session = self._create_session()
        self.session.peer = transport.get_extra_info("peername")
        if transport.get_extra_info("ssl_object") is not None:
            self._smtps = True
            self.session.ssl = _ssl_info(transport)
        log.info("Peer: %r", self.session.peer)
        self._reset_timeout()
        if self._proxy_timeout is None and type(self).push is SMTP.push:
            # Greet now rather than from the task's first step: asyncio has
            # already spent two loop passes since accept(), and clients that
            # connect one at a time wait for this line.
            self._queue(self._greeting())
            self._greeting_sent = True
        self._handler_coroutine = self.loop.create_task(self._handle_client())

    def _greeting(self) -> str:
        return f"220 {self.hostname} {self.__ident__}"

    async def _greet(self) -> None:
        await self.push(self._greeting())
        self._greeting_sent = True

    def eof_received(self) -> Optional[bool]:
        assert self.session is not None
        log.info("%r EOF received", self.session.peer)
        self._eof = True
        self._wake_reader()
        # Keep the write side open so commands already received (a
        # pipelined "DATA ... QUIT" before a half-close) still get answers;
        # TLS cannot half-close.
        return not self._tls_active

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.session is not None:
            log.info("%r connection lost", self.session.peer)
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        self.transport = None
        self._eof = True
        self._wake_reader()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()

    async def push(self, status: Union[str, bytes]) -> None:
        """Send one reply line (``\\r\\n`` is appended)."""
        assert status is not None, "push() needs a status"
        if self.session is not None and log.isEnabledFor(logging.DEBUG):
            log.debug("%r << %r", self.session.peer, status)
        self._queue(status)
        await self._drain()

    def _deadline_passed(self) -> None:
        assert self.session is not None and self.transport is not None
        log.info("%r connection timeout", self.session.peer)
        if not self._greeting_sent:
            self.transport.close()  # a PROXY header that never came: no SMTP at all
            return
        self._queue(f"421 4.4.2 {self.hostname} Error: timeout exceeded")
        self._close()

    # -- the command loop ----------------------------------------------

    async def _handle_client(self) -> None:
        assert self.session is not None
        log.info("%r handling connection", self.session.peer)
        try:
            if not self._greeting_sent:
                if self._proxy_timeout is not None and not await self._read_proxy_header():
                    return
                await self._greet()
            await self._command_loop()
        except asyncio.CancelledError:
            log.info("%r Connection lost during _handle_client()", self.session.peer)
            raise
        finally:
            self._flush()
            if self._eof:
                self._writer.close()

    async def _read_proxy_header(self) -> bool:
        """Read and vet a PROXY protocol header; False closes the connection."""
        from .proxy_protocol import ProxyData, parse_proxy_header

        assert self.session is not None and self.transport is not None
        self._reset_timeout(self._proxy_timeout)
        parsed = None
        while parsed is None:
            parsed = parse_proxy_header(self._framer.peek_buffered())
            if parsed is None and not await self._wait_for_input():
                break
        if parsed is None:
            self.transport.close()
            return False
        proxy_data, used = parsed
        self._framer.consume_buffered(used)
        self.session.proxy_data = proxy_data
        status: Any = False
        if isinstance(proxy_data, ProxyData) and proxy_data.valid:
            status = await self._call_handler_hook("PROXY", proxy_data)
        else:
            log.warning("%r invalid PROXY handshake", self.session.peer)
        if status is MISSING or not status:
            log.info("%r rejected by handle_PROXY", self.session.peer)
            self.transport.close()
            return False
        self._reset_timeout()
        return True

    async def _command_loop(self) -> None:
        assert self.session is not None
        call_limit: Optional[Dict[str, int]] = None
        if self._enforce_call_limit:
            call_limit = collections.defaultdict(lambda: self._call_limit_default, self._call_limit_base)
        commands = class_functions(type(self), "smtp_")
        bogus_budget = BOGUS_LIMIT
        framer = self._framer
        # Once closing (QUIT, a limit), commands still buffered must not run.
        while not self._closing():
            event = framer.next_event()
            if event is None:
                if not await self._wait_for_input():
                    return
                continue
            if type(event) is CommandTooLong:
                await self.push("500 Command line too long")
                continue
            if type(event) is not CommandLine:
                continue  # stray data events cannot happen outside DATA
            line = event.line
            # aiosmtpd's two records per command, at its levels.
            if log.isEnabledFor(logging.DEBUG):
                sanitized_log(log.debug, "_handle_client readline: %r", line + b"\r\n")
            if log.isEnabledFor(logging.INFO):
                sanitized_log(log.info, "%r >> %r", self.session.peer, line)
            try:
                command, arg = split_command(line, self.enable_SMTPUTF8)
            except BadCommand as error:
                await self.push(str(error))
                continue
            max_size = (
                self.command_size_limits[command] if self.session.extended_smtp else self.command_size_limit
            )
            if len(line) > max_size:
                await self.push("500 Command line too long")
                continue
            if not self._tls_handshake_okay and command != "QUIT":
                await self.push(starttls.INSECURE)
                continue
            if self.require_starttls and not self._tls_active and command not in self.allowed_before_starttls:
                await self.push(starttls.MUST_STARTTLS)
                continue
            if call_limit is not None:
                budget = call_limit[command]
                if budget < 1:
                    log.warning("%r over limit for %s", self.session.peer, command)
                    await self.push(f"421 4.7.0 {printable(command)} sent too many times")
                    self._close()
                    return
                call_limit[command] = budget - 1
            method = commands.get(command)
            if method is None:
                log.warning("%r unrecognised: %s", self.session.peer, printable(command))
                bogus_budget -= 1
                if bogus_budget < 1:
                    await self.push("502 5.5.1 Too many unrecognized commands, goodbye.")
                    self._close()
                    return
                await self.push(f'500 Error: command "{printable(command)}" not recognized')
                continue
            self._reset_timeout()
            try:
                await method(self, arg)
            except asyncio.CancelledError:
                raise
            except ConnectionResetError:
                self._close()
                raise
            except Exception as error:
                await self._reply_to_exception(error)

    async def _reply_to_exception(self, error: Exception) -> None:
        status = await self._exception_status(error)
        if isinstance(error, TLSSetupException):
            self._close()
            return
        await self.push(status)

    async def _exception_status(self, error: Exception) -> str:
        """The reply ``handle_exception`` gives for ``error``."""
        assert self.session is not None
        try:
            status = await self.handle_exception(error)
            if status is None:
                log.error("%r handle_exception() returned None", self.session.peer)
                status = "451 Requested action aborted: local error in processing"
        except Exception as inner:
            log.exception("%r Exception in handle_exception()", self.session.peer)
            try:
                status = f"500 Error: ({type(inner).__name__}) {printable(str(inner))}"
            except Exception:  # its __str__ raises too: still answer the client
                status = "500 Error: Cannot describe error"
        return status

    async def handle_exception(self, error: Exception) -> Optional[str]:
        if hasattr(self.event_handler, "handle_exception"):
            result = self.event_handler.handle_exception(error)
            if inspect.isawaitable(result):
                result = await result
            return result  # type: ignore[no-any-return]
        assert self.session is not None
        log.exception("%r SMTP session exception", self.session.peer)
        return f"500 Error: ({type(error).__name__}) {printable(str(error))}"

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        hook = self._handle_hooks.get(command)
        if hook is None:
            return MISSING
        status = hook(self, self.session, self.envelope, *args)
        if inspect.isawaitable(status):
            status = await status
        return status

    # -- gates used by the commands ------------------------------------

    async def check_helo_needed(self, helo: str = "HELO") -> bool:
        assert self.session is not None
        if not self.session.host_name:
            await self.push(f"503 Error: send {helo} first")
            return True
        return False

    async def check_auth_needed(self, caller_method: str) -> bool:
        assert self.session is not None
        if self._auth_required and not self.session.authenticated:
            log.info("%s: Authentication required", caller_method)
            await self.push("530 5.7.0 Authentication required")
            return True
        return False

    # -- argument parsing (aiosmtpd's method names) --------------------

    def _strip_command_keyword(self, keyword: str, arg: str) -> Optional[str]:
        return strip_keyword(keyword, arg)

    def _getaddr(self, arg: str) -> Tuple[Optional[str], Optional[str]]:
        address, rest = get_address(arg)
        if address and self.local_part_limit:
            local_part = address.rpartition("@")[0]
            if len(local_part) > self.local_part_limit:
                return None, None
        return address, rest

    def _getparams(self, params: List[str]) -> Optional[Dict[str, Union[str, bool]]]:
        return parse_params(params)

    def _syntax_available(self, method: Any) -> bool:
        if not hasattr(method, "__smtp_syntax__"):
            return False
        when = method.__smtp_syntax_when__
        return bool(getattr(self, when)) if when else True

    # -- SMTP commands -------------------------------------------------

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: Optional[str]) -> None:
        if not hostname:
            await self.push("501 Syntax: HELO hostname")
            return
        self._set_rset_state()
        assert self.session is not None
        self.session.extended_smtp = False
        status = await self._call_handler_hook("HELO", hostname)
        if status is MISSING:
            self.session.host_name = hostname
            status = f"250 {self.hostname}"
        await self.push(status)

    def _ehlo_lines(self) -> List[str]:
        """The EHLO reply before the final "250 HELP", in aiosmtpd's order.

        Also sets this session's MAIL line limit to what SIZE and SMTPUTF8
        allow (RFC 1870, RFC 6531).
        """
        lines = [f"250-{self.hostname}"]
        mail_limit = self.command_size_limit
        if self.data_size_limit:
            lines.append(f"250-SIZE {self.data_size_limit}")
            mail_limit += 26
        if not self._decode_data:
            lines.append("250-8BITMIME")
        if self.enable_SMTPUTF8:
            lines.append("250-SMTPUTF8")
            mail_limit += 10
        self.command_size_limits["MAIL"] = mail_limit
        self._framer.command_limit = self.max_command_size_limit
        if self.tls_context and not self._tls_active:
            lines.append("250-STARTTLS")
        if not self._auth_require_tls or self._tls_active:
            lines.append("250-AUTH " + " ".join(sorted(self._auth_methods)))
        return lines

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: Optional[str]) -> None:
        if not hostname:
            await self.push("501 Syntax: EHLO hostname")
            return
        lines = self._ehlo_lines()
        self._set_rset_state()
        assert self.session is not None
        self.session.extended_smtp = True
        if hasattr(self, "ehlo_hook"):
            warnings.warn("Use handler.handle_EHLO() instead of .ehlo_hook()", DeprecationWarning)
            await getattr(self, "ehlo_hook")()
        if self._ehlo_hook_ver is None:
            self.session.host_name = hostname
            lines.append("250 HELP")
        elif self._ehlo_hook_ver == "old":
            for line in lines:
                await self.push(line)
            lines = [await self._call_handler_hook("EHLO", hostname)]
        else:
            lines.append("250 HELP")
            lines = await self._call_handler_hook("EHLO", hostname, lines)
        # One write for the whole reply: a line per send() made stdlib smtpd
        # wait 40 ms for delayed ACKs on every EHLO.
        await self.push("\r\n".join(lines))

    @syntax("NOOP [ignored]")
    async def smtp_NOOP(self, arg: Optional[str]) -> None:
        status = await self._call_handler_hook("NOOP", arg)
        await self.push("250 OK" if status is MISSING else status)

    @syntax("QUIT")
    async def smtp_QUIT(self, arg: Optional[str]) -> None:
        if arg:
            await self.push("501 Syntax: QUIT")
            return
        status = await self._call_handler_hook("QUIT")
        await self.push("221 Bye" if status is MISSING else status)
        self._close()

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: Optional[str]) -> None:
        if arg:
            await self.push(starttls.SYNTAX)
            return
        if not self.tls_context:
            await self.push(starttls.NO_TLS)
            return
        if self._tls_active:
            # aiosmtpd negotiated TLS again inside TLS; RFC 3207 forbids it.
            await self.push(starttls.TLS_ACTIVE)
            return
        await self.push(starttls.READY_FOR_TLS)
        self._flush()
        # Whatever the client pipelined behind STARTTLS was sent in the
        # clear: it must never run as if it came over TLS (CVE-2024-34083).
        self._framer.discard_buffered()
        transport = self.transport
        assert transport is not None
        try:
            tls_transport = await self.loop.start_tls(
                transport,  # type: ignore[arg-type, unused-ignore]  # typeshed differs by version
                self,
                self.tls_context,
                server_side=True,
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            raise TLSSetupException() from error
        if tls_transport is None:
            raise TLSSetupException("connection closed during the TLS handshake")
        # No second discard here: the plaintext transport stopped feeding us
        # when start_tls() began, and whatever arrived since came over TLS
        # (the command sent with the handshake's last flight, for one).
        self._tls_established(tls_transport)

    def _tls_established(self, tls_transport: asyncio.BaseTransport) -> None:
        """TLS is up (our STARTTLS or a subclass's): what the client said
        in the clear is forgotten (RFC 3207 4.2)."""
        self.transport = tls_transport
        self._tls_started = True
        plain = self.session
        self._set_rset_state()
        self.session = self._create_session()
        if plain is not None:
            # The connection's origin (PROXY header included) is unchanged.
            self.session.peer = plain.peer
            self.session.proxy_data = plain.proxy_data
        self.session.ssl = _ssl_info(tls_transport)
        hook = self._handle_hooks.get("STARTTLS")
        self._tls_handshake_okay = True if hook is None else bool(hook(self, self.session, self.envelope))

    @syntax("HELP [command]")
    async def smtp_HELP(self, arg: Optional[str]) -> None:
        if await self.check_auth_needed("HELP"):
            return
        code = 250
        if arg:
            method = self._smtp_methods.get(arg.upper())
            if method is not None and self._syntax_available(method):
                text = method.__smtp_syntax__
                assert self.session is not None
                if self.session.extended_smtp and method.__smtp_syntax_extended__:
                    text += method.__smtp_syntax_extended__
                await self.push("250 Syntax: " + text)
                return
            code = 501
        commands = sorted(name for name, method in self._smtp_methods.items() if self._syntax_available(method))
        await self.push(f"{code} Supported commands: {' '.join(commands)}")

    @syntax("VRFY <address>")
    async def smtp_VRFY(self, arg: Optional[str]) -> None:
        if await self.check_auth_needed("VRFY"):
            return
        if not arg:
            await self.push("501 Syntax: VRFY <address>")
            return
        address, _ = self._getaddr(arg)
        if address is None:
            await self.push("502 Could not VRFY " + printable(arg))
            return
        status = await self._call_handler_hook("VRFY", address)
        await self.push(
            "252 Cannot VRFY user, but will accept message and attempt delivery" if status is MISSING else status
        )

    async def _parse_path(self, keyword: str, arg: Optional[str], syntax_error: str) -> Optional[Tuple[str, List[str]]]:
        """Common MAIL/RCPT argument checks; replies and returns None on error,
        else ``(address, upper-cased parameter words)``."""
        assert self.session is not None
        if arg is not None:
            arg = self._strip_command_keyword(keyword, arg)
        if arg is None:
            await self.push(syntax_error)
            return None
        address, rest = self._getaddr(arg)
        if address is None:
            await self.push("553 5.1.3 Error: malformed address")
            return None
        if not address or (rest and not self.session.extended_smtp):
            await self.push(syntax_error)
            return None
        return address, (rest or "").upper().split()

    def _syntax_error(self, text: str) -> str:
        assert self.session is not None
        return f"501 Syntax: {text}" + (" [SP <mail-parameters>]" if self.session.extended_smtp else "")

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: Optional[str]) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("MAIL"):
            return
        syntax_error = self._syntax_error("MAIL FROM: <address>")
        parsed = await self._parse_path("FROM:", arg, syntax_error)
        if parsed is None:
            return
        address, mail_options = parsed
        assert self.envelope is not None and self.session is not None
        if self.envelope.mail_from:
            await self.push("503 Error: nested MAIL command")
            return
        params = self._getparams(mail_options)
        if params is None:
            await self.push(syntax_error)
            return
        if not self._decode_data:
            body = params.pop("BODY", "7BIT")
            if body not in ("7BIT", "8BITMIME"):
                await self.push("501 Error: BODY can only be one of 7BIT, 8BITMIME")
                return
        smtputf8 = params.pop("SMTPUTF8", False)
        if not isinstance(smtputf8, bool):
            await self.push("501 Error: SMTPUTF8 takes no arguments")
            return
        if smtputf8 and not self.enable_SMTPUTF8:
            await self.push("501 Error: SMTPUTF8 disabled")
            return
        self.envelope.smtp_utf8 = smtputf8
        size = params.pop("SIZE", None)
        if size:
            # ASCII digits only: "²" passes isdigit() yet int() raises on it.
            if isinstance(size, bool) or not (size.isascii() and size.isdigit()):
                await self.push(syntax_error)
                return
            if self.data_size_limit and int(size) > self.data_size_limit:
                await self.push("552 Error: message size exceeds fixed maximum message size")
                return
        if params:
            await self.push("555 MAIL FROM parameters not recognized or not implemented")
            return
        status = await self._call_handler_hook("MAIL", address, mail_options)
        if status is MISSING:
            self.envelope.mail_from = address
            self.envelope.mail_options.extend(mail_options)
            status = "250 OK"
        log.info("%r sender: %s", self.session.peer, address)
        await self.push(status)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: Optional[str]) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("RCPT"):
            return
        assert self.envelope is not None and self.session is not None
        if not self.envelope.mail_from:
            await self.push("503 Error: need MAIL command")
            return
        if self.recipient_limit and len(self.envelope.rcpt_tos) >= self.recipient_limit:
            await self.push("452 4.5.3 Error: too many recipients")
            return
        syntax_error = self._syntax_error("RCPT TO: <address>")
        parsed = await self._parse_path("TO:", arg, syntax_error)
        if parsed is None:
            return
        address, rcpt_options = parsed
        params = self._getparams(rcpt_options)
        if params is None:
            await self.push(syntax_error)
            return
        if params:
            await self.push("555 RCPT TO parameters not recognized or not implemented")
            return
        status = await self._call_handler_hook("RCPT", address, rcpt_options)
        if status is MISSING:
            self.envelope.rcpt_tos.append(address)
            self.envelope.rcpt_options.extend(rcpt_options)
            status = "250 OK"
        log.info("%r recip: %s", self.session.peer, address)
        await self.push(status)

    @syntax("RSET")
    async def smtp_RSET(self, arg: Optional[str]) -> None:
        if arg:
            await self.push("501 Syntax: RSET")
            return
        self._set_rset_state()
        if hasattr(self, "rset_hook"):
            warnings.warn("Use handler.handle_RSET() instead of .rset_hook()", DeprecationWarning)
            await getattr(self, "rset_hook")()
        status = await self._call_handler_hook("RSET")
        await self.push("250 OK" if status is MISSING else status)

    async def _receive_data(self) -> Tuple[List[bytes], Optional[DataEnd]]:
        """Collect the raw message after a 354 (DataEnd None: connection gone).

        The idle deadline restarts whenever a line completes (in
        ``data_received``), so a slow but steady client is served and a
        trickling one is not (a per-record deadline, as Postfix's
        smtpd_per_record_deadline).
        """
        framer = self._framer
        framer.start_data(self.data_size_limit, self.line_length_limit)
        chunks: List[bytes] = []
        while True:
            event = framer.next_event()
            if event is None:
                if not await self._wait_for_input():
                    return chunks, None
                continue
            if type(event) is DataChunk:
                chunks.append(event.data)
                continue
            assert type(event) is DataEnd
            return chunks, event

    @syntax("DATA")
    async def smtp_DATA(self, arg: Optional[str]) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None and self.session is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        envelope = self.envelope
        chunks, end = await self._receive_data()
        if end is None:
            return
        refusal = self._data_refusal(end)
        if refusal is not None:
            self._set_post_data_state()
            await self._push_data_reply(envelope, refusal)
            return
        original_content = unstuff(b"".join(chunks))
        del chunks[:]
        if bare_newline_action(self.bare_newline, end) == "normalize":
            original_content = normalize_newlines(original_content)
        content: Union[str, bytes] = original_content
        if self._decode_data:
            if self.enable_SMTPUTF8:
                content = original_content.decode("utf-8", "surrogateescape")
            else:
                try:
                    content = original_content.decode("ascii")
                except UnicodeDecodeError:
                    # aiosmtpd kept the envelope here, so the next MAIL got
                    # "503 nested MAIL"; a failed transaction is over.
                    self._set_post_data_state()
                    await self._push_data_reply(envelope, "500 Error: strict ASCII mode")
                    return
        self.envelope.content = content
        self.envelope.original_content = original_content
        try:
            status = await self._deliver()
        finally:
            # The message was received, so the transaction is over even if
            # the handler raised (aiosmtpd kept the envelope: "503 nested MAIL").
            self._set_post_data_state()
        await self._push_data_reply(envelope, "250 OK" if status is MISSING else status)

    async def _push_data_reply(self, envelope: Envelope, status: Any) -> None:
        """Answer the end of ``envelope``'s message; LMTP answers once per
        recipient instead."""
        await self.push(status)

    def _data_refusal(self, end: DataEnd) -> Optional[str]:
        """The reply refusing a received message, or None to accept it."""
        if end.line_too_long:
            return "500 Line too long (see RFC5321 4.5.3.1.6)"
        if end.too_large:
            return "552 Error: Too much mail data"
        if bare_newline_action(self.bare_newline, end) == "reject":
            return BARE_NEWLINE_REFUSAL
        return None

    async def _deliver(self) -> Any:
        """Hand the finished envelope to ``handle_DATA`` (or the deprecated
        ``process_message``); returns the hook's status or MISSING."""
        if "DATA" in self._handle_hooks:
            return await self._call_handler_hook("DATA")
        process_message = getattr(self.event_handler, "process_message", None)
        if process_message is None:
            return MISSING
        warnings.warn("Use handler.handle_DATA() instead of .process_message()", DeprecationWarning)
        assert self.session is not None and self.envelope is not None
        status = process_message(
            self.session.peer, self.envelope.mail_from, self.envelope.rcpt_tos, self.envelope.content
        )
        if inspect.isawaitable(status):
            status = await status
        return MISSING if status is None else status

    async def smtp_EXPN(self, arg: Optional[str]) -> None:
        await self.push("502 EXPN not implemented")


def _ssl_info(transport: asyncio.BaseTransport) -> Dict[str, Any]:
    """The TLS facts aiosmtpd put in ``session.ssl``."""
    return {
        key: transport.get_extra_info(key)
        for key in ("sslcontext", "ssl_object", "peercert", "cipher", "compression")
    }
