"""Commands run inline from ``data_received`` (``smtpd_compat.modern.inline``)
behave as if the session's task ran them: the same task, the same context
variables, suspension and cancellation reaching the command, replies in order.

Each test holds on every Python: from 3.11 the commands run inline, before
that in the task; one test checks which path ran.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import sys
import threading
import time
from typing import Any, List, Optional, Tuple

import pytest

from smtpd_compat.modern.smtp import SMTP

from ._smtp_support import Client, Recorder, mail_transaction, serve

INLINE = sys.version_info >= (3, 11)
_seen: "contextvars.ContextVar[str]" = contextvars.ContextVar("seen", default="unset")


def _wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class TaskWitness(Recorder):
    """Records, per hook, whether it ran as the session's task, the context
    variable it found, and whether ``data_received`` is on the stack."""

    def __init__(self) -> None:
        super().__init__()
        self.facts: List[Tuple[str, bool, str, bool]] = []
        self.servers: List[Any] = []

    def _note(self, hook: str, server: Any) -> None:
        frame: Any = sys._getframe(1)
        from_callback = False
        while frame is not None:
            from_callback = from_callback or frame.f_code.co_name == "data_received"
            frame = frame.f_back
        self.servers.append(server)
        self.facts.append((hook, asyncio.current_task() is server._handler_coroutine, _seen.get(), from_callback))

    def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        self._note("MAIL", server)
        _seen.set("set by MAIL")
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        await asyncio.sleep(0.01)  # really suspends: the task takes over
        self._note("RCPT", server)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._note("DATA", server)
        return await super().handle_DATA(server, session, envelope)


def test_hooks_run_as_the_session_task_with_its_context() -> None:
    handler = TaskWitness()
    with serve(handler) as server, Client(server.port) as client:
        assert client.cmd("EHLO c.test").startswith(b"250")
        assert mail_transaction(client, b"Subject: 1\r\n\r\nbody\r\n") == b"250 OK\r\n"
        assert mail_transaction(client, b"Subject: 2\r\n\r\nbody\r\n") == b"250 OK\r\n"
    assert [fact[:3] for fact in handler.facts] == [
        ("MAIL", True, "unset"),
        ("RCPT", True, "set by MAIL"),
        ("DATA", True, "set by MAIL"),
        ("MAIL", True, "set by MAIL"),
        ("RCPT", True, "set by MAIL"),
        ("DATA", True, "set by MAIL"),
    ]
    # MAIL and DATA never wait: from 3.11 they run inside data_received; RCPT
    # slept, so the task finished it.
    assert [fact[3] for fact in handler.facts] == [INLINE, False, INLINE] * 2
    assert [d.content for d in handler.delivered] == [b"Subject: 1\r\n\r\nbody\r\n", b"Subject: 2\r\n\r\nbody\r\n"]


def test_pipelined_commands_across_a_suspending_hook_answer_in_order() -> None:
    handler = TaskWitness()
    with serve(handler) as server, Client(server.port) as client:
        assert client.cmd("EHLO c.test").startswith(b"250")
        client.send(
            b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nNOOP\r\nDATA\r\n"
            b"Subject: p\r\n\r\nhi\r\n.\r\nMAIL FROM:<d@x.test>\r\nQUIT\r\n"
        )
        replies = [client.reply() for _ in range(8)]
        assert client.rest() == b""
    assert replies == [
        b"250 OK\r\n", b"250 OK\r\n", b"250 OK\r\n", b"250 OK\r\n",
        b"354 End data with <CR><LF>.<CR><LF>\r\n", b"250 OK\r\n", b"250 OK\r\n", b"221 Bye\r\n",
    ]
    assert handler.delivered[0].rcpt_tos == ["b@x.test", "c@x.test"]


class TimeoutInHook(Recorder):
    """``asyncio.wait_for`` cancels the task running the hook: the command
    must be the task's by then."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        try:
            await asyncio.wait_for(asyncio.sleep(30), 0.05)
        except asyncio.TimeoutError:
            return "451 4.4.3 lookup timed out"
        return "250 OK"


def test_a_timeout_inside_a_hook_cancels_only_the_hook() -> None:
    with serve(TimeoutInHook()) as server, Client(server.port) as client:
        assert client.cmd("HELO c.test").startswith(b"250")
        assert client.cmd("MAIL FROM:<a@x.test>") == b"250 OK\r\n"
        assert client.cmd("RCPT TO:<b@x.test>") == b"451 4.4.3 lookup timed out\r\n"
        assert client.cmd("NOOP") == b"250 OK\r\n"  # the session goes on
        assert client.cmd("QUIT") == b"221 Bye\r\n"


