"""Sans-I/O SMTP framing: received bytes in, command lines and message data out.

The one wire engine of both faces.  It knows nothing of sockets or event
loops: an adapter ``feed()``s whatever it received and pulls events with
``next_event()``.  Parsing is lazy on purpose: the caller handles each
command before the next one is parsed, so a mode switch (``start_data``
after a 354, ``discard_buffered`` after a 220 to STARTTLS) takes effect at
the exact byte where the client's stream changes meaning.

Safety rules enforced here, whatever the face:

* only ``<CR><LF>`` ends a command line, and only ``<CR><LF>.<CR><LF>`` ends
  message data (bare CR or LF never do: SMTP smuggling, CVE-2024-27305);
* memory is bounded: an over-long command line or over-size message is
  discarded as it arrives, keeping at most one received chunk plus a short
  tail, even when the client never sends a newline.

BDAT chunks (RFC 3030) are counted, not scanned: after ``start_chunk(size)``
the next ``size`` bytes are message data whatever they hold (no dot-stuffing,
no end marker), handed out as they arrive and closed by a ``ChunkEnd``.  A
refused chunk is still read to its end and dropped, so its payload is never
parsed as commands.

DATA is handled in bulk: each received chunk is scanned for the terminator
with ``bytes.find`` and checked for line length and bare newlines with
C-level ``split``/``count`` calls; there is no Python loop per line.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional, Union

from smtpd_compat.engine.replies import TOO_MUCH_DATA

__all__ = [
    "BARE_NEWLINE_POLICIES",
    "BARE_NEWLINE_REFUSAL",
    "ChunkEnd",
    "Unstuffer",
    "CommandLine",
    "CommandTooLong",
    "DataChunk",
    "DataEnd",
    "Event",
    "Framer",
    "bare_newline_action",
    "bare_newline_applied",
    "normalize_newlines",
    "unstuff",
]

CRLF = b"\r\n"
END_OF_DATA = b"\r\n.\r\n"
# A terminator that started in the unscanned tail can be at most this long.
_TAIL = len(END_OF_DATA) - 1


class CommandLine(NamedTuple):
    """One command line, without its CRLF (bare CR/LF inside are kept)."""

    line: bytes


class CommandTooLong(NamedTuple):
    """A command line longer than ``Framer.command_limit`` ended.

    Its bytes were discarded as they came; ``prefix`` holds the first
    ``command_limit + 1`` of them, enough to name the verb in a reply.
    """

    prefix: bytes


class DataChunk(NamedTuple):
    """Raw message bytes, in arrival order.

    After DATA they are still dot-stuffed: the chunks of one message join to
    what the client sent between the DATA command's CRLF and the final
    ``.<CR><LF>``, every line keeping its CRLF.  Inside a BDAT chunk they are
    the message's own bytes.
    """

    data: bytes


class DataEnd(NamedTuple):
    """The end-of-data marker arrived; the framer is in command mode again."""

    size: int
    too_large: bool
    line_too_long: bool
    bare_newline: bool


class ChunkEnd(NamedTuple):
    """The last byte of a BDAT chunk arrived; the framer is in command mode
    again.  ``size`` bytes were read; none was handed out if ``discarded``."""

    size: int
    discarded: bool


Event = Union[CommandLine, CommandTooLong, DataChunk, DataEnd, ChunkEnd]


#: What a server may do with a bare CR or LF inside message content (like
#: Postfix's smtpd_forbid_bare_newline): keep it as sent, turn it into
#: CRLF, or refuse the message.
BARE_NEWLINE_POLICIES = ("accept", "normalize", "reject")
#: The reply refusing a message under the "reject" policy (both faces).
BARE_NEWLINE_REFUSAL = "550 5.5.2 Error: bare <CR> or <LF> received"
_ANY_NEWLINE = re.compile(rb"\r\n|\r|\n")


def bare_newline_action(policy: str, end: DataEnd) -> str:
    """What ``policy`` makes of the message ``end`` closes: "accept" when it
    holds no bare CR/LF (or is refused for its size anyway), else ``policy``."""
    if policy not in BARE_NEWLINE_POLICIES:
        raise ValueError(f"bare_newline must be one of {BARE_NEWLINE_POLICIES}")
    if end.bare_newline and not end.too_large:
        return policy
    return "accept"


def message_refusal(end: DataEnd, policy: str) -> Optional[str]:
    """The reply refusing the message ``end`` closes for its size or, under
    ``policy``, its bare newlines; None: it may be delivered."""
    if end.too_large:
        return TOO_MUCH_DATA
    if bare_newline_action(policy, end) == "reject":
        return BARE_NEWLINE_REFUSAL
    return None


def bare_newline_applied(policy: str, content: bytes) -> Optional[bytes]:
    """A whole message received without ``DataEnd`` flags (BDAT) under
    ``policy``: ``content``, normalized under "normalize", or None when
    "reject" refuses it (``BARE_NEWLINE_REFUSAL``)."""
    if policy not in BARE_NEWLINE_POLICIES:
        raise ValueError(f"bare_newline must be one of {BARE_NEWLINE_POLICIES}")
    pairs = content.count(CRLF)
    if policy == "accept" or (content.count(b"\n") == pairs and content.count(b"\r") == pairs):
        return content
    return normalize_newlines(content) if policy == "normalize" else None


def normalize_newlines(content: bytes) -> bytes:
    """``content`` with every bare CR or LF turned into CRLF."""
    return _ANY_NEWLINE.sub(b"\r\n", content)


def unstuff(content: bytes) -> bytes:
    """Undo RFC 5321 section 4.5.2 transparency: drop one leading dot per line."""
    out = content.replace(b"\r\n.", b"\r\n")
    if out[:1] == b".":
        return out[1:]
    return out


class Unstuffer:
    """``unstuff`` for a message handed out in ``DataChunk``s, one at a time,
    so a streaming consumer never holds the whole message.  (The framer
    never ends a chunk between a CR and its LF.)"""

    __slots__ = ("_line_start", "_normalize")

    def __init__(self, normalize: bool = False) -> None:
        self._line_start = True
        #: Also make bare CRs/LFs CRLF (``bare_newline = "normalize"``).
        self._normalize = normalize

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return chunk
        out = chunk[1:] if self._line_start and chunk[:1] == b"." else chunk
        self._line_start = chunk.endswith(b"\r\n")
        out = out.replace(b"\r\n.", b"\r\n")
        return normalize_newlines(out) if self._normalize else out


class Framer:
    """Split an SMTP byte stream into events; see the module docstring."""

    __slots__ = (
        "command_limit",
        "_buf",
        "_scan",
        "_skip_prefix",
        "_in_data",
        "_at_data_start",
        "_end_pending",
        "_size",
        "_size_limit",
        "_line_limit",
        "_line_len",
        "_too_large",
        "_line_too_long",
        "_bare_newline",
        "_chunk_left",
        "_chunk_size",
        "_chunk_discard",
    )

    def __init__(self, command_limit: int = 512) -> None:
        #: Longest command line accepted, in bytes without the CRLF.
        self.command_limit = command_limit
        self._buf = bytearray()
        # Where the next search for CRLF starts (the bytes before hold none).
        self._scan = 0
        # Set while discarding the rest of an over-long command line.
        self._skip_prefix: Optional[bytes] = None
        self._in_data = False
        self._at_data_start = False
        self._end_pending = False
        self._size = 0
        self._size_limit: Optional[int] = None
        self._line_limit: Optional[int] = None
        self._line_len = 0
        self._too_large = False
        self._line_too_long = False
        self._bare_newline = False
        # Bytes of the current BDAT chunk still to come; -1: no chunk.
        self._chunk_left = -1
        self._chunk_size = 0
        self._chunk_discard = False

    # -- input ---------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Append received bytes; they are parsed by ``next_event``."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events."""
        return len(self._buf)

    @property
    def in_data(self) -> bool:
        return self._in_data

    @property
    def in_chunk(self) -> bool:
        """A BDAT chunk is being read."""
        return self._chunk_left >= 0

    def discard_buffered(self) -> int:
        """Forget every byte not yet parsed, e.g. plaintext pipelined behind
        STARTTLS (CVE-2024-34083).  Returns how many bytes were dropped."""
        dropped = len(self._buf)
        del self._buf[:]
        self._scan = 0
        self._skip_prefix = None
        return dropped

    def peek_buffered(self) -> bytes:
        """A copy of the unparsed bytes (a PROXY header is read from here)."""
        return bytes(self._buf)

    def consume_buffered(self, count: int) -> None:
        """Drop the first ``count`` unparsed bytes, already used elsewhere."""
        del self._buf[:count]
        self._scan = 0

    def start_data(self, size_limit: Optional[int], line_limit: Optional[int]) -> None:
        """Treat what follows as message content, up to ``<CR><LF>.<CR><LF>``.

        ``size_limit``: most raw bytes accepted (None or 0: no limit).
        ``line_limit``: longest line, CRLF included (None: no limit).
        """
        self._in_data = True
        self._at_data_start = True
        self._end_pending = False
        self._size = 0
        self._size_limit = size_limit or None
        self._line_limit = line_limit
        self._line_len = 0
        self._too_large = False
        self._line_too_long = False
        self._bare_newline = False
        self._scan = 0

    def start_chunk(self, size: int, discard: bool = False) -> None:
        """Treat the next ``size`` bytes as one BDAT chunk: ``DataChunk``s
        (none when ``discard``) then ``ChunkEnd``."""
        if size < 0:
            raise ValueError("a chunk has no negative size")
        self._chunk_left = size
        self._chunk_size = size
        self._chunk_discard = discard
        self._scan = 0
        self._skip_prefix = None

    # -- output --------------------------------------------------------

    def next_event(self) -> Optional[Event]:
        """Parse one event from the buffer, or return None for "need more"."""
        if self._chunk_left >= 0:
            return self._next_chunk_event()
        if self._in_data:
            return self._next_data_event()
        return self._next_command()

    def _next_chunk_event(self) -> Optional[Event]:
        left = self._chunk_left
        if not left:
            self._chunk_left = -1
            return ChunkEnd(self._chunk_size, self._chunk_discard)
        buf = self._buf
        if not buf:
            return None
        taken = min(left, len(buf))
        self._chunk_left = left - taken
        if self._chunk_discard:
            del buf[:taken]
            return self._next_chunk_event()
        chunk = bytes(buf[:taken])
        del buf[:taken]
        return DataChunk(chunk)

    def _next_command(self) -> Optional[Event]:
        buf = self._buf
        limit = self.command_limit
        end = buf.find(CRLF, self._scan)
        if end < 0:
            held = len(buf)
            # +1: a trailing CR may be the first half of the CRLF.
            if held > limit + 1 or self._skip_prefix is not None:
                if self._skip_prefix is None:
                    self._skip_prefix = bytes(buf[: limit + 1])
                keep = 1 if buf.endswith(b"\r") else 0
                del buf[: held - keep]
                self._scan = 0
            else:
                self._scan = held - 1 if held else 0
            return None
        self._scan = 0
        prefix = self._skip_prefix
        if prefix is not None:
            self._skip_prefix = None
            del buf[: end + 2]
            return CommandTooLong(prefix)
        if end > limit:
            prefix = bytes(buf[: limit + 1])
            del buf[: end + 2]
            return CommandTooLong(prefix)
        line = bytes(buf[:end])
        del buf[: end + 2]
        return CommandLine(line)

    def _next_data_event(self) -> Optional[Event]:
        if self._end_pending:
            return self._finish_data()
        buf = self._buf
        if self._at_data_start:
            # The DATA command's own CRLF precedes the first line, so a lone
            # ".<CR><LF>" here is an empty message.
            head = bytes(buf[:3])
            if len(head) < 3 and b".\r\n".startswith(head):
                return None
            self._at_data_start = False
            if head == b".\r\n":
                del buf[:3]
                return self._finish_data()
        while True:
            found = buf.find(END_OF_DATA)
            if found >= 0:
                chunk = bytes(buf[: found + 2])
                del buf[: found + len(END_OF_DATA)]
                self._end_pending = True
                kept = self._account(chunk)
                if kept:
                    return DataChunk(kept)
                return self._finish_data()
            cut = len(buf) - _TAIL
            if cut > 0 and buf[cut - 1] == 0x0D:
                # Keep CR and its LF together so bare-CR detection is exact.
                cut -= 1
            if cut <= 0:
                return None
            chunk = bytes(buf[:cut])
            del buf[:cut]
            kept = self._account(chunk)
            if kept:
                return DataChunk(kept)

    def _account(self, chunk: bytes) -> Optional[bytes]:
        """Update the message's counters; return what of ``chunk`` to hand out."""
        kept = self._size
        self._size += len(chunk)
        if self._too_large or self._line_too_long:
            return None  # the message is refused already: keep nothing more
        if self._size_limit is not None and self._size > self._size_limit:
            # Hand out exactly one byte past the limit, wherever the input
            # was split, so a consumer counting bytes (legacy smtpd did)
            # sees the excess; everything after it is dropped unseen.
            self._too_large = True
            chunk = chunk[: self._size_limit + 1 - kept]
        limit = self._line_limit
        pairs = -1
        if limit is not None:
            lines = chunk.split(CRLF)
            pairs = len(lines) - 1
            if not pairs:
                self._line_len += len(chunk)
                longest = self._line_len + 2
            else:
                longest = self._line_len + len(lines[0]) + 2
                if pairs > 1:
                    longest = max(longest, max(map(len, lines)) + 2)
                self._line_len = len(lines[-1])
                # A partial last line already over the limit counts now.
                longest = max(longest, self._line_len + 2)
            if longest > limit:
                # The long line began within the size limit, so it is the
                # first refusal (aiosmtpd's reader also overran on a long
                # line before counting it).  Nothing more is kept.
                self._line_too_long = True
                self._too_large = False
                return None
        if not self._bare_newline:
            if pairs < 0:
                pairs = chunk.count(CRLF)
            if chunk.count(b"\n") != pairs or chunk.count(b"\r") != pairs:
                self._bare_newline = True
        return chunk

    def _finish_data(self) -> DataEnd:
        self._in_data = False
        self._end_pending = False
        self._scan = 0
        return DataEnd(
            size=self._size,
            too_large=self._too_large,
            line_too_long=self._line_too_long,
            # Only meaningful for content that was read to the end.
            bare_newline=self._bare_newline and not self._line_too_long,
        )
