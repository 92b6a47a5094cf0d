"""The sans-I/O engine on its own: framing properties and limits."""

from __future__ import annotations

from typing import List, Optional, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from smtpd_compat.engine.framing import (
    CommandLine,
    CommandTooLong,
    DataChunk,
    DataEnd,
    Event,
    Framer,
    unstuff,
)
from smtpd_compat.engine.grammar import BadCommand, get_address, parse_params, printable, split_command


def drive(pieces: Sequence[bytes], size_limit: Optional[int] = None, line_limit: Optional[int] = None,
          command_limit: int = 512) -> List[Event]:
    """Feed ``pieces`` one by one; enter DATA after every "DATA" command line,
    as a server would.  Consecutive DataChunks are merged so that results
    do not depend on where the input was split."""
    framer = Framer(command_limit)
    events: List[Event] = []
    for piece in pieces:
        framer.feed(piece)
        while True:
            event = framer.next_event()
            if event is None:
                break
            if type(event) is DataEnd and event.line_too_long:
                # Content before the refusal was found is split-dependent
                # and worthless: the whole message is refused.
                while events and type(events[-1]) is DataChunk:
                    events.pop()
            if type(event) is DataChunk and events and type(events[-1]) is DataChunk:
                events[-1] = DataChunk(events[-1].data + event.data)
            else:
                events.append(event)
            if type(event) is CommandLine and event.line == b"DATA":
                framer.start_data(size_limit, line_limit)
    if framer.in_data and framer._line_too_long:
        while events and type(events[-1]) is DataChunk:
            events.pop()  # an unfinished, already refused message
    return events


