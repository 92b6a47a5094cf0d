"""smtpd_compat.asynchat: terminator handling driven by scripted reads (compared with Python
3.11's asynchat where available, property-tested with hypothesis) and output queues over
real sockets."""
from __future__ import annotations

import socket
from types import ModuleType
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpd_compat import asynchat as ours

Event = Tuple[str, Any]
Terminator = Union[bytes, int, None]


@pytest.fixture(params=["ours", "stdlib"])
def impl(request: pytest.FixtureRequest, stdlib_module: Callable[[str], ModuleType]) -> ModuleType:
    if request.param == "ours":
        return ours
    return stdlib_module("asynchat")


def scripted_reader(impl: ModuleType, chunks: Sequence[bytes], terminators: Sequence[Terminator]) -> Any:
    """An async_chat with no socket whose recv() returns ``chunks`` one per handle_read();
    it records every callback and switches to the next of ``terminators`` at each record end."""

    class Reader(impl.async_chat):
        def __init__(self) -> None:
            super().__init__(map={})
            self.events: List[Event] = []
            self.pending = list(chunks)
            self.next_terminators = list(terminators)
            self.set_terminator(self.next_terminators.pop(0))

        def recv(self, buffer_size: int) -> bytes:
            return self.pending.pop(0)

        def collect_incoming_data(self, data: bytes) -> None:
            self.events.append(("data", data))

        def found_terminator(self) -> None:
            self.events.append(("end", self.get_terminator()))
            if self.next_terminators:
                self.set_terminator(self.next_terminators.pop(0))

        def feed_all(self) -> List[Event]:
            while self.pending:
                self.handle_read()
            return self.events

    return Reader()


# -- terminators --------------------------------------------------------------------------


def test_terminator_split_across_reads(impl: ModuleType) -> None:
    reader = scripted_reader(impl, [b"HELO a\r", b"\nMAIL FROM:<x>\r\nRCPT", b" TO:<y>\r\n"], [b"\r\n"])
    assert reader.feed_all() == [
        ("data", b"HELO a"),
        ("end", b"\r\n"),
        ("data", b"MAIL FROM:<x>"),
        ("end", b"\r\n"),
        ("data", b"RCPT"),
        ("data", b" TO:<y>"),
        ("end", b"\r\n"),
    ]
    assert reader.ac_in_buffer == b""


def test_long_terminator_prefix_is_held_back(impl: ModuleType) -> None:
    reader = scripted_reader(impl, [b"body\r\n", b".", b"\r", b"\nQUIT\r\n"], [b"\r\n.\r\n", b"\r\n"])
    assert reader.feed_all() == [
        ("data", b"body"),
        ("end", b"\r\n.\r\n"),
        ("data", b"QUIT"),
        ("end", b"\r\n"),
    ]


def test_false_prefix_is_released_as_data(impl: ModuleType) -> None:
    reader = scripted_reader(impl, [b"a\r\n", b"b\r\n.x"], [b"\r\n.\r\n"])
    assert reader.feed_all() == [("data", b"a"), ("data", b"\r\nb\r\n.x")]


def test_empty_record_reports_no_data(impl: ModuleType) -> None:
    reader = scripted_reader(impl, [b"\r\n\r\nx\r\n"], [b"\r\n"])
    assert reader.feed_all() == [("end", b"\r\n"), ("end", b"\r\n"), ("data", b"x"), ("end", b"\r\n")]


def test_integer_terminator_counts_bytes_across_reads(impl: ModuleType) -> None:
    reader = scripted_reader(impl, [b"ab", b"cdefg"], [5])
    assert reader.feed_all() == [("data", b"ab"), ("data", b"cde"), ("end", 0), ("data", b"fg")]
    assert reader.get_terminator() == 0  # a used-up count then collects everything


def test_integer_terminator_then_line_terminator(impl: ModuleType) -> None:
    reader = scripted_reader(impl, [b"3\r\nxyzREST\r\n"], [b"\r\n", 3, b"\r\n"])
    assert reader.feed_all() == [
        ("data", b"3"),
        ("end", b"\r\n"),
        ("data", b"xyz"),
        ("end", 0),
        ("data", b"REST"),
        ("end", b"\r\n"),
    ]


def test_none_terminator_collects_everything(impl: ModuleType) -> None:
    reader = scripted_reader(impl, [b"no\r\nend", b" here"], [None])
    assert reader.feed_all() == [("data", b"no\r\nend"), ("data", b" here")]


def test_set_terminator_rules(impl: ModuleType) -> None:
    reader = scripted_reader(impl, [], [b"\r\n"])
    with pytest.raises(ValueError):
        reader.set_terminator(-1)
    reader.set_terminator("\r\n")
    assert reader.get_terminator() == "\r\n"  # str is kept as is unless use_encoding is on
    reader.use_encoding = 1
    reader.set_terminator("\xe9\r\n")
    assert reader.get_terminator() == b"\xe9\r\n"  # encoded with .encoding (latin-1)


