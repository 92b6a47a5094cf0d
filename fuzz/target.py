"""Coverage-guided fuzz target for the SMTP engine (atheris / libFuzzer).

One input = a 4-byte header choosing limits and options, then the bytes a
client sends.  ``check_one`` replays them through the engine, split at
points derived from the header, and asserts the engine's invariants:

* only the Framer's own event types come out, and no exception but
  ``BadCommand`` from the grammar;
* between events the framer holds at most ``command_limit + 1`` bytes in
  command mode and 5 in data mode; a message hands out at most
  ``size_limit + 1`` bytes;
* the events (consecutive DataChunks merged) do not depend on where the
  input was split: whole, at random points, byte by byte;
* a message's content never contains the end-of-data marker, and its
  DataEnd flags (size, bare newline, line too long) agree with the bytes
  (a message refused for a long line hands out an unspecified prefix);
* ``unstuff`` and ``normalize_newlines`` agree with line-by-line versions;
* after ``BDAT <size>`` exactly ``size`` bytes come out as DataChunks (none
  when the header discards the chunk), closed by a ChunkEnd of that size,
  and the framer holds nothing between events; a size ``parse_bdat`` cannot
  read ends the run, as it ends the connection.

With header bit 0x80 the input also runs through a whole modern ``SMTP``
protocol instance on a fake transport, whole and split: every reply line is
``NNN`` + text with no control character, both runs answer byte for byte
the same, no exception reaches ``handle_exception``, and a message with a
bare newline is never delivered unchanged unless the policy says "accept".
Header bit 0x80 of the third byte offers CHUNKING there (and discards BDAT
chunks in the framer run).

``check_one`` needs no atheris, so tests replay the committed corpus; run
``python fuzz/run.py --minutes N`` to fuzz.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import sys
from pathlib import Path
from typing import Any, List, NamedTuple, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smtpd_compat.engine import chunking  # noqa: E402
from smtpd_compat.engine.framing import (  # noqa: E402
    BARE_NEWLINE_POLICIES,
    ChunkEnd,
    CommandLine,
    CommandTooLong,
    DataChunk,
    DataEnd,
    Event,
    Framer,
    normalize_newlines,
    unstuff,
)
from smtpd_compat.engine.grammar import (  # noqa: E402
    BadCommand,
    get_address,
    parse_params,
    printable,
    split_command,
    strip_keyword,
)

HEADER = 4
COMMAND_LIMITS = (8, 16, 64, 512)
SIZE_LIMITS: Tuple[Optional[int], ...] = (None, 16, 200, 4096)
LINE_LIMITS: Tuple[Optional[int], ...] = (None, 12, 100, 1001)
# Byte-by-byte replay is quadratic in Python; beyond this only random splits.
BYTEWISE_MAX = 2048
END_OF_DATA = b"\r\n.\r\n"
EVENT_TYPES = (CommandLine, CommandTooLong, DataChunk, DataEnd, ChunkEnd)
CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
REPLY_LINE = re.compile(rb"\A[2-5]\d\d(?:[ -][^\x00-\x1f\x7f]*)?\Z")


class Config(NamedTuple):
    command_limit: int
    size_limit: Optional[int]
    line_limit: Optional[int]
    utf8: bool
    protocol: bool
    split_seed: int
    bare_newline: str
    decode_data: bool
    call_limit: bool
    auth_plaintext: bool
    chunking: bool


def parse_header(header: bytes) -> Config:
    h = header.ljust(HEADER, b"\0")
    return Config(
        command_limit=COMMAND_LIMITS[h[0] & 3],
        size_limit=SIZE_LIMITS[(h[0] >> 2) & 3],
        line_limit=LINE_LIMITS[(h[0] >> 4) & 3],
        utf8=bool(h[0] & 0x40),
        protocol=bool(h[0] & 0x80),
        split_seed=h[1],
        bare_newline=BARE_NEWLINE_POLICIES[h[2] % 3],
        decode_data=bool(h[2] & 0x10),
        call_limit=bool(h[2] & 0x20),
        auth_plaintext=bool(h[2] & 0x40),
        chunking=bool(h[2] & 0x80),
    )


def splits(payload: bytes, seed: int) -> List[List[bytes]]:
    """The ways to cut ``payload`` into received chunks that are compared."""
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(payload) + 1), min(len(payload) + 1, 1 + seed % 9)))
    pieces = [payload[a:b] for a, b in zip([0] + cuts, cuts + [len(payload)])]
    ways = [[payload], pieces]
    if len(payload) <= BYTEWISE_MAX:
        ways.append([payload[i:i + 1] for i in range(len(payload))])
    return ways


# -- engine --------------------------------------------------------------------


def has_bare_newline(data: bytes) -> bool:
    pairs = data.count(b"\r\n")
    return data.count(b"\r") != pairs or data.count(b"\n") != pairs


def exercise_grammar(line: bytes, utf8: bool) -> None:
    """Run every grammar function a face would on ``line``."""
    try:
        verb, arg = split_command(line, utf8)
    except BadCommand as error:
        assert str(error).startswith("500 "), error
        return
    assert verb.isascii() and " " not in verb and verb == verb.upper(), verb
    assert not {"\r", "\n", "\0"} & set(verb + (arg or "")), line
    if arg is None:
        return
    assert arg == arg.strip(" ") and arg, arg
    assert not CONTROL.search(printable(arg).encode("utf-8", "surrogateescape"))
    for keyword in ("FROM:", "TO:"):
        stripped = strip_keyword(keyword, arg)
        if stripped is None:
            continue
        address, rest = get_address(stripped)
        assert (address is None) == (rest is None), (address, rest)
        assert address is None or isinstance(address, str)
        if rest:
            params = parse_params(rest.upper().split())
            assert params is None or all(key.isalnum() for key in params), params
    get_address(arg)


def check_content(content: bytes, end: DataEnd, config: Config) -> None:
    """A finished message's bytes against its DataEnd."""
    if end.too_large:
        assert config.size_limit is not None and end.size > config.size_limit, end
        assert len(content) == config.size_limit + 1, (len(content), end)
        return
    assert end.size == len(content), (end, len(content))
    assert not content or content.endswith(b"\r\n"), content[-8:]
    assert END_OF_DATA not in b"\r\n" + content, content
    assert end.bare_newline == has_bare_newline(content), end
    if config.line_limit is not None:
        longest = max((len(line) + 2 for line in content.split(b"\r\n")[:-1]), default=0)
        assert longest <= config.line_limit, (end, longest)
    by_line = b"\r\n".join(line[1:] if line[:1] == b"." else line for line in content.split(b"\r\n"))
    assert unstuff(content) == by_line
    normal = normalize_newlines(content)
    assert not has_bare_newline(normal) and normalize_newlines(normal) == normal


