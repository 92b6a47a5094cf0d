"""``SMTPChannel``: one client connection, with Python 3.11 smtpd's dialog.

Every reply, instance variable and ``smtp_<VERB>`` method behaves as in the
stdlib module; the bytes on the wire are split by the engine (see
``framed``).  Where this class deliberately differs, a comment says so and
MIGRATING.md lists it.  When the server object defines modern hooks
(``handle_MAIL`` ...), they are honoured where noted (see ``bridge``).
"""

from __future__ import annotations

import codecs
import collections
import errno
import socket
from typing import Any, Callable, DefaultDict, Dict, List, Optional, Tuple, Union

from smtpd_compat import asynchat
from smtpd_compat.asyncore import SocketMap
from smtpd_compat.engine.framing import (
    BARE_NEWLINE_REFUSAL,
    DataEnd,
    bare_newline_action,
    message_refusal,
    normalize_newlines,
    unstuff,
)
from smtpd_compat.engine import esmtp, replies
from smtpd_compat.engine.grammar import BadCommand, get_address, parse_params, printable, split_command, strip_keyword
from smtpd_compat.engine.replies import STDLIB
from smtpd_compat.legacy import bridge, opt_in, session_hooks, streaming
from smtpd_compat.common import client_limit
from smtpd_compat.legacy.extensions import Credentials, Extensions, _configured, settings_of
from smtpd_compat.legacy.framed import DATA_TERMINATOR, LINE_TERMINATOR, FramedChat
from smtpd_compat.legacy.names import (
    DATA_SIZE_DEFAULT,
    check_data_options,
    debug,
    debugging,
    install_deprecated_aliases,
    package,
)

__all__ = ["SMTPChannel"]

Text = Union[str, bytes]

_fqdn_by_resolver: Dict[Callable[[], str], str] = {}


def _local_fqdn() -> str:
    # stdlib smtpd called getfqdn() (a DNS lookup, ~0.1 ms and up) for every
    # connection; the answer is cached per resolver function so a test that
    # swaps `smtpd_compat.socket` for a mock still sees the mock's answer.
    getfqdn = package().socket.getfqdn
    name = _fqdn_by_resolver.get(getfqdn)
    if name is None:
        name = _fqdn_by_resolver[getfqdn] = getfqdn()
    return name


def _well_formed(line: bytes) -> bool:
    """False for what stdlib smtpd would have mis-parsed or crashed on:
    a bare CR, LF or NUL, a non-ASCII verb, bytes that are not UTF-8."""
    try:
        split_command(line, utf8=True)
        line.decode("utf-8")
    except (BadCommand, UnicodeDecodeError):
        return False
    return True


