"""The legacy face's opt-in ESMTP extensions: CHUNKING (BDAT) and
BINARYMIME, PIPELINING, ENHANCEDSTATUSCODES, DSN.

stdlib smtpd had none of them.  An ``SMTPServer`` turns each on with the
keyword the modern face's ``SMTP`` takes (``enable_CHUNKING=True`` ...); a
server that sets none gets stdlib smtpd's EHLO, byte for byte.  The rules are
the engine's (``engine.chunking``, ``engine.dsn``, ``engine.enhanced``); this
module keeps one connection's BDAT transaction and speaks to its channel
through ``Host`` only.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Protocol

from smtpd_compat.engine import chunking, enhanced, replies, sasl
from smtpd_compat.engine.dsn import MailDsn, RcptDsn
from smtpd_compat.engine.framing import BARE_NEWLINE_REFUSAL, ChunkEnd, bare_newline_applied
from smtpd_compat.legacy.extensions import Extensions, _configured
from smtpd_compat.legacy.streaming import MessageStream

__all__ = ["OPT_IN_EXTENSIONS", "OPTIONS", "Host", "OptIn", "OptInChannel", "offered", "with_status_code"]

#: The opt-in extensions, by EHLO keyword.
OPT_IN_EXTENSIONS = ("CHUNKING", "BINARYMIME", "PIPELINING", "ENHANCEDSTATUSCODES", "DSN")
#: ``SMTPServer`` keyword -> ``engine.esmtp.Offer`` field.
OPTIONS = {"enable_" + name: name.lower() for name in OPT_IN_EXTENSIONS}
# RFC 2034: the greeting and the answers to HELO/EHLO carry no enhanced code.
_NO_ENHANCED_CODES = frozenset({"", "HELO", "EHLO"})


def offered(server: Any) -> Dict[str, Any]:
    """The ``Offer`` fields ``server`` turned on (all False for stdlib's)."""
    return {field: bool(_configured(server, option, False)) for option, field in OPTIONS.items()}


def with_status_code(reply: str, verb: str) -> str:
    """``reply`` as an ENHANCEDSTATUSCODES session sends it, answering ``verb``."""
    return reply if verb in _NO_ENHANCED_CODES else enhanced.with_status_code(reply, verb)


class Host(Protocol):
    """What BDAT uses of its channel (an ``SMTPChannel``)."""

    seen_greeting: str
    bare_newline: str
    mailfrom: Optional[str]
    rcpttos: List[str]
    data_size_limit: Optional[int]

    def push(self, msg: str) -> None: ...

    def close_when_done(self) -> None: ...

    def start_chunk(self, size: int, discard: bool) -> None: ...

    def _extensions(self) -> Optional[Extensions]: ...

    def _set_post_data_state(self) -> None: ...

    def _accept(self, content: Optional[bytes]) -> None: ...

    def _stream(self) -> Optional[MessageStream]: ...


class OptIn:
    """One connection's state for the opt-in extensions: the transaction's
    BDAT chunks (RFC 3030, read by the channel's framer) and DSN values."""

    def __init__(self, channel: Host) -> None:
        self.channel = channel
        #: The command being answered (for enhanced status codes).
        self.verb = ""
        self.new_transaction()
        self._plan: Optional[chunking.ChunkPlan] = None

    def new_transaction(self) -> None:
        self.message: Optional[chunking.ChunkedMessage] = None
        self.mail_dsn: Optional[MailDsn] = None
        self.rcpt_dsn: Dict[str, RcptDsn] = {}

    def process_message_kwargs(self) -> Dict[str, Any]:
        """What ``process_message`` gets besides stdlib's keywords (DSN's
        values, when the server offers DSN)."""
        if self.mail_dsn is None:
            return {}
        return {"dsn": self.mail_dsn, "rcpt_dsn": dict(self.rcpt_dsn)}

    def bdat(self, arg: Optional[str]) -> None:
        """The BDAT command: decide it, then read its chunk."""
        channel = self.channel
        ext = channel._extensions()
        refusal = None
        if not channel.seen_greeting:
            refusal = replies.need_greeting()
        elif ext is not None and ext.settings.auth_required and not ext.authenticated:
            refusal = sasl.AUTH_REQUIRED
        try:
            plan = chunking.plan_chunk(
                arg,
                refusal=refusal,
                has_sender=bool(channel.mailfrom),
                recipients=len(channel.rcpttos),
                message=self.message,
                size_limit=channel.data_size_limit,
            )
        except chunking.SizeUnknown as error:
            channel.push(error.reply)
            channel.close_when_done()
            return
        self.message = plan.message
        self._plan = plan
        channel.start_chunk(plan.size, plan.discard)

    def refuse(self, reply: str, line: Optional[bytes]) -> None:
        """Answer a BDAT ``line`` refused before it ran and read past its
        chunk; None: the line was cut (too long), so the size is unknown and
        the connection closes instead."""
        channel = self.channel
        try:
            if line is None:
                raise chunking.SizeUnknown()
            size = chunking.payload_size(line)
        except chunking.SizeUnknown:
            channel.push(chunking.SIZE_UNKNOWN)
            channel.close_when_done()
            return
        channel.push(reply)
        self._plan = None
        channel.start_chunk(size, True)

    def data(self, data: bytes) -> None:
        plan = self._plan
        assert plan is not None and plan.message is not None  # a discarded chunk makes no data
        stream = self.channel._stream()
        if stream is None:
            plan.message.parts.append(data)
        else:
            stream.piece(data)  # as sent: BDAT has no dots to unstuff

    def ended(self) -> None:
        """The chunk was read: answer it, deliver after the last one."""
        plan, self._plan = self._plan, None
        channel = self.channel
        if plan is None:
            return  # a chunk skipped after its command was refused
        stream = channel._stream()
        if plan.reply is None and stream is not None:
            stream.ended()  # no bare-newline check: the message is gone (as on the modern face)
            channel._accept(None)
        elif plan.reply is None:
            assert plan.message is not None
            content = plan.message.content()
            if "BODY=BINARYMIME" not in getattr(channel, "mail_options", ()):  # a binary body has no lines
                checked = bare_newline_applied(channel.bare_newline, content)
                if checked is None:
                    channel._set_post_data_state()
                    channel.push(BARE_NEWLINE_REFUSAL)
                    return
                content = checked
            # As after DATA, whose last CRLF belongs to the end marker.
            channel._accept(content[:-2] if content.endswith(b"\r\n") else content)
        elif plan.ends_transaction:
            if stream is not None:
                stream.refused()
            channel._set_post_data_state()
            channel.push(plan.reply)
        else:
            channel.push(plan.reply)


class OptInChannel:
    """What ``SMTPChannel`` gains for the opt-in extensions (a mixin before
    ``FramedChat``, whose chunk callbacks it takes)."""

    smtp_server: Any
    push: Callable[[str], None]
    # Made on first use, so subclasses whose __init__ re-implements the
    # stdlib one (without calling it) still work.
    _opt_in: Optional[OptIn] = None
    _opted: Optional[Dict[str, Any]] = None

    def _opted_in(self) -> Dict[str, Any]:
        """The server's opt-in extensions (``OPTIONS``), read once."""
        if self._opted is None:
            self._opted = offered(self.smtp_server)
        return self._opted

    def _opt_in_state(self) -> OptIn:
        if self._opt_in is None:
            self._opt_in = OptIn(self)  # type: ignore[arg-type]  # an SMTPChannel is a Host
        return self._opt_in

    def _refuse(self, reply: str, raw: bytes, whole: bool = True) -> None:
        """Answer a command refused before it ran; a BDAT's chunk is still
        read past (RFC 3030), unless the line was cut (``whole`` False)."""
        if self._opted_in()["chunking"] and chunking.is_bdat(raw):
            self._opt_in_state().refuse(reply, raw if whole else None)
        else:
            self.push(reply)

    def _bdat_refusal(self) -> Optional[str]:
        """The reply refusing DATA in a BDAT transaction or for BINARYMIME."""
        if self._opt_in is None and not self._opted_in()["binarymime"]:
            return None
        binarymime = "BODY=BINARYMIME" in getattr(self, "mail_options", ())
        return chunking.data_refusal(self._opt_in_state().message, binarymime)

    def chunk_data(self, data: bytes) -> None:
        self._opt_in_state().data(data)

    def chunk_ended(self, end: ChunkEnd) -> None:
        self._opt_in_state().ended()