def run_framer(pieces: List[bytes], config: Config, grammar: bool = True) -> List[Event]:
    """Feed ``pieces`` as a server would (DATA enters data mode, STARTTLS
    discards and ends the run); return the events, DataChunks merged.
    ``grammar``: also run the grammar checks (once per input is enough)."""
    framer = Framer(config.command_limit)
    events: List[Event] = []
    # A DataChunk last in ``events`` belongs to the BDAT chunk being read.
    framer_chunk_open = False
    for piece in pieces:
        framer.feed(piece)
        while True:
            event = framer.next_event()
            if event is None:
                held = framer.buffered
                most = 0 if framer.in_chunk else 5 if framer.in_data else config.command_limit + 1
                assert held <= most, (held, framer.in_data, framer.in_chunk)
                break
            assert type(event) in EVENT_TYPES, event
            if type(event) is DataChunk:
                assert event.data, "empty DataChunk"
                if events and type(events[-1]) is DataChunk:
                    event = DataChunk(events[-1].data + event.data)
                    events.pop()
                events.append(event)
                continue
            if type(event) is ChunkEnd:
                last = events[-1] if events else None
                content = last.data if isinstance(last, DataChunk) and framer_chunk_open else b""
                if content:
                    events.pop()
                assert event.discarded == config.chunking and len(content) == (0 if event.discarded else event.size)
                assert not framer.in_chunk
                framer_chunk_open = False
                if content:
                    events.append(DataChunk(content))
                events.append(event)
                continue
            if type(event) is DataEnd:
                content = b""
                last = events[-1] if events else None
                if isinstance(last, DataChunk):
                    content = last.data
                    events.pop()
                if event.line_too_long:
                    # Refused: what was handed out before the long line was
                    # seen depends on the split and is worthless.
                    assert config.line_limit is not None and not event.too_large, event
                else:
                    check_content(content, event, config)
                    if content:
                        events.append(DataChunk(content))
                assert not framer.in_data
                events.append(event)
                continue
            assert not framer.in_data and not framer.in_chunk
            events.append(event)
            if type(event) is CommandTooLong:
                assert len(event.prefix) == config.command_limit + 1, event
                continue
            assert type(event) is CommandLine
            assert len(event.line) <= config.command_limit and b"\r\n" not in event.line, event
            if grammar:
                exercise_grammar(event.line, config.utf8)
            verb = event.line.partition(b" ")[0].upper()
            if verb == b"DATA":
                framer.start_data(config.size_limit, config.line_limit)
            elif verb == b"STARTTLS":
                framer.discard_buffered()
                assert framer.buffered == 0 and framer.next_event() is None
                return events
            elif verb == b"BDAT":
                try:
                    size = chunking.payload_size(event.line)
                except chunking.SizeUnknown:
                    return events  # the connection closes
                framer.start_chunk(size, config.chunking)
                framer_chunk_open = True
    if framer.in_data and framer._line_too_long and events and type(events[-1]) is DataChunk:
        events.pop()  # an unfinished message, already refused (see above)
    return events


