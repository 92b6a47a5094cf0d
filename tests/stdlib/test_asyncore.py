"""smtpd_compat.asyncore against real sockets; where cheap, the same scenario also runs on
Python 3.11's own asyncore (``impl`` = "stdlib") and must give the same results."""
from __future__ import annotations

import errno
import os
import re
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from types import ModuleType
from typing import Any, Callable, Dict, List, Tuple

import pytest

from smtpd_compat import asyncore as ours

Trace = List[Tuple[str, ...]]


@pytest.fixture(params=["ours", "stdlib"])
def impl(request: pytest.FixtureRequest, stdlib_module: Callable[[str], ModuleType]) -> ModuleType:
    if request.param == "ours":
        return ours
    return stdlib_module("asyncore")


@pytest.fixture
def channel_map() -> Any:
    """A private socket map, closed after the test so no descriptor leaks between tests."""
    sockets: Dict[int, Any] = {}
    yield sockets
    for channel in list(sockets.values()):
        channel.socket.close()


def make_listener(impl: ModuleType, channel_map: Dict[int, Any], handler_cls: Any) -> Any:
    class Listener(impl.dispatcher):
        def handle_accepted(self, sock: socket.socket, addr: Any) -> None:
            handler_cls(sock, map=channel_map)

    listener = Listener(map=channel_map)
    listener.create_socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.set_reuse_addr()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    return listener


def run_until(impl: ModuleType, channel_map: Dict[int, Any], done: Callable[[], bool], use_poll: bool = False) -> None:
    for _ in range(500):
        if done():
            return
        impl.loop(timeout=0.05, use_poll=use_poll, map=channel_map, count=1)
    raise AssertionError("condition not reached")


# -- a full client/server exchange --------------------------------------------------------


@pytest.mark.parametrize("use_poll", [False, True], ids=["poll", "poll2"])
def test_echo_client_and_server(impl: ModuleType, channel_map: Dict[int, Any], use_poll: bool) -> None:
    payload = b"".join(b"line %d\r\n" % i for i in range(20000))  # larger than one socket buffer
    events: List[str] = []

    class Echo(impl.dispatcher_with_send):
        def handle_read(self) -> None:
            data = self.recv(8192)
            if data:
                self.send(data)

        def handle_close(self) -> None:
            events.append("server close")
            self.close()

    class Client(impl.dispatcher_with_send):
        received = b""

        def handle_connect(self) -> None:
            events.append("connect")
            self.send(payload)

        def handle_read(self) -> None:
            self.received += self.recv(8192)
            if len(self.received) == len(payload):
                self.close()

    listener = make_listener(impl, channel_map, Echo)
    client = Client(map=channel_map)
    client.create_socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect(listener.socket.getsockname())
    run_until(impl, channel_map, lambda: client.socket.fileno() == -1 and "server close" in events, use_poll)

    assert client.received == payload
    assert events == ["connect", "server close"]
    assert list(channel_map.values()) == [listener]
    assert client.connected is False and client.connecting is False