class DataWatcher(SMTP):
    """Notes how each message read ended: its chunks, or the exception."""

    outcomes: List[str] = []
    sessions: List[Any] = []

    async def _read_message(self, size_limit: Optional[int], line_limit: Optional[int]) -> Any:
        self.sessions.append(self)
        try:
            chunks, end = await super()._read_message(size_limit, line_limit)
        except BaseException as error:
            self.outcomes.append(type(error).__name__)
            raise
        self.outcomes.append("ended" if end is not None else "input gone")
        return chunks, end


@pytest.fixture
def watcher() -> Any:
    DataWatcher.outcomes = []
    DataWatcher.sessions = []
    return DataWatcher


def _open_data(client: Client) -> None:
    assert client.cmd("HELO c.test").startswith(b"250")
    assert client.cmd("MAIL FROM:<a@x.test>") == b"250 OK\r\n"
    assert client.cmd("RCPT TO:<b@x.test>") == b"250 OK\r\n"
    assert client.cmd("DATA").startswith(b"354")
    client.send(b"Subject: half\r\n\r\nsome of it\r\n")


def test_input_ending_mid_message_ends_the_read_and_delivers_nothing(watcher: Any) -> None:
    handler = Recorder()
    with serve(handler, watcher) as server, Client(server.port) as client:
        _open_data(client)
        client.sock.shutdown(socket.SHUT_WR)
        assert client.rest() == b""  # the server closes; no reply to a message never ended
    _wait_until(lambda: watcher.outcomes)
    assert watcher.outcomes == ["input gone"]
    assert handler.delivered == []


def test_a_dropped_connection_mid_message_ends_the_session_task(watcher: Any) -> None:
    handler = Recorder()
    with serve(handler, watcher) as server:
        client = Client(server.port)
        _open_data(client)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # RST
        _wait_until(lambda: watcher.sessions and watcher.sessions[0]._handler_coroutine.done())
    assert watcher.outcomes in (["input gone"], ["CancelledError"])
    assert handler.delivered == []


def test_cancelling_the_session_task_mid_message_reaches_the_read(watcher: Any) -> None:
    handler = Recorder()
    with serve(handler, watcher) as server, Client(server.port) as client:
        _open_data(client)
        _wait_until(lambda: watcher.sessions)
        time.sleep(0.05)  # the body's first lines are in; the read waits for more
        task = watcher.sessions[0]._handler_coroutine
        server.loop.call_soon_threadsafe(task.cancel)
        _wait_until(task.done)
        assert task.cancelled()
    assert watcher.outcomes == ["CancelledError"]
    assert handler.delivered == []


def test_a_session_fed_from_inside_another_task_still_answers() -> None:
    """A test harness may call ``data_received`` from a coroutine: the
    session's task cannot be entered there, so it runs the command itself."""
    written: List[bytes] = []

    class Transport(asyncio.Transport):
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return ("127.0.0.1", 1) if name == "peername" else default

        def write(self, data: Any) -> None:
            written.append(bytes(data))

        def is_closing(self) -> bool:
            return False

    async def scenario() -> None:
        protocol = SMTP(Recorder(), hostname="mx.test", loop=asyncio.get_running_loop())
        protocol.connection_made(Transport())
        for _ in range(5):
            await asyncio.sleep(0)
        protocol.data_received(b"HELO c.test\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
        protocol.data_received(b"NOOP\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert written[1:] == [b"250 mx.test\r\n", b"250 OK\r\n"]


def test_many_sessions_at_once_each_get_their_own_replies() -> None:
    handler = Recorder()
    errors: List[BaseException] = []
    with serve(handler) as server:
        def one(n: int) -> None:
            try:
                with Client(server.port) as client:
                    assert client.cmd("HELO c.test").startswith(b"250")
                    for i in range(5):
                        body = f"Subject: {n}-{i}\r\n\r\n".encode()
                        assert mail_transaction(client, body, sender=f"<s{n}@x.test>") == b"250 OK\r\n"
                    assert client.cmd("QUIT") == b"221 Bye\r\n"
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert sorted((d.mail_from, d.content) for d in handler.delivered) == sorted(
        (f"s{n}@x.test", f"Subject: {n}-{i}\r\n\r\n".encode()) for n in range(8) for i in range(5)
    )