class SMTPChannel(opt_in.OptInChannel, FramedChat):
    COMMAND = 0
    DATA = 1

    command_size_limit = 512
    command_size_limits: DefaultDict[str, int] = collections.defaultdict(
        lambda x=command_size_limit: x  # type: ignore[misc]
    )

    #: A bare CR or LF inside message content: "accept" (stdlib's behaviour,
    #: the default), "normalize" (made CRLF before processing) or "reject"
    #: (550, nothing delivered), as the modern face's ``SMTP.bare_newline``.
    bare_newline = "accept"

    #: Unrecognised commands one connection may send; the last of them is
    #: answered "421 Error: too many unrecognized commands" and the
    #: connection closes (Postfix's smtpd_junk_command_limit; stdlib smtpd
    #: answered any number).  0: no limit.
    junk_command_limit = STDLIB.junk_limit

    # Set by smtp_MAIL / smtp_RCPT, as in the stdlib (not before).
    mail_options: List[str]
    rcpt_options: List[str]

    # Created on first use, so subclasses whose __init__ re-implements the
    # stdlib one (without calling it) still work.
    _hooks: Optional[bridge.HookContext] = None
    _utf8: Optional[codecs.IncrementalDecoder] = None
    # TLS and AUTH, when the server turned them on (see extensions).
    _ext: Optional[Extensions] = None
    # Set by close_when_idle(): say 421 once the transaction is over.
    _drain_pending = False
    _ext_read = False
    _junk: Optional[esmtp.JunkBudget] = None
    # handle_DATA_CHUNK's stream, when the server defines it (see streaming).
    _stream_read = False
    _message_stream: Optional[streaming.MessageStream] = None
    # The client key this connection is counted under (connection_limit_per_client).
    _counted_as: Optional[str] = None

    @property
    def max_command_size_limit(self) -> int:
        limits = self.command_size_limits
        return max(limits.values()) if limits else self.command_size_limit

    def __init__(
        self,
        server: Any,
        conn: Any,
        addr: Any,
        data_size_limit: Optional[int] = DATA_SIZE_DEFAULT,
        map: Optional[SocketMap] = None,
        enable_SMTPUTF8: bool = False,
        decode_data: bool = False,
    ) -> None:
        FramedChat.__init__(self, conn, map=map)
        self.smtp_server = server
        self.conn = conn
        self.addr = addr
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = decode_data
        check_data_options(enable_SMTPUTF8, decode_data)
        self._emptystring: Text
        self._linesep: Text
        self._newline: Text
        self._dotsep: Union[str, int]
        if decode_data:
            self._emptystring = ""
            self._linesep = "\r\n"
            self._dotsep = "."
            self._newline = package().NEWLINE
        else:
            self._emptystring = b""
            self._linesep = b"\r\n"
            self._dotsep = ord(b".")
            self._newline = b"\n"
        self._set_rset_state()
        self.seen_greeting = ""
        self.extended_smtp = False
        # Per connection: stdlib smtpd shared (and cleared) one class-level
        # dict across all connections, so one client's EHLO changed the
        # limits of the others.
        self.command_size_limits = self._fresh_command_size_limits()
        self.fqdn = _local_fqdn()
        try:
            self.peer = conn.getpeername()
        except OSError as err:
            # the client may already be gone
            self.close()
            if err.errno != errno.ENOTCONN:
                raise
            return
        _disable_nagle(conn)
        debug("Peer:", repr(self.peer))
        ext = self._extensions()
        if ext is not None:
            ext.connected()
        if not self._admitted():
            return
        self._disconnect_ran = False
        refusal = session_hooks.connect_refusal(self)
        if refusal is not None:
            self.push(refusal)
            self.close_when_done()
            return
        self.push("220 %s %s" % (self.fqdn, package().__version__))

    def _admitted(self) -> bool:
        """Count this connection against ``connection_limit_per_client`` (the
        server's, as on the modern face); False: over it, refused with a 421
        and closing."""
        limit = _configured(self.smtp_server, "connection_limit_per_client", 0)
        if not limit:
            return True
        self._counted_as = client_limit.counts_for(self.smtp_server).admit(self.peer, limit)
        if self._counted_as is None:
            debug("Refused:", repr(self.peer), "too many connections")
            self.push(STDLIB.too_many_connections)
            return False
        return True

    def _fresh_command_size_limits(self) -> DefaultDict[str, int]:
        return collections.defaultdict(type(self).command_size_limits.default_factory)

    def _extensions(self) -> Optional[Extensions]:
        """This connection's TLS/AUTH state; None when the server offers neither.

        Read on first use, so that subclasses whose __init__ re-implements
        the stdlib one still enforce what the server requires.
        """
        if not self._ext_read:
            self._ext_read = True
            settings = settings_of(self.smtp_server)
            if settings is not None:
                self._ext = Extensions(self, settings)
        return self._ext

    def _start_over(self) -> None:
        """Forget the greeting and the transaction (after STARTTLS, RFC 3207 4.2)."""
        self.seen_greeting = ""
        self.extended_smtp = False
        self.command_size_limits = self._fresh_command_size_limits()
        self._set_rset_state()
        if self._hooks is not None:
            self._hooks.new_session()

    def handle_tls_established(self) -> None:
        ext = self._extensions()
        assert ext is not None  # only extensions start TLS
        if ext.tls_established():
            self._start_over()
            hook = self._hook("STARTTLS")
            if hook is not None:
                ext.starttls_refused = not self._hook_context().call(hook)

    def handle_tls_failed(self, error: Exception) -> None:
        debug("TLS failed:", repr(self.peer), error)
        self.close()

    def _set_post_data_state(self) -> None:
        """Reset state variables to their post-DATA state."""
        self.smtp_state = self.COMMAND
        self.mailfrom: Optional[str] = None
        self.rcpttos: List[str] = []
        self.require_SMTPUTF8 = False
        self.num_bytes = 0
        self.set_terminator(LINE_TERMINATOR)
        if self._hooks is not None:
            self._hooks.new_transaction()
        if self._opt_in is not None:
            self._opt_in.new_transaction()
        if self._message_stream is not None:
            self._message_stream.new_message()

    def _set_rset_state(self) -> None:
        """Reset all state variables except the greeting."""
        self._set_post_data_state()
        self.received_data: Text = ""
        self.received_lines: List[Any] = []

    # -- what the framer needs ---------------------------------------------------------

    def framer_command_limit(self) -> int:
        if self.smtp_state == self.COMMAND:
            return self.max_command_size_limit
        # smtpd set no limit outside COMMAND (a subclass's own dialog state,
        # e.g. an AUTH exchange); the message size limit still bounds memory.
        return max(self.max_command_size_limit, self.data_size_limit or DATA_SIZE_DEFAULT)

    def framer_data_limit(self) -> Optional[int]:
        # +2: the framer counts the last line's CRLF, smtpd's num_bytes did not.
        return self.data_size_limit + 2 if self.data_size_limit else None

    # -- async_chat protocol -----------------------------------------------------------

    def push(self, msg: str) -> None:  # type: ignore[override]  # smtpd pushes str replies
        if self.extended_smtp and self._opt_in is not None and self._opted_in()["enhancedstatuscodes"]:
            msg = opt_in.with_status_code(msg, self._opt_in.verb)
        asynchat.async_chat.push(
            self, bytes(msg + "\r\n", "utf-8" if self.require_SMTPUTF8 else "ascii")
        )
        if replies.closes(msg):
            self.close_when_done()  # a handler's 421 too (RFC 5321 3.8)

    def collect_incoming_data(self, data: bytes) -> None:
        limit = None
        if self.smtp_state == self.COMMAND:
            limit = self.max_command_size_limit
        elif self.smtp_state == self.DATA:
            limit = self.data_size_limit
        if limit and self.num_bytes > limit:
            return
        elif limit:
            self.num_bytes += len(data)
        if self._decode_data:
            self.received_lines.append(self._utf8_decoder().decode(data))
        else:
            self.received_lines.append(data)

    def _utf8_decoder(self) -> codecs.IncrementalDecoder:
        # Incremental: a character may straddle two received chunks.
        if self._utf8 is None:
            self._utf8 = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        return self._utf8

    def _stream(self) -> Optional[streaming.MessageStream]:
        """The stream to ``handle_DATA_CHUNK``; None: the server has no such hook."""
        if not self._stream_read:
            self._stream_read = True
            self._message_stream = streaming.stream_of(self)
        return self._message_stream

    def _collect_content(self, data: bytes) -> None:
        stream = self._stream()
        if stream is None or self.smtp_state != self.DATA:
            FramedChat._collect_content(self, data)
        else:
            stream.data(data)  # never into received_lines

    def data_ended(self, end: DataEnd) -> None:
        stream = self._stream()
        if stream is not None and self.smtp_state == self.DATA:
            refusal = message_refusal(end, self.bare_newline)
            if refusal is not None:
                stream.refused()
                self._set_post_data_state()
                self.push(refusal)
                return
            stream.ended()
            self._accept(None)
            return
        action = bare_newline_action(self.bare_newline, end)
        if action == "reject":
            self.received_lines = []
            self._set_post_data_state()
            self.push(BARE_NEWLINE_REFUSAL)
            return
        if action == "normalize":
            content = self._emptystring.join(self.received_lines)
            if isinstance(content, str):
                raw = content.encode("utf-8", "surrogateescape")
                self.received_lines = [normalize_newlines(raw).decode("utf-8", "surrogateescape")]
            else:
                self.received_lines = [normalize_newlines(content)]
        self.found_terminator()

    def found_terminator(self) -> None:
        self._line_or_message()
        if self._drain_pending and not self._in_transaction():
            self._say_closing()

    def close_when_idle(self) -> None:
        """End this session for a shutdown: at once if no transaction is open,
        else once it ends (the modern face's ``SMTP.close_when_idle``)."""
        self._drain_pending = True
        if not self._in_transaction():
            self._say_closing()

    def _in_transaction(self) -> bool:
        return self.smtp_state == self.DATA or bool(self.mailfrom)

    def _say_closing(self) -> None:
        if self.connected and not self._stop_reading:
            self.push(replies.closing_for_shutdown(self.fqdn))
            self.close_when_done()

    def _line_or_message(self) -> None:
        if self._decode_data:
            cut = self._utf8_decoder().decode(b"", True)  # a line cut inside a character
            if cut:
                self.received_lines.append(cut)
        line = self._emptystring.join(self.received_lines)
        if debugging():
            debug("Data:", repr(line))
        self.received_lines = []
        if self.smtp_state == self.COMMAND:
            self._command(line)
            return
        if self.smtp_state != self.DATA:
            self.push("451 Internal confusion")
            self.num_bytes = 0
            return
        if self.data_size_limit and self.num_bytes > self.data_size_limit:
            self.push(replies.TOO_MUCH_DATA)
            self.num_bytes = 0
            # stdlib smtpd stayed in DATA state here and took the client's
            # next commands for message text; the transaction ends instead.
            self._set_post_data_state()
            return
        raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogateescape")
        self._accept(unstuff(raw))

    def _accept(self, unstuffed: Optional[bytes]) -> None:
        """Deliver a received message (after DATA or the last BDAT chunk);
        None: it went to ``handle_DATA_CHUNK`` already."""
        try:
            self.received_data = "" if unstuffed is None else bridge.legacy_data(unstuffed, self._decode_data)
        except UnicodeDecodeError:
            self.push(bridge.NOT_UTF8_REPLY)
            self._set_post_data_state()
            return
        try:
            status = self._deliver(unstuffed)
        except Exception:
            # stdlib smtpd closed the connection without a word; the client
            # gets a temporary failure first.  The exception goes on to
            # asyncore's handle_error, which logs it and closes, as before.
            self.push("451 Requested action aborted: local error in processing")
            self._set_post_data_state()
            raise
        self._set_post_data_state()
        if not status:
            self.push("250 OK")
        else:
            self.push(status)

    def _command(self, line: Text) -> None:
        sz, self.num_bytes = self.num_bytes, 0
        ext = self._extensions()
        if ext is not None and ext.in_exchange:  # the line answers an AUTH challenge
            self._authenticate(ext, ext.answer(line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line))
            return
        if not line:
            self.push(replies.BAD_SYNTAX)
            return
        raw = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
        # surrogateescape: an over-long line may end inside a character.
        text = raw.decode("utf-8", "surrogateescape")
        i = text.find(" ")
        if i < 0:
            command = text.upper()
            arg = None
        else:
            command = text[:i].upper()
            arg = text[i + 1:].strip()
        opted = self._opted_in()
        if opted["enhancedstatuscodes"]:
            self._opt_in_state().verb = command
        if sz > esmtp.line_limit(command, self.extended_smtp, self.command_size_limits, self.command_size_limit):
            self._refuse(STDLIB.line_too_long, raw, whole=False)
            return
        if not _well_formed(raw):
            self._refuse(replies.BAD_SYNTAX, raw)
            return
        method = getattr(self, "smtp_" + command, None)
        if method is None and command == "BDAT" and opted["chunking"]:
            method = self._opt_in_state().bdat
        if ext is not None:
            refusal = ext.refusal(command)
            if refusal is not None:
                self._refuse(refusal, raw)
                return
            if not method:
                extension = ext.command(command)
                if extension is not None:
                    self._authenticate(ext, extension(arg))
                    return
        if not method:
            self._unrecognized(command)
            return
        method(arg)

    def _unrecognized(self, command: str) -> None:
        if self._junk is None:
            self._junk = esmtp.JunkBudget(self.junk_command_limit)
        if self._junk.spend():
            self.push(STDLIB.too_many_unrecognized)
            self.close_when_done()
            return
        self.push(replies.unrecognized(printable(command)))

    def _authenticate(self, ext: Extensions, credentials: Optional[Credentials]) -> None:
        """Hand a completed AUTH exchange to the server's authenticator,
        called as the modern face calls it (server, session, envelope,
        mechanism, auth_data), with the bridge's views."""
        if credentials is None:
            return  # the exchange goes on, or ended with a reply
        authenticator = ext.settings.authenticator
        assert authenticator is not None  # AUTH is offered only with one
        ext.finish_auth(self._hook_context().call(authenticator, *credentials))

    def _deliver(self, unstuffed: Optional[bytes]) -> Optional[str]:
        hook = self._hook("DATA")
        if hook is not None:
            if unstuffed is not None:
                self._hook_context().set_content(unstuffed, self._decode_data)
            return self._run_hook(hook)
        kwargs: Dict[str, Any] = {}
        if not self._decode_data:
            kwargs = {"mail_options": self.mail_options, "rcpt_options": self.rcpt_options}
        ext = self._extensions()
        if ext is not None and ext.authenticated:
            kwargs["auth_data"] = ext.auth_data
        if self._opt_in is not None:
            kwargs.update(self._opt_in.process_message_kwargs())
        data = None if unstuffed is None else self.received_data
        status: Optional[str] = self.smtp_server.process_message(self.peer, self.mailfrom, self.rcpttos, data, **kwargs)
        return status

    # -- modern hooks (see bridge) ------------------------------------------------------

    def _hook(self, verb: str) -> Optional[Callable[..., Any]]:
        return bridge.find_hook(self.smtp_server, verb)

    def _hook_context(self) -> bridge.HookContext:
        if self._hooks is None:
            self._hooks = bridge.HookContext(self)
        return self._hooks

    def _run_hook(self, hook: Callable[..., Any], *args: Any) -> str:
        return self._hook_context().status(hook, *args)

    def _auth_needed(self) -> bool:
        """True after refusing the command: the server requires AUTH first."""
        ext = self._extensions()
        return ext is not None and ext.auth_needed()

    # -- SMTP and ESMTP commands -------------------------------------------------------

    def smtp_HELO(self, arg: Optional[str]) -> None:
        if not arg:
            self.push(replies.syntax("HELO hostname"))
            return
        # stdlib smtpd refuses a second greeting (bpo-21783)
        if self.seen_greeting:
            self.push("503 Duplicate HELO/EHLO")
            return
        self._set_rset_state()
        hook = self._hook("HELO")
        if hook is not None:
            self.push(self._run_hook(hook, arg))
            return
        self.seen_greeting = arg
        self.push("250 %s" % self.fqdn)

    def smtp_EHLO(self, arg: Optional[str]) -> None:
        if not arg:
            self.push(replies.syntax("EHLO hostname"))
            return
        if self.seen_greeting:
            self.push("503 Duplicate HELO/EHLO")
            return
        self._set_rset_state()
        self.extended_smtp = True
        offer = self._offer()
        self.command_size_limits["MAIL"] += esmtp.mail_line_extra(offer)
        lines = ["250-%s" % self.fqdn] + ["250-" + keyword for keyword in esmtp.ehlo_keywords(offer)]
        hook = self._hook("EHLO")
        if hook is None:
            self.seen_greeting = arg
            lines.append("250 HELP")
        elif bridge.ehlo_hook_is_old(hook):  # our lines first, then its reply
            for line in lines:
                self.push(line)
            lines = [self._run_hook(hook, arg)]
        else:
            lines = self._hook_context().lines(hook, arg, lines + ["250 HELP"])
        for line in lines:
            self.push(line)

    def _offer(self) -> esmtp.Offer:
        """What this session offers: EHLO keywords, valid MAIL parameters."""
        offer = esmtp.Offer(self.data_size_limit, not self._decode_data, self.enable_SMTPUTF8)._replace(
            **self._opted_in()
        )
        ext = self._extensions()
        if ext is None:
            return offer
        return offer._replace(starttls=ext.offered_starttls(), auth=ext.offered_auth())

    def smtp_NOOP(self, arg: Optional[str]) -> None:
        if arg:
            self.push("501 Syntax: NOOP")
            return
        hook = self._hook("NOOP")
        self.push("250 OK" if hook is None else self._run_hook(hook, arg))

    def smtp_QUIT(self, arg: Optional[str]) -> None:
        # the argument is ignored
        hook = self._hook("QUIT")
        self.push(replies.BYE if hook is None else self._run_hook(hook))
        self.close_when_done()

    def _strip_command_keyword(self, keyword: str, arg: str) -> str:
        stripped = strip_keyword(keyword, arg)
        return "" if stripped is None else stripped

    def _getaddr(self, arg: str) -> Tuple[Optional[str], Optional[str]]:
        return get_address(arg)

    def _getparams(self, params: List[str]) -> Optional[Dict[str, Union[str, bool]]]:
        # Syntax per RFC 1869: KEY[=VALUE]; None when any is malformed.
        return parse_params(params)

    def smtp_HELP(self, arg: Optional[str]) -> None:
        if self._auth_needed():
            return
        supported = "Supported commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY"
        if not arg:
            self.push("250 " + supported)
            return
        topic = arg.upper()
        extended = " [SP <mail-parameters>]" if self.extended_smtp else ""
        syntaxes = {
            "EHLO": "EHLO hostname",
            "HELO": "HELO hostname",
            "MAIL": "MAIL FROM: <address>" + extended,
            "RCPT": "RCPT TO: <address>" + extended,
            "DATA": "DATA",
            "RSET": "RSET",
            "NOOP": "NOOP",
            "QUIT": "QUIT",
            "VRFY": "VRFY <address>",
        }
        if topic in syntaxes:
            self.push("250 Syntax: " + syntaxes[topic])
        else:
            self.push("501 " + supported)

    def smtp_VRFY(self, arg: Optional[str]) -> None:
        if self._auth_needed():
            return
        if not arg:
            self.push(replies.syntax("VRFY <address>"))
            return
        address, params = self._getaddr(arg)
        if not address:
            self.push(replies.could_not_vrfy(printable(arg)))
            return
        hook = self._hook("VRFY")
        if hook is not None:
            self.push(self._run_hook(hook, address))
            return
        self.push(replies.CANNOT_VRFY)

    def _syntax_error(self, usage: str) -> str:
        return replies.syntax(usage, self.extended_smtp)

    def _path_argument(self, keyword: str, arg: Optional[str], syntaxerr: str) -> Optional[Tuple[str, str]]:
        """stdlib's checks shared by MAIL and RCPT: ``(address, rest)``, or
        None after answering ``syntaxerr``."""
        if arg is not None:
            address, rest = self._getaddr(self._strip_command_keyword(keyword, arg))
            if address and (self.extended_smtp or not rest):
                return address, rest or ""
        self.push(syntaxerr)
        return None

    def smtp_MAIL(self, arg: Optional[str]) -> None:
        if not self.seen_greeting:
            self.push(replies.need_greeting())
            return
        if self._auth_needed():
            return
        debug("===> MAIL", arg)
        syntaxerr = self._syntax_error("MAIL FROM: <address>")
        path = self._path_argument("FROM:", arg, syntaxerr)
        if path is None:
            return
        address, rest = path
        refusal = esmtp.transaction_refusal("MAIL", bool(self.mailfrom), 0)
        if refusal is not None:
            self.push(refusal)
            return
        self.mail_options = rest.upper().split()
        params = self._getparams(self.mail_options)
        if params is None:
            self.push(syntaxerr)
            return
        try:
            sent = self._getparams(rest.split()) if self._opted_in()["dsn"] else None  # ENVID keeps its case
            parsed = esmtp.mail_parameters(params, self._offer(), STDLIB, syntaxerr, sent)
        except esmtp.Refused as refused:
            self.push(refused.reply)
            return
        if parsed.smtputf8:
            self.require_SMTPUTF8 = True
        if parsed.dsn is not None:
            self._opt_in_state().mail_dsn = parsed.dsn
        hook = self._hook("MAIL")
        if hook is not None:
            status = self._run_hook(hook, address, self.mail_options)
            debug("sender:", self.mailfrom)
            self.push(status)
            return
        self.mailfrom = address
        debug("sender:", self.mailfrom)
        self.push("250 OK")

    def smtp_RCPT(self, arg: Optional[str]) -> None:
        if not self.seen_greeting:
            self.push(replies.need_greeting())
            return
        if self._auth_needed():
            return
        debug("===> RCPT", arg)
        refusal = esmtp.transaction_refusal("RCPT", bool(self.mailfrom), len(self.rcpttos))
        if refusal is not None:
            self.push(refusal)
            return
        syntaxerr = self._syntax_error("RCPT TO: <address>")
        path = self._path_argument("TO:", arg, syntaxerr)
        if path is None:
            return
        address, rest = path
        self.rcpt_options = rest.upper().split()
        params = self._getparams(self.rcpt_options)
        if params is None:
            self.push(syntaxerr)
            return
        try:
            sent = self._getparams(rest.split()) if self._opted_in()["dsn"] else None  # ORCPT keeps its case
            dsn = esmtp.rcpt_parameters(params, None if sent is None else self._offer(), sent).dsn
        except esmtp.Refused as refused:
            self.push(refused.reply)
            return
        hook = self._hook("RCPT")
        if hook is not None:
            status = self._run_hook(hook, address, self.rcpt_options)
            debug("recips:", self.rcpttos)
            self.push(status)
            return
        self.rcpttos.append(address)
        if dsn is not None:
            self._opt_in_state().rcpt_dsn[address] = dsn
        debug("recips:", self.rcpttos)
        self.push("250 OK")

    def smtp_RSET(self, arg: Optional[str]) -> None:
        if arg:
            self.push(replies.syntax("RSET"))
            return
        self._set_rset_state()
        hook = self._hook("RSET")
        self.push("250 OK" if hook is None else self._run_hook(hook))

    def smtp_DATA(self, arg: Optional[str]) -> None:
        if not self.seen_greeting:
            self.push(replies.need_greeting())
            return
        if self._auth_needed():
            return
        refusal = esmtp.transaction_refusal("DATA", bool(self.mailfrom), len(self.rcpttos)) or self._bdat_refusal()
        if refusal is not None:
            self.push(refusal)
            return
        if arg:
            self.push(replies.syntax("DATA"))
            return
        self.smtp_state = self.DATA
        self.set_terminator(DATA_TERMINATOR)
        self.push(replies.START_DATA)

    # Commands that have not been implemented
    def smtp_EXPN(self, arg: Optional[str]) -> None:
        self.push(replies.EXPN_NOT_IMPLEMENTED)

    # -- idleness (not in stdlib smtpd, which waited forever) ---------------------------

    def handle_idle_timeout(self) -> None:
        self.push(STDLIB.timeout)
        self.close_when_done()

    def close(self) -> None:
        if self._counted_as is not None:
            client_limit.counts_for(self.smtp_server).release(self._counted_as)
            self._counted_as = None
        if self._message_stream is not None:
            self._message_stream.cut()
        session_hooks.disconnected(self)
        FramedChat.close(self)
        if self._hooks is not None:
            self._hooks.close()  # the channel's own event loop, if a hook made one


def _disable_nagle(conn: Any) -> None:
    # smtpd pushes a multi-line reply line by line; with Nagle's algorithm
    # each later line waits for the client's delayed ACK (~40 ms per EHLO).
    try:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass  # not TCP (a UNIX socket, a test double)


install_deprecated_aliases(SMTPChannel)