def test_connection_refused_is_reported_through_handle_error(
    impl: ModuleType, channel_map: Dict[int, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    closed_port_holder = socket.socket()
    closed_port_holder.bind(("127.0.0.1", 0))
    address = closed_port_holder.getsockname()
    closed_port_holder.close()
    calls: List[str] = []

    class Client(impl.dispatcher):
        def handle_connect(self) -> None:
            calls.append("connect")

        def handle_close(self) -> None:
            calls.append("close")
            self.close()

    client = Client(map=channel_map)
    client.create_socket()
    client.connect(address)
    run_until(impl, channel_map, lambda: not channel_map)

    assert calls == ["close"]
    out = capsys.readouterr().out
    assert re.fullmatch(
        r"error: uncaptured python exception, closing channel <\S+\.Client %s:%d at 0x[0-9a-f]+> "
        r"\(<class 'ConnectionRefusedError'>:\[Errno %d\] Connection refused (\[[^]]+\|[^]]+\|\d+\] ?)+\)\n"
        % (re.escape(address[0]), address[1], errno.ECONNREFUSED),
        out,
    ), out


# -- what one pass of the loop does --------------------------------------------------------


def make_recorder(impl: ModuleType, trace: Trace, name: str, sock: socket.socket, channel_map: Dict[int, Any]) -> Any:
    class Recorder(impl.dispatcher):
        def readable(self) -> bool:
            trace.append(("readable?", name))
            return True

        def writable(self) -> bool:
            trace.append(("writable?", name))
            return True

        def handle_read(self) -> None:
            trace.append(("read", name, self.recv(100).decode()))

        def handle_write(self) -> None:
            trace.append(("write", name))

        def handle_expt(self) -> None:
            trace.append(("expt", name))

    return Recorder(sock, map=channel_map)


@pytest.mark.parametrize(
    "use_poll, expected_events",
    [
        (False, [("read", "a", "x"), ("read", "b", "y"), ("write", "a"), ("write", "b")]),
        (True, [("read", "a", "x"), ("write", "a"), ("read", "b", "y"), ("write", "b")]),
    ],
    ids=["poll groups by event kind", "poll2 groups by channel"],
)
def test_dispatch_order_of_one_pass(
    impl: ModuleType, channel_map: Dict[int, Any], use_poll: bool, expected_events: Trace
) -> None:
    trace: Trace = []
    a_end, a_peer = socket.socketpair()
    b_end, b_peer = socket.socketpair()
    with a_peer, b_peer:
        make_recorder(impl, trace, "a", a_end, channel_map)
        make_recorder(impl, trace, "b", b_end, channel_map)
        a_peer.send(b"x")
        b_peer.send(b"y")
        impl.loop(timeout=1, use_poll=use_poll, map=channel_map, count=1)
    queries = [("readable?", "a"), ("writable?", "a"), ("readable?", "b"), ("writable?", "b")]
    if not hasattr(select, "poll"):  # Windows: loop(use_poll=True) runs poll(), as the stdlib's did
        expected_events = sorted(expected_events, key=lambda event: event[0] == "write")
    assert trace == queries + expected_events


@pytest.mark.parametrize("use_poll", [False, True], ids=["poll", "poll2"])
def test_loop_count_runs_that_many_passes_and_asks_every_time(
    impl: ModuleType, channel_map: Dict[int, Any], use_poll: bool
) -> None:
    trace: Trace = []
    end, peer = socket.socketpair()
    with peer:
        make_recorder(impl, trace, "a", end, channel_map)
        impl.loop(timeout=1, use_poll=use_poll, map=channel_map, count=3)
    assert trace == [("readable?", "a"), ("writable?", "a"), ("write", "a")] * 3


def test_listening_socket_is_never_offered_for_writing(impl: ModuleType, channel_map: Dict[int, Any]) -> None:
    writes: List[str] = []

    class Listener(impl.dispatcher):
        def handle_write(self) -> None:
            writes.append("write")

    listener = Listener(map=channel_map)
    listener.create_socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    for use_poll in (False, True):
        impl.loop(timeout=0.01, use_poll=use_poll, map=channel_map, count=2)
    assert writes == []
    assert listener.accepting is True


@pytest.mark.parametrize("use_poll", [False, True], ids=["poll", "poll2"])
def test_out_of_band_data_calls_handle_expt(impl: ModuleType, channel_map: Dict[int, Any], use_poll: bool) -> None:
    trace: Trace = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname())
        receiver, _ = server.accept()
    with sender:
        make_recorder(impl, trace, "r", receiver, channel_map)
        sender.send(b"!", socket.MSG_OOB)
        time.sleep(0.05)  # let the urgent byte cross loopback before the single pass
        impl.loop(timeout=1, use_poll=use_poll, map=channel_map, count=1)
    assert ("expt", "r") in trace
    assert not any(event[0] == "read" for event in trace)


def test_poll_with_nothing_to_wait_for_just_sleeps(impl: ModuleType, channel_map: Dict[int, Any]) -> None:
    calls: List[str] = []

    class Idle(impl.dispatcher):
        def readable(self) -> bool:
            calls.append("readable?")
            return False

        def writable(self) -> bool:
            calls.append("writable?")
            return False

    end, peer = socket.socketpair()
    with peer:
        peer.send(b"ignored")
        Idle(end, map=channel_map)
        started = time.monotonic()
        impl.poll(0.1, channel_map)
        assert time.monotonic() - started >= 0.09
    assert calls == ["readable?", "writable?"]


# -- errors and shutdown ------------------------------------------------------------------


@pytest.mark.parametrize("exc_type", [lambda impl: impl.ExitNow, lambda impl: KeyboardInterrupt])
def test_loop_lets_exitnow_and_keyboardinterrupt_through(
    impl: ModuleType, channel_map: Dict[int, Any], exc_type: Callable[[ModuleType], type]
) -> None:
    stop = exc_type(impl)

    class Stopper(impl.dispatcher):
        def handle_write(self) -> None:
            raise stop("stop")

        def handle_error(self) -> None:
            raise AssertionError("must not be called")

    end, peer = socket.socketpair()
    with peer:
        Stopper(end, map=channel_map)
        with pytest.raises(stop):
            impl.loop(timeout=1, map=channel_map, count=1)


def test_handle_error_logs_compact_traceback_and_closes(
    impl: ModuleType, channel_map: Dict[int, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    class Faulty(impl.dispatcher):
        def writable(self) -> bool:
            return False

        def handle_read(self) -> None:
            1 / 0

    end, peer = socket.socketpair()
    with peer:
        channel = Faulty(end, map=channel_map)
        peer.send(b"x")
        impl.loop(timeout=1, map=channel_map, count=1)
    out = capsys.readouterr().out
    assert out.startswith("error: uncaptured python exception, closing channel <")
    assert "(<class 'ZeroDivisionError'>:division by zero [" in out
    assert "|handle_read|" in out
    assert out.count("\n") == 1  # handle_close()'s "unhandled close event" is a 'warning': ignored
    assert channel_map == {}
    assert channel.socket.fileno() == -1


def test_compact_traceback_matches_stdlib(impl: ModuleType) -> None:
    def innermost() -> None:
        raise ValueError("boom")

    try:
        innermost()
    except ValueError:
        (file, function, line), exc_type, exc_value, info = impl.compact_traceback()
    assert (file, function) == (__file__, "innermost")
    assert int(line) == innermost.__code__.co_firstlineno + 1
    assert exc_type is ValueError and str(exc_value) == "boom"
    assert info == "[%s|test_compact_traceback_matches_stdlib|%d] [%s|innermost|%s]" % (
        __file__,
        int(line) + 3,
        __file__,
        line,
    )


def test_compact_traceback_without_exception_is_an_assertion_error(impl: ModuleType) -> None:
    with pytest.raises(AssertionError):
        impl.compact_traceback()


def test_close_all_closes_every_channel_and_clears_the_map(impl: ModuleType) -> None:
    channel_map: Dict[int, Any] = {}
    pairs = [socket.socketpair() for _ in range(3)]
    channels = [impl.dispatcher(end, map=channel_map) for end, _ in pairs]
    impl.close_all(channel_map)
    assert channel_map == {}
    assert all(channel.socket.fileno() == -1 for channel in channels)
    for _, peer in pairs:
        assert peer.recv(1) == b""  # the peer sees end-of-file
        peer.close()


@pytest.mark.parametrize(
    "failure, ignore_all, propagates",
    [
        (OSError(errno.EBADF, "bad fd"), False, False),
        (OSError(errno.EIO, "io"), False, True),
        (OSError(errno.EIO, "io"), True, False),
        (RuntimeError("bug"), False, True),
        (RuntimeError("bug"), True, False),
    ],
)
def test_close_all_failures(impl: ModuleType, failure: BaseException, ignore_all: bool, propagates: bool) -> None:
    class Failing(impl.dispatcher):
        def close(self) -> None:
            impl.dispatcher.close(self)
            raise failure

    channel_map: Dict[int, Any] = {}
    end, peer = socket.socketpair()
    with peer:
        Failing(end, map=channel_map)
        if propagates:
            with pytest.raises(type(failure)):
                impl.close_all(channel_map, ignore_all=ignore_all)
        else:
            impl.close_all(channel_map, ignore_all=ignore_all)
            assert channel_map == {}


@pytest.mark.parametrize("use_poll", [False, True], ids=["poll", "poll2"])
def test_close_all_from_another_thread_ends_a_long_wait(use_poll: bool) -> None:
    channel_map: Dict[int, Any] = {}
    listener = ours.dispatcher(map=channel_map)
    listener.create_socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    end, peer = socket.socketpair()
    ours.dispatcher(end, map=channel_map)
    failures: List[BaseException] = []

    def serve() -> None:
        try:
            ours.loop(timeout=30.0, use_poll=use_poll, map=channel_map)
        except BaseException as exc:  # reported to the main thread below
            failures.append(exc)

    runner = threading.Thread(target=serve, daemon=True)
    runner.start()
    time.sleep(0.1)  # let the loop enter its wait
    listener.close()
    ours.close_all(channel_map)
    runner.join(5)  # far below the 30 s poll timeout
    peer.close()
    assert not runner.is_alive()
    assert failures == []


@pytest.mark.parametrize("use_poll", [False, True], ids=["poll", "poll2"])
def test_descriptor_closed_behind_asyncores_back_gets_handle_close(use_poll: bool) -> None:
    closes: List[str] = []

    class Channel(ours.dispatcher):
        def handle_close(self) -> None:
            closes.append("close")
            self.close()

    channel_map: Dict[int, Any] = {}
    end, peer = socket.socketpair()
    with peer:
        Channel(end, map=channel_map)
        end.close()  # the fd is gone but the map still lists it
        ours.loop(timeout=1, use_poll=use_poll, map=channel_map, count=1)
    assert closes == ["close"]
    assert channel_map == {}


# -- many descriptors ---------------------------------------------------------------------

PAIRS_PAST_FD_SETSIZE = 1100  # 2200 descriptors: well past select()'s limit of 1024


@pytest.fixture
def enough_descriptors() -> None:
    needed = 2 * PAIRS_PAST_FD_SETSIZE + 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip("RLIMIT_NOFILE hard limit %d is below %d" % (hard, needed))
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def make_pair_echo(impl: ModuleType, channel_map: Dict[int, Any]) -> Tuple[Any, Any]:
    class Echo(impl.dispatcher_with_send):
        def handle_read(self) -> None:
            data = self.recv(64)
            if data:
                self.send(data)

    class Client(impl.dispatcher_with_send):
        reply = b""

        def handle_read(self) -> None:
            self.reply += self.recv(64)
            self.close()

    server_end, client_end = socket.socketpair()
    Echo(server_end, map=channel_map)
    client = Client(client_end, map=channel_map)
    return client, server_end


@pytest.mark.skipif(not hasattr(select, "poll"), reason="select(), the fallback without poll(), stops at FD_SETSIZE")
@pytest.mark.usefixtures("enough_descriptors")
@pytest.mark.parametrize("use_poll", [False, True], ids=["poll", "poll2"])
def test_more_than_fd_setsize_sockets_in_one_map(use_poll: bool) -> None:
    channel_map: Dict[int, Any] = {}
    clients = [make_pair_echo(ours, channel_map)[0] for _ in range(PAIRS_PAST_FD_SETSIZE)]
    try:
        assert max(channel_map) > 1024
        for number, client in enumerate(clients):
            client.send(b"%d" % number)
        ours.loop(timeout=1, use_poll=use_poll, map=channel_map, count=50)
        assert [client.reply for client in clients] == [b"%d" % n for n in range(PAIRS_PAST_FD_SETSIZE)]
    finally:
        ours.close_all(channel_map)


@pytest.mark.usefixtures("enough_descriptors")
def test_stdlib_select_poll_fails_where_ours_works(stdlib_module: Callable[[str], ModuleType]) -> None:
    stdlib = stdlib_module("asyncore")
    channel_map: Dict[int, Any] = {}
    try:
        for _ in range(PAIRS_PAST_FD_SETSIZE):
            make_pair_echo(stdlib, channel_map)
        with pytest.raises(ValueError, match="filedescriptor out of range"):
            stdlib.poll(0, channel_map)
    finally:
        stdlib.close_all(channel_map)


# -- dispatcher details -------------------------------------------------------------------


def test_dispatcher_state_from_given_sockets(impl: ModuleType, channel_map: Dict[int, Any]) -> None:
    end, peer = socket.socketpair()
    with peer:
        connected = impl.dispatcher(end, map=channel_map)
        assert connected.connected is True
        assert connected.addr == peer.getsockname()
        assert end.getblocking() is False
        assert channel_map[end.fileno()] is connected

    fresh = socket.socket()
    unconnected = impl.dispatcher(fresh, map=channel_map)
    assert unconnected.connected is False
    assert unconnected.addr is None

    nothing = impl.dispatcher(map=channel_map)
    assert nothing.socket is None and nothing.connected is False


def test_repr_shapes(impl: ModuleType, channel_map: Dict[int, Any]) -> None:
    listener = impl.dispatcher(map=channel_map)
    listener.create_socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    # Both read "asyncore.dispatcher", ours too: it stands in for the stdlib module.
    assert re.fullmatch(r"<asyncore\.dispatcher listening 127\.0\.0\.1:0 at 0x[0-9a-f]+>", repr(listener))
    unix_end, unix_peer = socket.socketpair(socket.AF_UNIX)
    with unix_peer:
        channel = impl.dispatcher(unix_end, map=channel_map)
        assert re.fullmatch(r"<\S+\.dispatcher connected '' at 0x[0-9a-f]+>", repr(channel))
    assert re.fullmatch(r"<\S+\.dispatcher at 0x[0-9a-f]+>", repr(impl.dispatcher(map={})))


def test_set_reuse_addr(impl: ModuleType, channel_map: Dict[int, Any]) -> None:
    channel = impl.dispatcher(map=channel_map)
    channel.create_socket()
    assert channel.family_and_type == (socket.AF_INET, socket.SOCK_STREAM)
    channel.set_reuse_addr()
    assert channel.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0


def test_send_and_recv_turn_a_gone_peer_into_handle_close(impl: ModuleType, channel_map: Dict[int, Any]) -> None:
    closes: List[str] = []

    class Channel(impl.dispatcher):
        def handle_close(self) -> None:
            closes.append("close")

    end, peer = socket.socketpair()
    channel = Channel(end, map=channel_map)
    peer.close()
    assert channel.recv(10) == b""
    assert channel.send(b"x") == 0
    assert closes == ["close", "close"]


def test_recv_with_no_data_raises_blockingioerror(impl: ModuleType, channel_map: Dict[int, Any]) -> None:
    end, peer = socket.socketpair()
    with peer:
        channel = impl.dispatcher(end, map=channel_map)
        with pytest.raises(BlockingIOError):
            channel.recv(10)


def test_send_on_full_buffer_returns_zero(impl: ModuleType, channel_map: Dict[int, Any]) -> None:
    end, peer = socket.socketpair()
    with peer:
        channel = impl.dispatcher(end, map=channel_map)
        while channel.send(b"x" * 65536):
            pass
        assert channel.send(b"more") == 0


def test_dispatcher_with_send_buffers_what_cannot_go_out_yet(impl: ModuleType, channel_map: Dict[int, Any]) -> None:
    end, peer = socket.socketpair()
    with peer:
        peer.settimeout(5)
        channel = impl.dispatcher_with_send(end, map=channel_map)
        data = os.urandom(4 * 1024 * 1024)
        channel.send(data)
        assert 0 < len(channel.out_buffer) < len(data)
        assert channel.writable()
        received = b""
        while len(received) < len(data):
            impl.loop(timeout=0.1, map=channel_map, count=1)
            received += peer.recv(1 << 20)
        assert received == data
        assert not channel.writable()


def test_log_and_log_info(impl: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    channel = impl.dispatcher(map={})
    channel.log("hit")
    channel.log_info("hello")
    channel.log_info("ignored by default", "warning")
    channel.ignore_log_types = frozenset()
    channel.log_info("now shown", "warning")
    captured = capsys.readouterr()
    assert captured.err == "log: hit\n"
    assert captured.out == "info: hello\nwarning: now shown\n"


def test_default_accept_handler_closes_the_connection(
    impl: ModuleType, channel_map: Dict[int, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    listener = impl.dispatcher(map=channel_map)
    listener.create_socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    assert listener.accept() is None  # nobody waiting
    with socket.create_connection(listener.socket.getsockname()) as client:
        client.settimeout(5)
        impl.loop(timeout=1, map=channel_map, count=1)
        assert client.recv(1) == b""
    assert capsys.readouterr().out == ""  # the "unhandled accepted event" warning is ignored by default


def test_file_dispatcher_reads_a_pipe(impl: ModuleType, channel_map: Dict[int, Any]) -> None:
    chunks: List[bytes] = []

    class PipeReader(impl.file_dispatcher):
        def writable(self) -> bool:
            return False

        def handle_read(self) -> None:
            chunks.append(self.recv(100))

        def handle_close(self) -> None:
            self.close()

    read_fd, write_fd = os.pipe()
    reader = PipeReader(read_fd, map=channel_map)
    os.close(read_fd)  # the dispatcher holds its own duplicate
    assert reader.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    with pytest.raises(NotImplementedError):
        reader.socket.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    os.write(write_fd, b"through the pipe")
    os.close(write_fd)
    run_until(impl, channel_map, lambda: not channel_map)
    assert chunks == [b"through the pipe", b""]  # b"": end of file, which closed the channel


def test_unclosed_file_wrapper_warns(impl: ModuleType) -> None:
    read_fd, write_fd = os.pipe()
    try:
        wrapper = impl.file_wrapper(read_fd)
        with pytest.warns(ResourceWarning):
            del wrapper
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_import_emits_no_deprecation_warning() -> None:
    code = "import smtpd_compat.asyncore, smtpd_compat.asynchat"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr


def test_poll3_is_poll2() -> None:
    assert ours.poll3 is ours.poll2
