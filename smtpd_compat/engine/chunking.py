"""CHUNKING and BINARYMIME (RFC 3030): the BDAT rules both faces apply.

``BDAT <size> [LAST]`` is followed by exactly ``size`` bytes of message data,
whatever the server thinks of the command.  So every decision here comes
with the size to read: a refused chunk is still read (``Framer.start_chunk``
with ``discard``) and its payload never reaches the command parser.  Only a
BDAT line whose size cannot be read leaves the stream's framing unknown; the
connection is then closed (``SizeUnknown``), as nothing after it can be
trusted to be a command.

* ``plan_chunk``: everything about one BDAT command is known before its
  data is read (RFC 3030 sizes each chunk up front), so one call decides it:
  how many bytes to read, whether to keep them, the reply, and whether the
  transaction ends.  A face reads the chunk and acts on the ``ChunkPlan``.
* ``parse_bdat``: the argument (ASCII digits only, optional ``LAST``).
* ``sequence_refusal``: BDAT before MAIL or RCPT.
* ``ChunkedMessage``: one transaction's chunks: the size counted across
  them against ``data_size_limit``, the failure that refuses every later
  chunk until ``LAST`` or RSET ends the transaction, the kept bytes.
* ``data_refusal``: DATA inside a BDAT transaction, or for a BINARYMIME body.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional

from . import replies

__all__ = [
    "BINARYMIME_NEEDS_BDAT",
    "Bdat",
    "ChunkPlan",
    "ChunkedMessage",
    "DATA_AFTER_BDAT",
    "SYNTAX",
    "SizeUnknown",
    "chunk_received",
    "data_refusal",
    "is_bdat",
    "parse_bdat",
    "payload_size",
    "plan_chunk",
    "sequence_refusal",
]

SYNTAX = "501 5.5.4 Syntax: BDAT <size> [LAST]"
#: The reply before closing: the chunk's end, so the next command, is unknown.
SIZE_UNKNOWN = "421 4.5.4 Syntax: BDAT <size> [LAST], closing connection"
#: RFC 3030 2: DATA and BDAT cannot be mixed in one transaction.
DATA_AFTER_BDAT = "503 5.5.1 Error: DATA not allowed after BDAT"
#: RFC 3030 3: a BINARYMIME message can only be sent by BDAT.
BINARYMIME_NEEDS_BDAT = "503 5.5.1 Error: BODY=BINARYMIME requires BDAT"
# A size of more than 20 digits (10**20 bytes) can never be read to its end.
_MAX_DIGITS = 20


def chunk_received(size: int) -> str:
    """The reply to a chunk before the last (RFC 3030's examples)."""
    return f"250 2.0.0 {size} octets received"


class SizeUnknown(Exception):
    """A BDAT line without a readable size; ``reply`` goes out, then the
    connection closes."""

    reply = SIZE_UNKNOWN


class Bdat(NamedTuple):
    """A BDAT command: read ``size`` bytes, then reply ``refusal`` if set."""

    size: int
    last: bool
    #: A syntax error after a good size (``BDAT 10 FIRST``).
    refusal: Optional[str] = None


def parse_bdat(arg: Optional[str]) -> Bdat:
    """Read BDAT's argument; raises ``SizeUnknown``."""
    words = arg.split() if arg else []
    if not words:
        raise SizeUnknown()
    size = words[0]
    # ASCII digits only: "-1", "+1", "1e3", "²", "0x10" have no agreed size.
    if not (size.isascii() and size.isdigit()) or len(size.lstrip("0")) > _MAX_DIGITS:
        raise SizeUnknown()
    last = len(words) == 2 and words[1].upper() == "LAST"
    if len(words) > 2 or (len(words) == 2 and not last):
        return Bdat(int(size), False, SYNTAX)
    return Bdat(int(size), last)


def is_bdat(line: bytes) -> bool:
    """``line`` (or the start of an over-long one) is a BDAT command: if it
    is refused unread, its chunk's size is unknown."""
    return line.partition(b" ")[0].upper() == b"BDAT"


def payload_size(line: bytes) -> int:
    """How many bytes follow ``line`` whatever its fate: a BDAT's size,
    0 for any other command; raises ``SizeUnknown``.

    For a command refused before it runs (a gate, a line limit): its
    chunk must still be read past.
    """
    if not is_bdat(line):
        return 0
    return parse_bdat(line.partition(b" ")[2].decode("ascii", "replace")).size


def sequence_refusal(has_sender: bool, recipients: int) -> Optional[str]:
    """The reply to a BDAT before MAIL or RCPT (in DATA's words), or None.

    A BDAT after ``BDAT ... LAST`` meets a transaction that is over, so it
    is refused here too (RFC 3030 2: 503).
    """
    if not has_sender:
        return replies.NEED_MAIL
    if not recipients:
        return replies.NEED_RCPT
    return None


def data_refusal(message: Optional["ChunkedMessage"], binarymime: bool) -> Optional[str]:
    """The reply refusing DATA in this transaction, or None.

    The transaction stays as it was (RFC 3030 calls its state
    indeterminate; the client must RSET).
    """
    if message is not None:
        return DATA_AFTER_BDAT
    if binarymime:
        return BINARYMIME_NEEDS_BDAT
    return None


class ChunkedMessage:
    """The chunks of one BDAT transaction, counted.

    ``size_limit`` is the server's ``data_size_limit`` (None or 0: none),
    applied to the sum of all chunks.  Once one chunk is refused the
    message is: every later chunk is read, dropped and refused the same way
    (RFC 3030 2: the server discards chunks after a failed one).
    """

    __slots__ = ("size_limit", "received", "failure", "parts")

    def __init__(self, size_limit: Optional[int]) -> None:
        self.size_limit = size_limit or None
        #: Bytes of all chunks so far, kept or not.
        self.received = 0
        #: The reply refusing this message, once it failed.
        self.failure: Optional[str] = None
        #: The kept chunks' bytes, in order (``DataChunk``s appended).
        self.parts: List[bytes] = []

    def content(self) -> bytes:
        """The whole message, as the client sent it (nothing to unstuff)."""
        content = b"".join(self.parts)
        self.parts = []
        return content

    def add(self, size: int) -> Optional[str]:
        """Count a chunk of ``size`` bytes before reading it.

        Returns None when its bytes are to be kept, or the reply refusing it
        (read it with ``discard``).
        """
        self.received += size
        if self.failure is None and self.size_limit is not None and self.received > self.size_limit:
            self.failure = replies.TOO_MUCH_DATA
        return self.failure


class ChunkPlan(NamedTuple):
    """What to do with one BDAT command, decided before its data is read."""

    #: Bytes to read after the command line (``Framer.start_chunk``).
    size: int
    #: Drop them as they come (the chunk is refused).
    discard: bool
    #: The reply once they are read; None: this was the last chunk of an
    #: accepted message, deliver it and answer as after DATA.
    reply: Optional[str]
    #: The transaction is over once the chunk is read (LAST).
    ends_transaction: bool
    #: The transaction's message, to keep for the next chunk; None when the
    #: command was refused before one existed.
    message: Optional[ChunkedMessage]


def plan_chunk(
    arg: Optional[str],
    *,
    refusal: Optional[str],
    has_sender: bool,
    recipients: int,
    message: Optional[ChunkedMessage],
    size_limit: Optional[int],
) -> ChunkPlan:
    """Decide a BDAT command; raises ``SizeUnknown``.

    ``refusal``: the face's own reason to refuse it first (no HELO yet, AUTH
    required), or None.  ``message``: the transaction's chunks so far.
    A refusal before counting (syntax, sequence, the face's) leaves the
    transaction as it was; a refused chunk of the message fails it.
    """
    bdat = parse_bdat(arg)
    refusal = bdat.refusal or refusal
    if refusal is None and message is None:
        refusal = sequence_refusal(has_sender, recipients)
    if refusal is not None:
        return ChunkPlan(bdat.size, True, refusal, False, message)
    if message is None:
        message = ChunkedMessage(size_limit)
    failure = message.add(bdat.size)
    if failure is not None:
        return ChunkPlan(bdat.size, True, failure, bdat.last, message)
    if bdat.last:
        return ChunkPlan(bdat.size, False, None, True, message)
    return ChunkPlan(bdat.size, False, chunk_received(bdat.size), False, message)
