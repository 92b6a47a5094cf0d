"""CHUNKING (RFC 3030) in the engine: the framer's BDAT mode and the rules.

The dialogs run through ``Dialog``, a toy sans-I/O server made of the
engine's pieces only (Framer, split_command, chunking), fed byte streams
cut anywhere: the RFC's examples and the hostile cases.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpd_compat.engine import chunking, replies
from smtpd_compat.engine.chunking import ChunkedMessage, SizeUnknown
from smtpd_compat.engine.framing import ChunkEnd, CommandLine, DataChunk, Framer
from smtpd_compat.engine.grammar import split_command


class Dialog:
    """Just enough of a server to show what the rules do to a stream."""

    def __init__(self, size_limit: Optional[int] = None) -> None:
        self.framer = Framer()
        self.size_limit = size_limit
        self.replies: List[str] = []
        self.delivered: List[bytes] = []
        self.closed = False
        self.sender = False
        self.recipients = 0
        self.message: Optional[ChunkedMessage] = None
        self.plan: Optional[chunking.ChunkPlan] = None

    def feed(self, pieces: Sequence[bytes]) -> "Dialog":
        for piece in pieces:
            self.framer.feed(piece)
            while not self.closed:
                event = self.framer.next_event()
                if event is None:
                    break
                self.handle(event)
        return self

    def handle(self, event: object) -> None:
        if type(event) is DataChunk:
            assert self.plan is not None and not self.plan.discard
            assert self.plan.message is not None
            self.plan.message.parts.append(event.data)
        elif type(event) is ChunkEnd:
            self.chunk_read()
        else:
            assert type(event) is CommandLine
            self.command(event.line)

    def command(self, line: bytes) -> None:
        verb, arg = split_command(line, True)
        if verb == "MAIL":
            self.sender = True
        elif verb == "RCPT":
            self.recipients += 1
        elif verb == "RSET":
            self.reset()
        elif verb == "DATA":
            self.replies.append(chunking.data_refusal(self.message, False) or replies.START_DATA)
            return
        elif verb == "BDAT":
            try:
                self.plan = chunking.plan_chunk(
                    arg, refusal=None, has_sender=self.sender, recipients=self.recipients,
                    message=self.message, size_limit=self.size_limit,
                )
            except SizeUnknown as error:
                self.replies.append(error.reply)
                self.closed = True
                return
            self.message = self.plan.message
            self.framer.start_chunk(self.plan.size, self.plan.discard)
            return
        elif verb == "QUIT":
            self.closed = True
        self.replies.append(f"250 {verb}")

    def chunk_read(self) -> None:
        plan = self.plan
        assert plan is not None
        if plan.reply is None:
            assert plan.message is not None
            self.delivered.append(plan.message.content())
            self.replies.append(replies.OK)
        else:
            self.replies.append(plan.reply)
        if plan.ends_transaction:
            self.reset()

    def reset(self) -> None:
        self.sender, self.recipients, self.message = False, 0, None


ENVELOPE = b"EHLO c\r\nMAIL FROM:<Sam@Random.com>\r\nRCPT TO:<Susan@Random.com>\r\n"
HEAD = [f"250 {verb}" for verb in ("EHLO", "MAIL", "RCPT")]
# RFC 3030 4.1, example 1: a message of 86 bytes in one chunk.
EXAMPLE_1 = (
    b"To: Susan@random.com\r\nFrom: Sam@random.com\r\nSubject: This is a bodyless test message\r\n"
)


def bytewise(data: bytes) -> List[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def test_rfc3030_example_1_one_last_chunk() -> None:
    assert len(EXAMPLE_1) == 86
    stream = ENVELOPE + b"BDAT 86 LAST\r\n" + EXAMPLE_1 + b"QUIT\r\n"
    for pieces in ([stream], bytewise(stream)):
        dialog = Dialog().feed(pieces)
        assert dialog.replies == HEAD + ["250 OK", "250 QUIT"]
        assert dialog.delivered == [EXAMPLE_1]


def test_rfc3030_examples_2_and_3_pipelined_chunks_binary() -> None:
    # 100000 bytes that hold every SMTP marker there is, then 324 more.
    binary = (b"\r\n.\r\nQUIT\r\n\x00\xff." * 10000)[:100000]
    tail = bytes(range(256)) + b"\r\n.\r\n" * 13 + b"xyz"
    assert len(tail) == 324
    stream = (
        b"EHLO c\r\nMAIL FROM:<ned@ymir.claremont.edu> BODY=BINARYMIME\r\nRCPT TO:<a@b.c>\r\n"
        + b"BDAT 100000\r\n" + binary + b"BDAT 324 LAST\r\n" + tail
    )
    dialog = Dialog().feed([stream[i : i + 4096] for i in range(0, len(stream), 4096)])
    assert dialog.replies == HEAD + ["250 2.0.0 100000 octets received", "250 OK"]
    assert dialog.delivered == [binary + tail]
    assert not dialog.closed


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_any_split_gives_the_same_dialog(cuts: List[int]) -> None:
    stream = ENVELOPE + b"BDAT 5\r\nQUIT\r" + b"BDAT 0\r\n" + b"BDAT 10 LAST\r\n\nRSET\r\n.\r\n" + b"NOOP\r\n"
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0] + points, points + [len(stream)])]
    dialog = Dialog().feed(pieces)
    assert dialog.replies == HEAD + [
        chunking.chunk_received(5), chunking.chunk_received(0), "250 OK", "250 NOOP"]
    assert dialog.delivered == [b"QUIT\r\nRSET\r\n.\r\n"]


def test_bdat_0_last_ends_the_message() -> None:
    stream = ENVELOPE + b"BDAT 3\r\nabcBDAT 0 LAST\r\n" + ENVELOPE[8:] + b"BDAT 0 LAST\r\n"
    dialog = Dialog().feed([stream])
    assert dialog.replies == HEAD + [chunking.chunk_received(3), "250 OK", "250 MAIL", "250 RCPT", "250 OK"]
    assert dialog.delivered == [b"abc", b""]


@pytest.mark.parametrize("arg", ["", "-1", "+5", "1e3", "0x10", "²", "５", "LAST", "1" + "0" * 20, "5.0"])
def test_a_size_that_cannot_be_read_closes(arg: str) -> None:
    with pytest.raises(SizeUnknown):
        chunking.parse_bdat(arg)
    # Whatever follows is not run as a command.
    dialog = Dialog().feed([ENVELOPE + f"BDAT {arg}\r\n".encode() + b"RSET\r\nQUIT\r\n"])
    assert dialog.replies == HEAD + [chunking.SIZE_UNKNOWN]
    assert dialog.closed and not dialog.delivered


def test_argument_rules() -> None:
    assert chunking.parse_bdat("007") == chunking.Bdat(7, False)
    assert chunking.parse_bdat(" 9   last ") == chunking.Bdat(9, True)
    assert chunking.parse_bdat("9" * 20) == chunking.Bdat(10**20 - 1, False)
    assert chunking.parse_bdat("10 FIRST") == chunking.Bdat(10, False, chunking.SYNTAX)
    assert chunking.parse_bdat("10 LAST x") == chunking.Bdat(10, False, chunking.SYNTAX)


def test_refused_chunks_are_read_and_dropped() -> None:
    # Out of sequence, bad keyword: the payload (commands!) is data all the same.
    payload = b"RSET\r\nMAIL FROM:<evil@x>\r\n"
    stream = (
        b"EHLO c\r\n" + b"BDAT 26 LAST\r\n" + payload
        + b"MAIL FROM:<a@b>\r\n" + b"BDAT 26\r\n" + payload
        + b"RCPT TO:<c@d>\r\n" + b"BDAT 26 FIRST\r\n" + payload + b"BDAT 2 LAST\r\nok"
    )
    assert len(payload) == 26
    dialog = Dialog().feed(bytewise(stream))
    assert dialog.replies == [
        "250 EHLO", replies.NEED_MAIL, "250 MAIL", replies.NEED_RCPT, "250 RCPT", chunking.SYNTAX, "250 OK"]
    assert dialog.delivered == [b"ok"]


def test_size_limit_counts_across_chunks_and_fails_the_rest() -> None:
    stream = ENVELOPE + b"BDAT 6\r\n123456BDAT 6\r\nQUIT\r\nBDAT 1\r\nxBDAT 2 LAST\r\nyzNOOP\r\n"
    dialog = Dialog(size_limit=10).feed(bytewise(stream))
    assert dialog.replies == HEAD + [
        chunking.chunk_received(6), replies.TOO_MUCH_DATA, replies.TOO_MUCH_DATA, replies.TOO_MUCH_DATA, "250 NOOP"]
    assert dialog.delivered == [] and dialog.message is None, "LAST ended the failed transaction"
    # Exactly the limit passes.
    dialog = Dialog(size_limit=10).feed([ENVELOPE + b"BDAT 4\r\n1234BDAT 6 LAST\r\n567890"])
    assert dialog.delivered == [b"1234567890"]


def test_a_huge_chunk_is_consumed_with_bounded_memory() -> None:
    framer = Framer()
    framer.start_chunk(10**20 - 1, discard=True)
    for _ in range(64):
        framer.feed(b"\r\n.\r\nQUIT\r\n" * 6000)
        assert framer.next_event() is None
        assert framer.buffered == 0
    assert framer.in_chunk


def test_data_inside_a_chunked_transaction() -> None:
    stream = ENVELOPE + b"BDAT 1\r\nxDATA\r\nRSET\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
    dialog = Dialog().feed([stream])
    assert dialog.replies == HEAD + [
        chunking.chunk_received(1), chunking.DATA_AFTER_BDAT, "250 RSET", "250 MAIL", "250 RCPT", replies.START_DATA]
    assert chunking.data_refusal(None, True) == chunking.BINARYMIME_NEEDS_BDAT
    assert chunking.data_refusal(None, False) is None


def test_framer_chunk_events() -> None:
    framer = Framer()
    framer.feed(b"abcdefBDAT")
    framer.start_chunk(4)
    assert framer.next_event() == DataChunk(b"abcd")
    assert framer.next_event() == ChunkEnd(4, False)
    assert not framer.in_chunk
    framer.feed(b" 1\r\n")
    assert framer.next_event() == CommandLine(b"efBDAT 1")
    framer.start_chunk(0)
    assert framer.next_event() == ChunkEnd(0, False)
    with pytest.raises(ValueError):
        framer.start_chunk(-1)