def split_at(data: bytes, cuts: List[int]) -> List[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


SMTP_BYTES = st.lists(
    st.sampled_from([b"\r\n", b"\r", b"\n", b".", b"..", b"DATA", b"\r\n.\r\n", b"x", b"MAIL FROM:<a@b>", b"\x00", b"\xff",
                     b"\r\n.", b".\r\n"]),
    max_size=60,
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(SMTP_BYTES, st.lists(st.integers(min_value=0), max_size=12))
def test_any_split_gives_the_same_events(stream: bytes, cuts: List[int]) -> None:
    data = b"DATA\r\n" + stream
    whole = drive([data], size_limit=40, line_limit=12, command_limit=16)
    assert drive(split_at(data, cuts), size_limit=40, line_limit=12, command_limit=16) == whole
    assert drive([bytes([b]) for b in data], size_limit=40, line_limit=12, command_limit=16) == whole


LINES = st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=20)


@settings(max_examples=300, deadline=None)
@given(LINES, st.lists(st.integers(min_value=0), max_size=8))
def test_dot_stuffing_round_trips(lines: List[bytes], cuts: List[int]) -> None:
    content = b"".join(line + b"\r\n" for line in lines)
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    events = drive(split_at(b"DATA\r\n" + stuffed + b".\r\nNOOP\r\n", cuts))
    raw = b"".join(e.data for e in events if type(e) is DataChunk)
    assert raw == stuffed
    assert unstuff(raw) == content
    assert events[-1] == CommandLine(b"NOOP")
    assert type(events[-2]) is DataEnd and events[-2].size == len(stuffed)


def test_only_crlf_dot_crlf_ends_data() -> None:
    """SMTP smuggling: no other end-of-data variant ends the message."""
    fake_ends = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\x00\r\n", b"\n.\r"]
    for fake in fake_ends:
        body = b"one" + fake + b"MAIL FROM:<evil@x>\r\n"
        events = drive([b"DATA\r\n" + body + b".\r\nQUIT\r\n"])
        assert [type(e) for e in events] == [CommandLine, DataChunk, DataEnd, CommandLine], fake
        assert events[1].data == body
        assert events[2].bare_newline == (fake not in (b"\r\n.\x00\r\n",))


def test_commands_end_only_at_crlf() -> None:
    events = drive([b"NOOP\nQUIT\rRSET\r\nHELO x\r\n"])
    assert events == [CommandLine(b"NOOP\nQUIT\rRSET"), CommandLine(b"HELO x")]


def test_empty_message_and_empty_line() -> None:
    assert drive([b"DATA\r\n.\r\n"]) == [CommandLine(b"DATA"), DataEnd(0, False, False, False)]
    assert drive([b"DATA\r\n\r\n.\r\n"]) == [
        CommandLine(b"DATA"), DataChunk(b"\r\n"), DataEnd(2, False, False, False)]


def test_over_long_command_is_discarded_with_bounded_memory() -> None:
    framer = Framer(512)
    framer.feed(b"NOOP ")
    for _ in range(1000):
        framer.feed(b"x" * 100_000)
        assert framer.next_event() is None
        assert framer.buffered <= 1
    framer.feed(b"\r\nQUIT\r\n")
    event = framer.next_event()
    assert type(event) is CommandTooLong and event.prefix == (b"NOOP " + b"x" * 508)
    assert framer.next_event() == CommandLine(b"QUIT")


def test_line_at_and_over_the_command_limit() -> None:
    assert drive([b"x" * 512 + b"\r\n"]) == [CommandLine(b"x" * 512)]
    assert drive([b"x" * 513 + b"\r\n"]) == [CommandTooLong(b"x" * 513)]


def test_oversize_data_is_dropped_as_it_arrives() -> None:
    framer = Framer()
    framer.start_data(size_limit=1000, line_limit=None)
    kept = 0
    for _ in range(1000):
        framer.feed(b"y" * 65534 + b"\r\n")
        while True:
            event = framer.next_event()
            if event is None:
                break
            assert type(event) is DataChunk
            kept += len(event.data)
        assert framer.buffered <= 8
    framer.feed(b".\r\n")
    events = [framer.next_event(), framer.next_event()]
    assert kept <= 65536 + 8  # only the chunk that crossed the limit
    end = events[-1] if type(events[-1]) is DataEnd else events[0]
    assert type(end) is DataEnd and end.too_large and end.size == 1000 * 65536


def test_data_line_limit_counts_crlf() -> None:
    ok = drive([b"DATA\r\n" + b"a" * 999 + b"\r\n.\r\n"], line_limit=1001)
    assert ok[-1] == DataEnd(1001, False, False, False)
    bad = drive([b"DATA\r\n" + b"a" * 1000 + b"\r\n.\r\n"], line_limit=1001)
    assert bad[-1].line_too_long


def test_discard_buffered_drops_pipelined_plaintext() -> None:
    framer = Framer()
    framer.feed(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n")
    assert framer.next_event() == CommandLine(b"STARTTLS")
    assert framer.discard_buffered() == len(b"MAIL FROM:<evil@x>\r\n")
    assert framer.next_event() is None


def test_split_command() -> None:
    assert split_command(b"mail FROM:<a@b>  ", False) == ("MAIL", "FROM:<a@b>")
    assert split_command(b"NOOP", False) == ("NOOP", None)
    assert split_command(b"NOOP   ", False) == ("NOOP", None)
    assert split_command("MAIL FROM:<δ@b>".encode(), True) == ("MAIL", "FROM:<δ@b>")
    for bad, reply in [(b"", "500 Error: bad syntax"), (b"N\x00OP", "500 Error: bad syntax"),
                       (b"NOOP a\nb", "500 Error: bad syntax"), (b"\xffOOP", "500 Error: bad syntax"),
                       (b"NOOP \xff", "500 Error: strict ASCII mode")]:
        try:
            split_command(bad, False)
        except BadCommand as error:
            assert str(error) == reply
        else:
            raise AssertionError(bad)


def test_grammar_helpers() -> None:
    assert get_address("<>") == ("<>", "")
    assert get_address("<a@b> SIZE=1") == ("a@b", "SIZE=1")
    assert get_address("<") == (None, None)
    assert get_address("") == ("", "")
    assert parse_params(["SIZE=1", "SMTPUTF8"]) == {"SIZE": "1", "SMTPUTF8": True}
    assert parse_params(["X-Y=1"]) is None
    assert parse_params(["SIZE="]) is None
    assert printable("a\r\nb\x1b\x00c") == "a??b??c"


PATH_PIECES = st.lists(
    st.sampled_from(["a", "Z", "0", ".", "@", "<", ">", " ", "\t", "(", ")", "\"", "[", "]", ":", ",", ";", "-", "+",
                     "=", "SIZE=1", "é", "\\", "b.c", "x@y", "x@y "]),
    max_size=14,
).map("".join)


@settings(max_examples=3000, deadline=None)
@given(PATH_PIECES)
def test_address_fast_path_agrees_with_the_full_parser(arg: str) -> None:
    from smtpd_compat.engine.grammar import _parse_path

    if arg:
        assert get_address(arg) == _parse_path(arg)