# -- the modern protocol ---------------------------------------------------------


class ErrorLog(logging.Handler):
    """Collects ERROR records of "mail.log": an exception inside a command."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: Any) -> None:
        self.written += data

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 2525) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Recorder:
    def __init__(self) -> None:
        self.delivered: List[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.delivered.append(envelope.original_content)
        return "250 OK"


_errors = ErrorLog()


async def _session(pieces: List[bytes], config: Config) -> Tuple[bytes, List[bytes]]:
    from smtpd_compat.modern.smtp import SMTP

    loop = asyncio.get_running_loop()
    handler = Recorder()
    server = SMTP(
        handler,
        hostname="fuzz.example",
        data_size_limit=config.size_limit,
        enable_SMTPUTF8=config.utf8,
        decode_data=config.decode_data,
        auth_require_tls=not config.auth_plaintext,
        command_call_limit=3 if config.call_limit else None,
        enable_CHUNKING=config.chunking,
        loop=loop,
    )
    server.bare_newline = config.bare_newline
    if config.line_limit is not None:
        server.line_length_limit = config.line_limit
    transport = FakeTransport()
    server.connection_made(transport)
    for piece in pieces:
        if transport.closing:
            break
        server.data_received(piece)
        for _ in range(3):
            await asyncio.sleep(0)
    if not transport.closing:
        server.eof_received()
    task = server._handler_coroutine
    assert task is not None
    for _ in range(10_000):
        if task.done():
            break
        await asyncio.sleep(0)
    assert task.done(), "the connection task did not finish after EOF"
    server.connection_lost(None)
    await asyncio.sleep(0)
    if not task.cancelled():
        task.result()
    return bytes(transport.written), handler.delivered


def check_replies(written: bytes) -> None:
    assert not written or written.endswith(b"\r\n"), written[-80:]
    for line in written.split(b"\r\n")[:-1]:
        assert REPLY_LINE.match(line), line


def run_protocol(pieces: List[bytes], config: Config) -> Tuple[bytes, List[bytes]]:
    mail_log = logging.getLogger("mail.log")
    saved = mail_log.level, mail_log.propagate
    mail_log.setLevel(logging.ERROR)
    mail_log.propagate = False
    mail_log.addHandler(_errors)
    del _errors.records[:]
    loop = asyncio.new_event_loop()
    try:
        written, delivered = loop.run_until_complete(_session(pieces, config))
    finally:
        loop.close()
        mail_log.removeHandler(_errors)
        mail_log.setLevel(saved[0])
        mail_log.propagate = saved[1]
    assert not _errors.records, [r.getMessage() for r in _errors.records] + [str(r.exc_info) for r in _errors.records]
    check_replies(written)
    if not config.chunking:
        assert len(delivered) <= written.count(b"354 "), (len(delivered), written)
    if config.bare_newline != "accept":
        for message in delivered:
            assert not has_bare_newline(message), message
    return written, delivered


# -- entry points ----------------------------------------------------------------


def check_one(data: bytes) -> None:
    """Assert every invariant for one fuzz input (see the module docstring)."""
    config = parse_header(data[:HEADER])
    payload = data[HEADER:]
    ways = splits(payload, config.split_seed)
    reference = run_framer(ways[0], config)
    for pieces in ways[1:]:
        assert run_framer(pieces, config, grammar=False) == reference, pieces
    if config.protocol:
        whole = run_protocol(ways[0], config)
        assert run_protocol(ways[1], config) == whole


def main() -> None:
    import atheris

    import smtpd_compat.modern.smtp  # noqa: F401  (loaded now so it is instrumented)

    # Everything loaded: the engine, the protocol, and the stdlib address
    # parser that grammar.get_address delegates to.
    atheris.instrument_all()
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
