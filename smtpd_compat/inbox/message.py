"""One received message as the stores keep it: envelope, raw content, parsed views."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Callable, Iterable, Optional, Tuple, Union

from smtpd_compat.inbox.search import SearchFields
from smtpd_compat.modern.session import PeerType

__all__ = ["HEAD_LIMIT", "MessageGone", "RawLoader", "StoredMessage", "header_section", "header_text", "parse"]

RawLoader = Callable[[], bytes]

#: Most of a header section kept apart for listings (longer ones are cut, bodies never read).
HEAD_LIMIT = 256 * 1024


def header_section(raw: bytes) -> bytes:
    """The header lines of a message, up to the first empty line."""
    # Keep the last header's line end: +2 after CRLF, +1 after a bare LF.
    ends = [
        found + keep
        for found, keep in ((raw.find(b"\r\n\r\n"), 2), (raw.find(b"\n\n"), 1))
        if found >= 0
    ]
    return raw[: min(ends) if ends else len(raw)][:HEAD_LIMIT]


class StoredMessage:
    """One received message.  Immutable; ``message`` is parsed on first use and cached.

    A message listed from an SQLite store reads its ``raw`` content on first
    use; if it was deleted in between, that raises ``MessageGone``.
    """

    __slots__ = (
        "id",
        "received",
        "peer",
        "mail_from",
        "rcpt_tos",
        "mail_options",
        "rcpt_options",
        "size",
        "_raw",
        "_head",
        "_headers",
        "_message",
    )

    id: str
    received: float
    peer: PeerType
    mail_from: str
    rcpt_tos: Tuple[str, ...]
    mail_options: Tuple[str, ...]
    rcpt_options: Tuple[str, ...]
    size: int
    _raw: Union[bytes, RawLoader]
    _head: Optional[bytes]
    _headers: Optional[EmailMessage]
    _message: Optional[EmailMessage]

    def __init__(
        self,
        id: str,
        received: float,
        peer: PeerType,
        mail_from: str,
        rcpt_tos: Iterable[str],
        mail_options: Iterable[str],
        rcpt_options: Iterable[str],
        raw: Union[bytes, RawLoader],
        *,
        size: Optional[int] = None,
        head: Optional[bytes] = None,
    ) -> None:
        if size is None:
            assert isinstance(raw, bytes), "a raw loader needs the size"
            size = len(raw)
        setattr_ = object.__setattr__
        setattr_(self, "id", id)
        setattr_(self, "received", received)
        setattr_(self, "peer", peer)
        setattr_(self, "mail_from", mail_from)
        setattr_(self, "rcpt_tos", tuple(rcpt_tos))
        setattr_(self, "mail_options", tuple(mail_options))
        setattr_(self, "rcpt_options", tuple(rcpt_options))
        setattr_(self, "size", size)
        setattr_(self, "_raw", bytes(raw) if isinstance(raw, (bytearray, memoryview)) else raw)
        setattr_(self, "_head", head)
        setattr_(self, "_headers", None)
        setattr_(self, "_message", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("StoredMessage is immutable")

    def __repr__(self) -> str:
        return "<StoredMessage id={} from={!r} to={!r} size={}>".format(
            self.id, self.mail_from, self.rcpt_tos, self.size
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoredMessage):
            return NotImplemented
        return self.id == other.id and self.size == other.size and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def raw(self) -> bytes:
        """The content as received: after dot-unstuffing, CRLF line ends."""
        if not isinstance(self._raw, bytes):
            object.__setattr__(self, "_raw", self._raw())
            assert isinstance(self._raw, bytes)
        return self._raw

    @property
    def message(self) -> EmailMessage:
        """The whole message (``email.policy.default``); its ``envelope`` attribute is this object.

        Line ends are ``\n`` as in any in-memory message (``get_content()`` of
        a text sent as ``Hello\r\n`` is ``"Hello\n"``); ``raw`` keeps the CRLFs.
        Parsed once and shared by every caller: treat it as read-only.
        """
        if self._message is None:
            parsed = parse(self.raw)
            parsed.envelope = self  # type: ignore[attr-defined]
            object.__setattr__(self, "_message", parsed)
            assert self._message is not None
        return self._message

    @property
    def headers(self) -> EmailMessage:
        """Only the header section, parsed without the body (cheap for large messages)."""
        if self._headers is None:
            if self._message is not None:
                parsed = self._message
            else:
                head = self._head if self._head is not None else header_section(self.raw)
                parsed = parse(head, headersonly=True)
            object.__setattr__(self, "_headers", parsed)
            assert self._headers is not None
        return self._headers

    def header(self, name: str) -> str:
        """One header as text ("" when absent), even when it is too broken to parse."""
        return header_text(self.headers, name)

    @property
    def subject(self) -> str:
        return self.header("Subject")

    @property
    def sender(self) -> str:
        """The From header as shown in the message (not the envelope's MAIL FROM)."""
        return self.header("From")

    @property
    def recipients(self) -> Tuple[str, ...]:
        """The To, Cc and Bcc headers, one entry per header present."""
        return tuple(text for text in map(self.header, ("To", "Cc", "Bcc")) if text)

    @property
    def search_fields(self) -> SearchFields:
        return SearchFields(
            sender=" ".join((self.sender, self.mail_from)).casefold(),
            recipients=" ".join(self.recipients + self.rcpt_tos).casefold(),
            subject=self.subject.casefold(),
        )


def parse(data: bytes, headersonly: bool = False) -> EmailMessage:
    """``data`` as received (CRLF line ends) parsed as ``email`` expects it: with ``\n``."""
    # The parser would keep each "\r" in the text it returns, so bodies and
    # folded headers would differ from what the sender's ``email`` produced.
    parsed = BytesParser(policy=email.policy.default).parsebytes(
        data.replace(b"\r\n", b"\n"), headersonly=headersonly
    )
    assert isinstance(parsed, EmailMessage)
    return parsed


def header_text(message: EmailMessage, name: str) -> str:
    """``message[name]`` as one line of text; the raw value when the header registry chokes."""
    try:
        value = message[name]
    except Exception:  # the header registry has raised on hostile input before
        raw = [v for k, v in message.raw_items() if k.lower() == name.lower()]
        value = raw[0] if raw else None
    if value is None:
        return ""
    return " ".join(str(value).split())


class MessageGone(LookupError):
    """A listed message's content was asked for after the message was deleted."""