def test_recv_errors_in_handle_read(impl: ModuleType) -> None:
    errors: List[str] = []

    class Reader(impl.async_chat):
        failure: BaseException = BlockingIOError()

        def recv(self, buffer_size: int) -> bytes:
            raise self.failure

        def handle_error(self) -> None:
            errors.append(type(self.failure).__name__)

    reader = Reader(map={})
    reader.set_terminator(b"\n")
    reader.handle_read()  # would block: silently nothing
    reader.failure = ConnectionResetError()
    reader.handle_read()
    assert errors == ["ConnectionResetError"]


def test_default_callbacks_must_be_overridden(impl: ModuleType) -> None:
    chat = impl.async_chat(map={})
    with pytest.raises(NotImplementedError):
        chat.collect_incoming_data(b"x")
    with pytest.raises(NotImplementedError):
        chat.found_terminator()


def test_private_collect_and_get_data(impl: ModuleType) -> None:
    chat = impl.async_chat(map={})
    chat._collect_incoming_data(b"ab")
    chat._collect_incoming_data(b"cd")
    assert chat._get_data() == b"abcd"
    assert chat.incoming == []


def records_of(stream: bytes, terminator: bytes) -> List[bytes]:
    """What a correct reader reports for ``stream``: each complete record, without the partial tail."""
    return stream.split(terminator)[:-1]


def split_at(data: bytes, cuts: List[int]) -> List[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])] or [b""]


@settings(max_examples=300, deadline=None)
@given(
    stream=st.binary(min_size=0, max_size=60).map(lambda raw: bytes(b"ab\r\n."[byte % 5] for byte in raw)),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8),
    terminator=st.sampled_from([b"\r\n", b"\r\n.\r\n", b".", b"aa"]),
)
def test_records_do_not_depend_on_how_reads_split_the_stream(stream: bytes, cuts: List[int], terminator: bytes) -> None:
    reader = scripted_reader(ours, split_at(stream, cuts), [terminator])
    records: List[bytes] = []
    current = b""
    for kind, value in reader.feed_all():
        if kind == "data":
            assert value != b""
            current += value
        else:
            records.append(current)
            current = b""
    assert records == records_of(stream, terminator)
    # what is neither reported nor held back is lost: nothing may be
    assert b"".join(r + terminator for r in records) + current + reader.ac_in_buffer == stream


def test_scripted_reads_match_stdlib_exactly(stdlib_module: Callable[[str], ModuleType]) -> None:
    stdlib = stdlib_module("asynchat")

    @settings(max_examples=300, deadline=None)
    @given(
        stream=st.binary(max_size=60).map(lambda raw: bytes(b"ab\r\n.3"[byte % 6] for byte in raw)),
        cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8),
        terminators=st.lists(st.sampled_from([b"\r\n", b"\r\n.\r\n", b"a", 0, 1, 3, None]), min_size=1, max_size=6),
    )
    def same_callbacks(stream: bytes, cuts: List[int], terminators: List[Terminator]) -> None:
        chunks = split_at(stream, cuts)
        mine = scripted_reader(ours, chunks, terminators)
        theirs = scripted_reader(stdlib, chunks, terminators)
        assert mine.feed_all() == theirs.feed_all()
        assert (mine.ac_in_buffer, mine.get_terminator()) == (theirs.ac_in_buffer, theirs.get_terminator())

    same_callbacks()


def test_find_prefix_at_end(impl: ModuleType) -> None:
    assert impl.find_prefix_at_end(b"qwerty\r", b"\r\n") == 1
    assert impl.find_prefix_at_end(b"qwertydkjf", b"\r\n") == 0
    assert impl.find_prefix_at_end(b"data\r\n.", b"\r\n.\r\n") == 3
    assert impl.find_prefix_at_end(b"", b"\r\n") == 0


# -- output over real sockets -------------------------------------------------------------


@pytest.fixture
def connected_chat(impl: ModuleType) -> Any:
    """(chat, peer, map, impl): an async_chat on one end of a socketpair, a blocking socket on the other."""
    end, peer = socket.socketpair()
    peer.settimeout(5)
    channel_map: Dict[int, Any] = {}

    class Upper(impl.async_chat):
        """Answers every line with its upper-case version: a minimal line protocol."""

        def __init__(self, sock: socket.socket) -> None:
            super().__init__(sock, map=channel_map)
            self.set_terminator(b"\r\n")
            self.lines: List[bytes] = []

        def collect_incoming_data(self, data: bytes) -> None:
            self._collect_incoming_data(data)

        def found_terminator(self) -> None:
            line = self._get_data()
            self.lines.append(line)
            self.push(line.upper() + b"\r\n")

    chat = Upper(end)
    yield chat, peer, channel_map, impl
    peer.close()
    end.close()


