"""The modern SMTP server protocol: aiosmtpd 1.4's ``SMTP`` class.

``SMTP`` is the session protocol (``protocol.SMTPProtocol``, on the I/O
adapter ``connection.ConnectionAdapter``) plus AUTH (``auth.AuthMixin``)
plus the commands below.  Each command applies the engine's rule
(``engine.esmtp``, ``engine.starttls``), calls the handler's hook and
answers in aiosmtpd's words (``engine.replies.AIOSMTPD``).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import ssl
import warnings
from typing import Any, Dict, Iterable, List, MutableMapping, Optional, Tuple, Union

from ..common.session import MISSING, Envelope, Session
from ..engine import chunking, esmtp, replies, sasl, starttls
from ..engine.framing import (
    BARE_NEWLINE_REFUSAL,
    DataChunk,
    DataEnd,
    Unstuffer,
    message_refusal,
    bare_newline_action,
    bare_newline_applied,
    normalize_newlines,
    unstuff,
)
from ..engine.grammar import get_address, parse_params, printable, strip_keyword
from ..engine.replies import AIOSMTPD
from ..engine.starttls import ALLOWED_BEFORE_STARTTLS as ALLOWED_BEFORE_STARTTLS  # aiosmtpd name
from . import __version__
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
from .hooks import syntax
from .protocol import BOGUS_LIMIT as BOGUS_LIMIT
from .protocol import CALL_LIMIT_DEFAULT as CALL_LIMIT_DEFAULT
from .protocol import DATA_SIZE_DEFAULT as DATA_SIZE_DEFAULT
from .protocol import TLSSetupException as TLSSetupException
from .protocol import log
from .protocol import sanitize as sanitize
from .protocol import sanitized_log as sanitized_log
from .protocol import __ident__ as __ident__
from .protocol import make_loop as make_loop
from .session import _Missing as _Missing
from .streams import AiosmtpdStreams

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


class SMTP(AiosmtpdStreams, AuthMixin):
    """One SMTP connection: create one per client (a protocol factory)."""

    #: Longest DATA line, CRLF included (RFC 5321 4.5.3.1.6 plus one dot).
    line_length_limit = 1001
    #: Longest local part of an address (0: no limit).
    local_part_limit = 0
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
    #: Seconds a STARTTLS handshake may take before the connection is
    #: closed (None: asyncio's 60; aiosmtpd had no knob, its #269).
    ssl_handshake_timeout: Optional[float] = None

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
        enable_CHUNKING: bool = False,
        enable_BINARYMIME: bool = False,
        enable_PIPELINING: bool = False,
        enable_ENHANCEDSTATUSCODES: bool = False,
        enable_DSN: bool = False,
    ) -> None:
        self._init_protocol(handler, loop, timeout, ident, hostname, proxy_protocol_timeout, command_call_limit)
        assert data_size_limit is None or isinstance(data_size_limit, int)
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = decode_data
        self._init_extensions(
            enable_CHUNKING, enable_BINARYMIME, enable_PIPELINING, enable_ENHANCEDSTATUSCODES, enable_DSN
        )
        self._init_tls(tls_context, require_starttls)
        self._init_auth(auth_required, auth_require_tls, auth_exclude_mechanism, auth_callback, authenticator)

    def _init_extensions(
        self, chunking_: bool, binarymime: bool, pipelining: bool, enhanced_codes: bool, dsn: bool
    ) -> None:
        """The opt-in extensions (off: EHLO is aiosmtpd's, byte for byte)."""
        self.enable_CHUNKING = chunking_
        self.enable_BINARYMIME = binarymime
        self.enable_PIPELINING = pipelining
        self.enable_ENHANCEDSTATUSCODES = enhanced_codes
        self.enable_DSN = dsn
        esmtp.check_offer(self._offer())
        # The BDAT transaction's chunks, valid while its envelope is current.
        self._chunks: Optional[chunking.ChunkedMessage] = None
        self._chunks_envelope: Optional[Envelope] = None

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
            await self.push(replies.syntax("HELO hostname"))
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
        offer = self._offer()._replace(
            starttls=bool(self.tls_context) and not self._tls_active,
            auth=sorted(self._auth_methods) if not self._auth_require_tls or self._tls_active else None,
        )
        self.command_size_limits["MAIL"] = self.command_size_limit + esmtp.mail_line_extra(offer)
        self._set_command_limit(self.max_command_size_limit)
        return [f"250-{self.hostname}"] + ["250-" + keyword for keyword in esmtp.ehlo_keywords(offer)]

    def _offer(self) -> esmtp.Offer:
        """What this server offers: EHLO keywords, valid MAIL parameters."""
        return esmtp.Offer(
            self.data_size_limit,
            not self._decode_data,
            self.enable_SMTPUTF8,
            pipelining=self.enable_PIPELINING,
            enhancedstatuscodes=self.enable_ENHANCEDSTATUSCODES,
            dsn=self.enable_DSN,
            chunking=self.enable_CHUNKING,
            binarymime=self.enable_BINARYMIME,
        )

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: Optional[str]) -> None:
        if not hostname:
            await self.push(replies.syntax("EHLO hostname"))
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
        await self.push(replies.BYE if status is MISSING else status)
        self._close()

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: Optional[str]) -> None:
        # (aiosmtpd negotiated TLS again inside TLS; RFC 3207 forbids it.)
        refusal = starttls.starttls_refusal(arg, bool(self.tls_context), self._tls_active)
        if refusal is not None:
            await self.push(refusal)
            return
        await self.push(starttls.READY_FOR_TLS)
        # Whatever the client pipelined behind STARTTLS was sent in the
        # clear: it must never run as if it came over TLS (CVE-2024-34083).
        self._discard_input()
        assert self.tls_context is not None
        transport = self.transport
        assert transport is not None
        try:
            tls_transport = await self.loop.start_tls(
                transport,  # type: ignore[arg-type, unused-ignore]  # typeshed differs by version
                self,
                self.tls_context,
                server_side=True,
                ssl_handshake_timeout=self.ssl_handshake_timeout,
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
            await self.push(replies.syntax("VRFY <address>"))
            return
        address, _ = self._getaddr(arg)
        if address is None:
            await self.push(replies.could_not_vrfy(printable(arg)))
            return
        status = await self._call_handler_hook("VRFY", address)
        await self.push(replies.CANNOT_VRFY if status is MISSING else status)

    async def _parse_path(self, keyword: str, arg: Optional[str], syntax_error: str) -> Optional[Tuple[str, List[str]]]:
        """Common MAIL/RCPT argument checks; replies and returns None on error,
        else ``(address, parameter words)`` (as sent: DSN's values keep their
        case; the options handed to hooks are upper-cased, as aiosmtpd's)."""
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
        return address, (rest or "").split()

    def _syntax_error(self, text: str) -> str:
        assert self.session is not None
        return replies.syntax(text, self.session.extended_smtp)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: Optional[str]) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("MAIL"):
            return
        syntax_error = self._syntax_error("MAIL FROM: <address>")
        parsed = await self._parse_path("FROM:", arg, syntax_error)
        if parsed is None:
            return
        address, words = parsed
        mail_options = [word.upper() for word in words]
        assert self.envelope is not None and self.session is not None
        refusal = esmtp.transaction_refusal("MAIL", bool(self.envelope.mail_from), 0)
        if refusal is not None:
            await self.push(refusal)
            return
        params = self._getparams(mail_options)
        if params is None:
            await self.push(syntax_error)
            return
        try:
            parameters = esmtp.mail_parameters(
                params, self._offer(), AIOSMTPD, syntax_error, self._getparams(words) if self.enable_DSN else None
            )
        except esmtp.Refused as refused:
            await self.push(refused.reply)
            return
        self.envelope.smtp_utf8 = parameters.smtputf8
        if parameters.dsn is not None:
            self.envelope.dsn = parameters.dsn
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
        refusal = esmtp.transaction_refusal("RCPT", bool(self.envelope.mail_from), len(self.envelope.rcpt_tos))
        if refusal is not None:
            await self.push(refusal)
            return
        if self.recipient_limit and len(self.envelope.rcpt_tos) >= self.recipient_limit:
            await self.push(replies.TOO_MANY_RECIPIENTS)
            return
        syntax_error = self._syntax_error("RCPT TO: <address>")
        parsed = await self._parse_path("TO:", arg, syntax_error)
        if parsed is None:
            return
        address, words = parsed
        rcpt_options = [word.upper() for word in words]
        params = self._getparams(rcpt_options)
        if params is None:
            await self.push(syntax_error)
            return
        try:
            if self.enable_DSN:
                parameters = esmtp.rcpt_parameters(params, self._offer(), self._getparams(words))
            else:
                parameters = esmtp.rcpt_parameters(params)
        except esmtp.Refused as refused:
            await self.push(refused.reply)
            return
        status = await self._call_handler_hook("RCPT", address, rcpt_options)
        if status is MISSING:
            self.envelope.rcpt_tos.append(address)
            self.envelope.rcpt_options.extend(rcpt_options)
            status = "250 OK"
        if parameters.dsn is not None and address in self.envelope.rcpt_tos:
            vars(self.envelope).setdefault("rcpt_dsn", {})[address] = parameters.dsn
        log.info("%r recip: %s", self.session.peer, address)
        await self.push(status)

    @syntax("RSET")
    async def smtp_RSET(self, arg: Optional[str]) -> None:
        if arg:
            await self.push(replies.syntax("RSET"))
            return
        self._set_rset_state()
        if hasattr(self, "rset_hook"):
            warnings.warn("Use handler.handle_RSET() instead of .rset_hook()", DeprecationWarning)
            await getattr(self, "rset_hook")()
        status = await self._call_handler_hook("RSET")
        await self.push("250 OK" if status is MISSING else status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: Optional[str]) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None and self.session is not None
        refusal = esmtp.transaction_refusal("DATA", bool(self.envelope.mail_from), len(self.envelope.rcpt_tos))
        if refusal is None:
            refusal = chunking.data_refusal(self._chunked_message(), "BODY=BINARYMIME" in self.envelope.mail_options)
        if refusal is not None:
            await self.push(refusal)
            return
        if arg:
            await self.push(replies.syntax("DATA"))
            return
        await self.push(replies.START_DATA)
        envelope = self.envelope
        if "DATA_CHUNK" in self._handle_hooks:
            await self._stream_data(envelope)
            return
        chunks, end = await self._read_message(self.data_size_limit, self.line_length_limit)
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
        await self._accept_message(envelope, original_content)

    async def _accept_message(self, envelope: Envelope, original_content: Optional[bytes]) -> None:
        """Decode a received message (after DATA or the last BDAT chunk),
        hand it to the handler and answer.  None: it was streamed to
        ``handle_DATA_CHUNK`` already, and the envelope holds no content."""
        assert self.envelope is not None
        if original_content is not None:
            content = self._decoded(original_content)
            if content is None:
                # aiosmtpd kept the envelope here, so the next MAIL got
                # "503 nested MAIL"; a failed transaction is over.
                self._set_post_data_state()
                await self._push_data_reply(envelope, AIOSMTPD.not_ascii)
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

    @syntax("BDAT <size> [LAST]", when="enable_CHUNKING")
    async def smtp_BDAT(self, arg: Optional[str]) -> None:
        """A chunk of the message (RFC 3030); the last one delivers it as
        DATA would.  Its data is read whatever the reply (``chunking``)."""
        assert self.envelope is not None and self.session is not None
        envelope = self.envelope
        try:
            plan = chunking.plan_chunk(
                arg,
                refusal=self._bdat_refusal(),
                has_sender=bool(envelope.mail_from),
                recipients=len(envelope.rcpt_tos),
                message=self._chunked_message(),
                size_limit=self.data_size_limit,
            )
        except chunking.SizeUnknown as error:
            await self.push(error.reply)
            self._close()
            return
        self._chunks, self._chunks_envelope = plan.message, envelope
        streaming = "DATA_CHUNK" in self._handle_hooks
        if streaming and not plan.discard:
            self._start_chunk(plan.size, False)
            if await self._stream(None) is None:
                return
        else:
            parts = [] if plan.message is None else plan.message.parts
            if not await self._read_chunk(plan.size, plan.discard, parts):
                return
        if plan.reply is None:
            assert plan.message is not None
            content = None if streaming else self._bare_newline_applied(plan.message.content())
            if content is None and not streaming:
                self._set_post_data_state()
                await self._push_data_reply(envelope, BARE_NEWLINE_REFUSAL)
                return
            await self._accept_message(envelope, content)
        elif plan.ends_transaction:
            if streaming:
                await self._call_handler_hook("DATA_CHUNK", None)
            self._set_post_data_state()
            await self._push_data_reply(envelope, plan.reply)
        else:
            await self.push(plan.reply)

    async def _stream_data(self, envelope: Envelope) -> None:
        """DATA for a handler with ``handle_DATA_CHUNK``: the message goes to
        it piece by piece, unstuffed, and is never held whole; a refused or
        cut message ends with ``handle_DATA_CHUNK(..., None)``."""
        self._start_message(self.data_size_limit, self.line_length_limit)
        end = await self._stream(Unstuffer(normalize=self.bare_newline == "normalize"))
        if end is None:
            return
        assert type(end) is DataEnd
        refusal = self._data_refusal(end)
        if refusal is not None:
            await self._call_handler_hook("DATA_CHUNK", None)
            self._set_post_data_state()
            await self._push_data_reply(envelope, refusal)
            return
        await self._accept_message(envelope, None)

    async def _stream(self, unstuffer: Optional[Unstuffer]) -> Any:
        """Hand ``DataChunk``s to ``handle_DATA_CHUNK`` until the event that
        ends them (None, after telling the hook, when the connection is gone)."""
        while True:
            event = await self._next_event()
            if type(event) is not DataChunk:
                break
            data = event.data if unstuffer is None else unstuffer.feed(event.data)
            if data:
                await self._call_handler_hook("DATA_CHUNK", data)
        if event is None:
            await self._call_handler_hook("DATA_CHUNK", None)
        return event

    def _bare_newline_applied(self, content: bytes) -> Optional[bytes]:
        """A BDAT message under ``bare_newline`` (None: refused); a
        BINARYMIME body has no lines, so no bare newlines either."""
        assert self.envelope is not None
        if "BODY=BINARYMIME" in self.envelope.mail_options:
            return content
        return bare_newline_applied(self.bare_newline, content)

    def _chunked_message(self) -> Optional[chunking.ChunkedMessage]:
        """The current transaction's BDAT chunks (None: no BDAT yet)."""
        return self._chunks if self._chunks_envelope is self.envelope else None

    def _bdat_refusal(self) -> Optional[str]:
        """Why BDAT may not run yet (greeting, AUTH), in DATA's words."""
        assert self.session is not None
        if not self.session.host_name:
            return replies.need_greeting()
        if self._auth_required and not self.session.authenticated:
            return sasl.AUTH_REQUIRED
        return None

    def _decoded(self, original_content: bytes) -> Union[None, str, bytes]:
        """The message as ``envelope.content``; None when it is not ASCII
        and must be (``decode_data`` without SMTPUTF8)."""
        if not self._decode_data:
            return original_content
        if self.enable_SMTPUTF8:
            return original_content.decode("utf-8", "surrogateescape")
        try:
            return original_content.decode("ascii")
        except UnicodeDecodeError:
            return None

    async def _push_data_reply(self, envelope: Envelope, status: Any) -> None:
        """Answer the end of ``envelope``'s message; LMTP answers once per
        recipient instead."""
        await self.push(status)

    def _data_refusal(self, end: DataEnd) -> Optional[str]:
        """The reply refusing a received message, or None to accept it."""
        if end.line_too_long:
            return "500 Line too long (see RFC5321 4.5.3.1.6)"
        return message_refusal(end, self.bare_newline)

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
        await self.push(replies.EXPN_NOT_IMPLEMENTED)
