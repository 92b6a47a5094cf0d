"""The modern face's SMTP session: lifecycle, command loop, gates, hooks.

``SMTPProtocol`` sits on the I/O adapter (``connection.ConnectionAdapter``),
which calls it back at a few points only: ``_connected``, ``_input_ended``,
``_lost`` and ``_deadline_passed``; it pulls command lines and message data
from the adapter.  The rules it applies (line limits, STARTTLS gates, the
junk budget) are the engine's; the commands themselves are in ``auth``
(AUTH) and ``smtp`` (everything else), which build ``SMTP`` on this class.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import inspect
import logging
import socket
import ssl
from typing import (
    AbstractSet,
    Any,
    Coroutine,
    Dict,
    Iterable,
    MutableMapping,
    NamedTuple,
    NoReturn,
    Optional,
    Tuple,
    Union,
)

from ..common import client_limit
from ..common.hooks import bind_prefixed, class_functions, ehlo_hook_version
from ..common.session import MISSING, Envelope, Session
from ..engine import chunking, enhanced, esmtp, replies, starttls
from ..engine.framing import CommandLine, CommandTooLong
from ..engine.grammar import BadCommand, Command, printable, split_command
from ..engine.replies import AIOSMTPD
from . import __version__, _get_or_new_eventloop, inline
from .connection import ConnectionAdapter
from .proxy_trust import NetworkSpec, proxy_allowed

__all__ = [
    "BOGUS_LIMIT",
    "CALL_LIMIT_DEFAULT",
    "DATA_SIZE_DEFAULT",
    "SMTPProtocol",
    "TLSSetupException",
    "sanitize",
    "sanitized_log",
]

log = logging.getLogger("mail.log")

__ident__ = f"Python SMTP {__version__}"
DATA_SIZE_DEFAULT = 2**25
CALL_LIMIT_DEFAULT = 20
BOGUS_LIMIT = AIOSMTPD.junk_limit

#: The current event loop, or a new one set as current.
make_loop = _get_or_new_eventloop

_fqdn: Optional[str] = None
# RFC 2034: the greeting and the answers to HELO/EHLO/LHLO carry no enhanced code.
_NO_ENHANCED_CODES = frozenset({"", "HELO", "EHLO", "LHLO"})


def _default_hostname() -> str:
    # getfqdn() may block on DNS: do it once per process, not per
    # connection as aiosmtpd did (its issue #178).
    global _fqdn
    if _fqdn is None:
        _fqdn = socket.getfqdn()
    return _fqdn


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


# -- option validation, apart from the session's state ----------------------


def _check_tls_context(tls_context: Optional[ssl.SSLContext]) -> None:
    if not tls_context:
        return
    if tls_context.verify_mode not in {ssl.CERT_NONE, ssl.CERT_OPTIONAL}:
        log.warning(
            "tls_context.verify_mode not in {CERT_NONE, CERT_OPTIONAL}; "
            "this might cause client connection problems"
        )
    elif tls_context.check_hostname:
        log.warning("tls_context.check_hostname == True; this might cause client connection problems")


def _checked_proxy_timeout(timeout: Optional[Union[int, float]]) -> Optional[Union[int, float]]:
    if timeout is not None:
        if timeout <= 0:
            raise ValueError("proxy_protocol_timeout must be > 0")
        if timeout < 3.0:
            log.warning("proxy_protocol_timeout < 3.0")
    return timeout


def _call_limits(limit: Union[int, Dict[str, int], None]) -> Tuple[bool, int, Dict[str, int]]:
    """``command_call_limit`` as (enforced, default budget, per-verb budgets)."""
    if limit is None:
        return False, CALL_LIMIT_DEFAULT, {}
    if isinstance(limit, int):
        return True, limit, {}
    if isinstance(limit, dict):
        if not all(isinstance(v, int) for v in limit.values()):
            raise TypeError("All command_call_limit values must be int")
        return True, limit.get("*", CALL_LIMIT_DEFAULT), limit
    raise TypeError("command_call_limit must be int or Dict[str, int]")


def _ehlo_hook_version(hooks: Dict[str, Any]) -> Optional[str]:
    hook = hooks.get("EHLO")
    version = None if hook is None else ehlo_hook_version(hook)
    if version == "old":
        import warnings

        warnings.warn(
            "Use the 5-argument handle_EHLO() hook instead of the 4-argument handle_EHLO() hook; "
            "support for the 4-argument handle_EHLO() hook will be removed in version 2.0",
            DeprecationWarning,
        )
    return version


class SMTPProtocol(ConnectionAdapter):
    """One SMTP connection's session and command loop (no commands)."""

    command_size_limit = 512
    #: Kept for API compatibility; every instance has its own copy (the
    #: class-level dict of aiosmtpd leaked limits across sessions).
    command_size_limits: MutableMapping[str, int] = collections.defaultdict(lambda: SMTPProtocol.command_size_limit)
    #: Most simultaneous connections from one client address (per event
    #: loop, i.e. per Controller or server process); the next gets a 421
    #: and is closed.  0: no limit (aiosmtpd had none).
    connection_limit_per_client = 0
    #: The level of the "peer >> command" record each command line gets
    #: (aiosmtpd: INFO, so a busy server logs every command; DEBUG hides them).
    command_log_level = logging.INFO
    #: Opt-in extensions (``SMTP``'s keywords set them per instance).
    enable_CHUNKING = False
    enable_ENHANCEDSTATUSCODES = False
    #: Commands a client may send before STARTTLS under require_starttls;
    #: a subclass with its own greeting (LMTP's LHLO) extends it.
    allowed_before_starttls: AbstractSet[str] = starttls.ALLOWED_BEFORE_STARTTLS
    #: Peers whose PROXY header is believed (``proxy_trust``): networks or
    #: addresses, as objects or text.  None (aiosmtpd's behaviour) believes
    #: any client; others are refused, logged and disconnected.  With a
    #: list, a handler without ``handle_PROXY`` accepts trusted headers.
    proxy_trusted_networks: Union[None, str, Iterable[NetworkSpec]] = None
    #: Set by ``close_when_idle()``: say 421 once the transaction is over.
    _drain_pending = False

    def _init_protocol(
        self,
        handler: Any,
        loop: Optional[asyncio.AbstractEventLoop],
        timeout: float,
        ident: Optional[str],
        hostname: Optional[str],
        proxy_protocol_timeout: Optional[Union[int, float]],
        command_call_limit: Union[int, Dict[str, int], None],
    ) -> None:
        self.__ident__ = ident or __ident__
        ConnectionAdapter.__init__(self, loop if loop else make_loop(), self.command_size_limit, timeout)
        self.event_handler = handler
        self.command_size_limits = collections.defaultdict(lambda: self.command_size_limit)
        self.hostname = hostname or _default_hostname()
        self._proxy_timeout = _checked_proxy_timeout(proxy_protocol_timeout)
        self.session: Optional[Session] = None
        self.envelope: Optional[Envelope] = None
        self._handler_coroutine: Optional["asyncio.Task[None]"] = None
        # Inline steps (``inline``): the task's context (None: never inline),
        # the loop's state while it is parked, a command waiting inline for
        # input, one the task must finish.
        self._task_context: Optional[contextvars.Context] = None
        self._parked: Optional[_CommandState] = None
        self._suspended: Optional[Coroutine[Any, Any, None]] = None
        self._handed_over: Optional[inline.Continuation] = None
        self._greeting_sent = False
        #: The command being answered ("" before the first).
        self._verb = ""
        self._disconnect_ran = False
        self._counted_as: Optional[str] = None
        self._handle_hooks: Dict[str, Any] = bind_prefixed(handler, "handle_")
        self._ehlo_hook_ver = _ehlo_hook_version(self._handle_hooks)
        self._enforce_call_limit, self._call_limit_default, self._call_limit_base = _call_limits(
            command_call_limit
        )

    def _init_tls(self, tls_context: Optional[ssl.SSLContext], require_starttls: bool) -> None:
        _check_tls_context(tls_context)
        self.tls_context = tls_context
        self.require_starttls = bool(tls_context) and require_starttls
        self._tls_handshake_okay = True
        self._tls_started = False
        self._smtps = False

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
    def _smtp_methods(self) -> Dict[str, Any]:
        """aiosmtpd's verb -> bound ``smtp_*`` method table, made on demand;
        dispatch uses the per-class table of functions instead."""
        return bind_prefixed(self, "smtp_", instance_too=False)

    @property
    def max_command_size_limit(self) -> int:
        limits = self.command_size_limits
        return max(limits.values()) if limits else self.command_size_limit

    @property
    def _tls_active(self) -> bool:
        """TLS is up, by STARTTLS or implicitly (SMTPS)."""
        return self._tls_started or self._smtps

    # -- what the adapter calls ------------------------------------------

    def _connected(self, transport: asyncio.BaseTransport) -> None:
        self._set_rset_state()
        self.session = self._create_session()
        self.session.peer = transport.get_extra_info("peername")
        if transport.get_extra_info("ssl_object") is not None:
            self._smtps = True
            self.session.ssl = ssl_info(transport)
        log.info("Peer: %r", self.session.peer)
        if self.connection_limit_per_client and not self._admitted():
            return
        if self._proxy_timeout is None and type(self).push is SMTPProtocol.push and "CONNECT" not in self._handle_hooks:
            # Greet now rather than from the task's first step: asyncio has
            # already spent two loop passes since accept(), and clients that
            # connect one at a time wait for this line.
            self._queue(self._greeting())
            self._greeting_sent = True
        self._handler_coroutine, self._task_context = inline.start_task(self.loop, self._handle_client())

    def _admitted(self) -> bool:
        """Count this connection against its client address's limit;
        False: over it, refused with a 421 and closed."""
        assert self.session is not None
        peer = self.session.peer
        counts = client_limit.counts_for(self.loop)
        self._counted_as = counts.admit(peer, self.connection_limit_per_client)
        if self._counted_as is None:
            log.warning("%r refused: %d connections from that address", peer, counts.open_from(peer))
            self._queue(AIOSMTPD.too_many_connections.format(host=self.hostname))
            self._close()
            return False
        return True

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
        self.session.ssl = ssl_info(tls_transport)
        hook = self._handle_hooks.get("STARTTLS")
        self._tls_handshake_okay = True if hook is None else bool(hook(self, self.session, self.envelope))

    def _input_ended(self) -> bool:
        assert self.session is not None
        log.info("%r EOF received", self.session.peer)
        # Keep the write side open so commands already received (a
        # pipelined "DATA ... QUIT" before a half-close) still get answers;
        # TLS cannot half-close, and a session whose task is over (cancelled)
        # has no one left to answer.
        task = self._handler_coroutine
        return not self._tls_active and (task is None or not task.done())

    def _lost(self) -> None:
        if self._counted_as is not None:
            client_limit.counts_for(self.loop).release(self._counted_as)
            self._counted_as = None
        if self.session is not None:
            log.info("%r connection lost", self.session.peer)
            self._disconnected()
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()

    def _deadline_passed(self) -> None:
        assert self.session is not None and self.transport is not None
        log.info("%r connection timeout", self.session.peer)
        if not self._greeting_sent:
            self.transport.close()  # a PROXY header that never came: no SMTP at all
            return
        self._queue(AIOSMTPD.timeout.format(host=self.hostname))
        self._close()

    # -- output ------------------------------------------------------------

    def _greeting(self) -> str:
        return f"220 {self.hostname} {self.__ident__}"

    async def _greet(self) -> None:
        await self.push(self._greeting())
        self._greeting_sent = True

    async def push(self, status: Union[str, bytes]) -> None:
        """Send one reply line (``\\r\\n`` is appended)."""
        assert status is not None, "push() needs a status"
        if self.session is not None and log.isEnabledFor(logging.DEBUG):
            log.debug("%r << %r", self.session.peer, status)
        if self.enable_ENHANCEDSTATUSCODES and isinstance(status, str):
            status = self._with_status_code(status)
        self._queue(status)
        await self._drain()
        if replies.closes(status):
            self._close()  # a handler's 421 too (RFC 5321 3.8)

    def _with_status_code(self, status: str) -> str:
        """``status`` with an RFC 2034 code, once EHLO offered them."""
        if self._verb in _NO_ENHANCED_CODES or self.session is None or not self.session.extended_smtp:
            return status
        return enhanced.with_status_code(status, self._verb)

    # -- the connection task -------------------------------------------

    async def _handle_client(self) -> None:
        assert self.session is not None
        log.info("%r handling connection", self.session.peer)
        try:
            if not self._greeting_sent:
                if self._proxy_timeout is not None and not await self._read_proxy_header():
                    return
                if not await self._connect_allowed():
                    return
                await self._greet()
            await self._command_loop()
        except asyncio.CancelledError:
            log.info("%r Connection lost during _handle_client()", self.session.peer)
            raise
        finally:
            self._finish_output()

    async def _connect_allowed(self) -> bool:
        """Ask ``handle_CONNECT(server, session)`` before the greeting: a
        reply it returns goes out instead, and the connection closes; None
        or MISSING proceeds.  A raising hook refuses with a 421."""
        hook = self._handle_hooks.get("CONNECT")
        if hook is None:
            return True
        try:
            status = hook(self, self.session)
            if inspect.isawaitable(status):
                status = await status
        except Exception as error:
            status = "421 " + (await self._exception_status(error))[4:]
        if status is None or status is MISSING:
            return True
        await self.push(status)
        self._close()
        return False

    def _disconnected(self) -> None:
        """Run ``handle_DISCONNECT(server, session)`` once, however the
        session ended (a coroutine hook runs as a task of its own)."""
        hook = self._handle_hooks.get("DISCONNECT")
        if hook is None or self._disconnect_ran:
            return
        self._disconnect_ran = True
        try:
            result = hook(self, self.session)
            if inspect.isawaitable(result):
                self.loop.create_task(_logged(result))
        except Exception:
            log.exception("%r handle_DISCONNECT() failed", self.session.peer if self.session else None)

    async def _read_proxy_header(self) -> bool:
        """Read and vet a PROXY protocol header; False closes the connection."""
        from .proxy_protocol import ProxyData, parse_proxy_header

        assert self.session is not None and self.transport is not None
        if not proxy_allowed(self.proxy_trusted_networks, self.session.peer):
            log.warning("%r PROXY header refused: not a trusted proxy", self.session.peer)
            self.transport.close()
            return False
        self._reset_timeout(self._proxy_timeout)
        parsed = None
        while parsed is None:
            parsed = parse_proxy_header(self._peek_input())
            if parsed is None and not await self._wait_for_input():
                break
        if parsed is None:
            self.transport.close()
            return False
        proxy_data, used = parsed
        self._consume_input(used)
        self.session.proxy_data = proxy_data
        status: Any = False
        if isinstance(proxy_data, ProxyData) and proxy_data.valid:
            status = await self._call_handler_hook("PROXY", proxy_data)
            if status is MISSING and self.proxy_trusted_networks is not None:
                status = True  # the allowlist already decided; no hook needed
        else:
            log.warning("%r invalid PROXY handshake", self.session.peer)
        if status is MISSING or not status:
            log.info("%r rejected by handle_PROXY", self.session.peer)
            self.transport.close()
            return False
        self._reset_timeout()
        return True

    async def _command_loop(self) -> None:
        state = _CommandState(class_functions(type(self), "smtp_"), self._call_budget(), esmtp.JunkBudget(BOGUS_LIMIT))
        next_event = self._event_source()
        # Once closing (QUIT, a limit), commands still buffered must not run.
        while not self._closing():
            event = next_event()
            if event is None:
                if not await self._idle(state):
                    return
                continue
            await self._dispatch(event, state)

    async def _idle(self, state: "_CommandState") -> bool:
        """Wait for input between commands; False at its end.  Meanwhile
        ``data_received`` may run the commands that arrive (``inline``):
        whatever of theirs suspended is finished here."""
        if self._task_context is None:
            return await self._wait_for_input()
        self._parked = state
        cancelled: Optional[asyncio.CancelledError] = None
        more = True
        try:
            more = await self._wait_for_input()
        except asyncio.CancelledError as error:
            cancelled = error
        self._parked = None
        handed, self._handed_over = self._handed_over, None
        suspended, self._suspended = self._suspended, None
        if suspended is not None:
            # Input ended (or the session was cancelled) while a command run
            # inline waited for more: it hears of it here, in the task.
            handed = inline.Continuation(suspended, inline.AWAIT_INPUT)
        if handed is not None:
            if cancelled is not None:
                handed.throw_first(cancelled)
            await handed
        if cancelled is not None:
            raise cancelled
        return more

    def _input_ready(self) -> None:
        state = self._parked
        if state is None:
            self._wake_reader()
            return
        context = self._task_context
        assert context is not None and self._handler_coroutine is not None
        try:
            inline.enter_task(self.loop, self._handler_coroutine)  # type: ignore[misc]
        except RuntimeError:  # fed from inside another task (a test): let ours run
            self._wake_reader()
            return
        try:
            context.run(self._step_inline, state)
        finally:
            inline.leave_task(self.loop, self._handler_coroutine)  # type: ignore[misc]

    def _step_inline(self, state: "_CommandState") -> None:
        """Run the commands that arrived while the task is parked in
        ``_idle``, each until it ends or suspends (``inline``)."""
        next_event = self._event_source()
        self._inline = True
        try:
            coro, self._suspended = self._suspended, None
            while True:
                if coro is None:
                    event = next_event() if not self._closing() else None
                    if event is None:
                        break
                    coro = self._dispatch(event, state)
                try:
                    pending = coro.send(None)
                except StopIteration:
                    coro = None
                    continue
                except Exception as error:  # raised out of the command loop: the task's to raise
                    self._hand_over(inline.Continuation(_raised(error), inline.AWAIT_INPUT))
                    return
                if pending is not inline.AWAIT_INPUT:
                    self._hand_over(inline.Continuation(coro, pending))
                    return
                self._suspended = coro  # resumed by the next data_received
                break
        finally:
            self._inline = False
        if self._closing():
            self._wake_reader()  # the task ends the session

    def _hand_over(self, continuation: inline.Continuation) -> None:
        """Stop stepping inline; the task finishes ``continuation``."""
        self._parked = None
        self._handed_over = continuation
        self._wake_reader()

    async def _dispatch(self, event: Any, state: "_CommandState") -> None:
        """Check and run one command (or answer a line that is too long)."""
        if type(event) is CommandTooLong:
            if self.enable_CHUNKING and chunking.is_bdat(event.prefix):
                await self.push(chunking.SIZE_UNKNOWN)  # its chunk's end is unknown
                self._close()
                return
            await self.push(AIOSMTPD.line_too_long)
            return
        if type(event) is not CommandLine:
            return  # stray data events cannot happen outside DATA
        calls = state.calls
        try:
            verb, arg = self._command(event.line)
            if calls is not None or self.require_starttls or not self._tls_handshake_okay:
                self._pass_gates(verb, calls)  # (free when no gate is set)
            method = state.commands.get(verb)
            if method is None or (verb == "BDAT" and not self.enable_CHUNKING):  # BDAT only with CHUNKING
                self._unrecognized(verb, state.junk)
        except esmtp.Refused as refused:
            if not isinstance(refused, esmtp.Goodbye) and not await self._skip_payload(event.line):
                refused = esmtp.Goodbye(chunking.SIZE_UNKNOWN)
            await self.push(refused.reply)
            if isinstance(refused, esmtp.Goodbye):
                self._close()
            return
        self._reset_timeout()
        self._verb = verb
        try:
            await method(self, arg)
        except asyncio.CancelledError:
            raise
        except ConnectionResetError:
            self._close()
            raise
        except Exception as error:
            await self._reply_to_exception(error)
        if self._drain_pending and not self._in_transaction():
            self._say_closing()

    # -- graceful drain (server shutdown) ----------------------------------

    def close_when_idle(self) -> None:
        """End this session for a shutdown: at once if no transaction is
        open, else as soon as the current one ends (DATA answered, RSET).
        The client hears ``421 <hostname> Service not available, closing
        transmission channel`` (RFC 5321 3.8), then the connection closes."""
        self._drain_pending = True
        if not self._in_transaction():
            self._say_closing()

    def _in_transaction(self) -> bool:
        # MAIL sets mail_from; it stays set through DATA until the reply.
        return self.envelope is not None and bool(self.envelope.mail_from)

    def _say_closing(self) -> None:
        if not self._closing():
            self._queue(replies.closing_for_shutdown(self.hostname))
            self._close()

    async def _skip_payload(self, line: bytes) -> bool:
        """Read past the data a refused command line announced (a BDAT
        chunk, RFC 3030); False when its size is unknown."""
        if not self.enable_CHUNKING:
            return True
        try:
            size = chunking.payload_size(line)
        except chunking.SizeUnknown:
            return False
        return not size or await self._read_chunk(size, True, [])

    # -- the gates, in order: one method each ------------------------------

    def _command(self, line: bytes) -> Command:
        """Split a command line (its syntax, its length); raises Refused."""
        assert self.session is not None
        # aiosmtpd's two records per command, at its levels.
        if log.isEnabledFor(logging.DEBUG):
            sanitized_log(log.debug, "_handle_client readline: %r", line + b"\r\n")
        level = self.command_log_level
        if log.isEnabledFor(level):
            sanitized_log(functools.partial(log.log, level), "%r >> %r", self.session.peer, line)
        try:
            command = split_command(line, self.enable_SMTPUTF8)
        except BadCommand as error:
            raise esmtp.Refused(str(error)) from None
        limit = esmtp.line_limit(
            command.verb, self.session.extended_smtp, self.command_size_limits, self.command_size_limit
        )
        if len(line) > limit:
            raise esmtp.Refused(AIOSMTPD.line_too_long)
        return command

    def _pass_gates(self, verb: str, calls: Optional[Dict[str, int]]) -> None:
        """STARTTLS first, then the per-verb call budget; raises Refused."""
        refusal = starttls.refusal(
            verb,
            refused_by_hook=not self._tls_handshake_okay,
            required=self.require_starttls,
            active=self._tls_active,
            allowed=self.allowed_before_starttls,
        )
        if refusal is not None:
            raise esmtp.Refused(refusal)
        if calls is not None:
            budget = calls[verb]
            if budget < 1:
                assert self.session is not None
                log.warning("%r over limit for %s", self.session.peer, verb)
                raise esmtp.Goodbye(f"421 4.7.0 {printable(verb)} sent too many times")
            calls[verb] = budget - 1

    def _call_budget(self) -> Optional[Dict[str, int]]:
        """Calls left per verb under ``command_call_limit`` (None: no limit)."""
        if not self._enforce_call_limit:
            return None
        return collections.defaultdict(lambda: self._call_limit_default, self._call_limit_base)

    def _unrecognized(self, verb: str, junk: esmtp.JunkBudget) -> NoReturn:
        assert self.session is not None
        log.warning("%r unrecognised: %s", self.session.peer, printable(verb))
        if junk.spend():
            raise esmtp.Goodbye(AIOSMTPD.too_many_unrecognized)
        raise esmtp.Refused(replies.unrecognized(printable(verb)))

    # -- hooks and errors ------------------------------------------------

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

    async def check_helo_needed(self, helo: str = "HELO") -> bool:
        assert self.session is not None
        if not self.session.host_name:
            await self.push(replies.need_greeting(helo))
            return True
        return False


class _CommandState(NamedTuple):
    """What the command loop keeps across commands."""

    commands: Dict[str, Any]
    calls: Optional[Dict[str, int]]
    junk: esmtp.JunkBudget


async def _raised(error: Exception) -> NoReturn:
    raise error


async def _logged(hook_result: Any) -> None:
    """Await a disconnect hook's coroutine; its failure is logged, not lost."""
    try:
        await hook_result
    except Exception:
        log.exception("handle_DISCONNECT() failed")


def ssl_info(transport: asyncio.BaseTransport) -> Dict[str, Any]:
    """The TLS facts aiosmtpd put in ``session.ssl``."""
    return {
        key: transport.get_extra_info(key)
        for key in ("sslcontext", "ssl_object", "peercert", "cipher", "compression")
    }