def collect_output(impl: ModuleType, channel_map: Dict[int, Any], peer: socket.socket, size: int) -> bytes:
    """Run loop passes, reading what the channel sends (a peer that does not read stalls it),
    until ``size`` bytes arrived or the channel closed."""
    received = b""
    for _ in range(1000):
        impl.asyncore.loop(timeout=0.05, map=channel_map, count=1)
        try:
            chunk = peer.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        received += chunk
        if not chunk or len(received) >= size:
            return received
    raise AssertionError("only %d of %d bytes arrived" % (len(received), size))


def test_line_protocol_over_a_socket(connected_chat: Any) -> None:
    chat, peer, channel_map, impl = connected_chat
    peer.sendall(b"hello\r\nwor")
    impl.asyncore.loop(timeout=1, map=channel_map, count=1)
    peer.sendall(b"ld\r\n")
    assert collect_output(impl, channel_map, peer, 14) == b"HELLO\r\nWORLD\r\n"
    assert chat.lines == [b"hello", b"world"]


def test_push_splits_large_data_into_out_buffer_chunks(connected_chat: Any) -> None:
    chat, peer, channel_map, impl = connected_chat
    chat.ac_out_buffer_size = 4
    chat.connected = False  # hold output in the queue to look at it
    chat.push(b"0123456789")
    assert list(chat.producer_fifo) == [b"0123", b"4567", b"89"]
    chat.connected = True
    assert collect_output(impl, channel_map, peer, 10) == b"0123456789"
    assert not chat.writable()


def test_initiate_send_sends_at_most_once_per_call(connected_chat: Any) -> None:
    chat, peer, channel_map, impl = connected_chat
    chat.connected = False
    chat.push(b"one")
    chat.push(b"two")
    chat.connected = True
    chat.initiate_send()
    assert list(chat.producer_fifo) == [b"two"]
    chat.initiate_send()
    assert not chat.producer_fifo
    assert peer.recv(6) == b"onetwo"


def test_push_with_producer(connected_chat: Any) -> None:
    chat, peer, channel_map, impl = connected_chat
    data = bytes(range(256)) * 40
    chat.push_with_producer(impl.simple_producer(data, buffer_size=100))
    assert collect_output(impl, channel_map, peer, len(data)) == data
    impl.asyncore.loop(timeout=1, map=channel_map, count=1)  # finds the producer exhausted
    assert not chat.producer_fifo


def test_close_when_done_flushes_then_closes(connected_chat: Any) -> None:
    chat, peer, channel_map, impl = connected_chat
    chat.connected = False
    chat.push(b"221 Bye\r\n")
    chat.close_when_done()
    chat.connected = True
    assert collect_output(impl, channel_map, peer, 100) == b"221 Bye\r\n"
    assert peer.recv(1) == b""  # end of file
    assert channel_map == {}
    assert chat.connected is False


def test_push_rejects_text(connected_chat: Any) -> None:
    chat = connected_chat[0]
    with pytest.raises(TypeError):
        chat.push("text")


def test_push_accepts_bytearray_and_memoryview(connected_chat: Any) -> None:
    chat, peer, channel_map, impl = connected_chat
    chat.push(bytearray(b"ab"))
    chat.push(memoryview(b"cd"))
    assert collect_output(impl, channel_map, peer, 4) == b"abcd"


def test_discard_buffers(connected_chat: Any) -> None:
    chat = connected_chat[0]
    chat.connected = False
    chat.push(b"queued")
    chat.ac_in_buffer = b"partial"
    chat.incoming.append(b"collected")
    chat.discard_buffers()
    assert (chat.ac_in_buffer, chat.incoming, list(chat.producer_fifo)) == (b"", [], [])


def test_writable_and_readable(connected_chat: Any) -> None:
    chat = connected_chat[0]
    assert chat.readable()
    assert not chat.writable()
    chat.connected = False
    assert chat.writable()  # an unconnected channel waits for its connect event


def test_simple_producer_hands_out_pieces(impl: ModuleType) -> None:
    producer = impl.simple_producer(b"abcdefg", buffer_size=3)
    assert [producer.more() for _ in range(4)] == [b"abc", b"def", b"g", b""]


def test_encoding_defaults(impl: ModuleType) -> None:
    assert (impl.async_chat.ac_in_buffer_size, impl.async_chat.ac_out_buffer_size) == (65536, 65536)
    assert (impl.async_chat.use_encoding, impl.async_chat.encoding) == (0, "latin-1")


def test_async_chat_is_a_dispatcher_of_the_same_package() -> None:
    from smtpd_compat import asyncore

    assert issubclass(ours.async_chat, asyncore.dispatcher)
    assert ours.asyncore is asyncore

