"""aiosmtpd 1.4.6's override points, as packages built on it use them.

A ``Controller`` subclass with its own ``_run(ready_event)`` and
``_trigger_server()`` written the 1.4.6 way (smtpdfix's, for one), and an
``SMTP`` subclass doing its own STARTTLS with ``loop.start_tls()`` through
``_reader``/``_writer``/``_tls_protocol``, each against real sockets.
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
import threading
from contextlib import ExitStack
from typing import Any, List, Optional

import pytest

from smtpd_compat.modern.controller import Controller, get_localhost
from smtpd_compat.modern.handlers import Sink
from smtpd_compat.modern.smtp import SMTP, Envelope, Session, TLSSetupException, syntax

from ._extensions import Dialog, HookRecorder, serve
from ._periphery import CertPair, RecordingHandler, cert_pair, connection_refused, ehlo_in_last_handshake_flight  # noqa: F401

MESSAGE = "Subject: hi\n\nbody\n"


class Style146Controller(Controller):
    """``_run``/``_trigger_server`` as aiosmtpd 1.4.6 and smtpdfix write them
    (bound to port 0 here, so the port is read back before ready)."""

    triggered = 0

    def _run(self, ready_event: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.server_coro = self.loop.create_server(self._factory_invoker, host=self.hostname, port=self.port)
            self.server = self.loop.run_until_complete(self.server_coro)
        except Exception as error:
            self._thread_exception = error
            return
        self.port = self.server.sockets[0].getsockname()[1]
        self.loop.call_soon(ready_event.set)
        self.loop.run_forever()
        self.server.close()
        self.loop.run_until_complete(self.server.wait_closed())
        self.loop.close()
        self.server = None

    def _trigger_server(self) -> None:
        type(self).triggered += 1
        hostname = self.hostname or self._localhost
        with ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((hostname, self.port), 1.0))
            sock.recv(1024)


def send(controller: Controller) -> Any:
    with smtplib.SMTP(controller.hostname, controller.port, timeout=5) as client:
        return client.sendmail("a@example.com", ["b@example.com"], MESSAGE)


# -- Controller ---------------------------------------------------------------


def test_146_style_run_and_trigger_start_serve_and_stop() -> None:
    handler = RecordingHandler()
    loop = asyncio.new_event_loop()
    Style146Controller.triggered = 0
    controller = Style146Controller(handler, hostname="127.0.0.1", port=0, loop=loop)
    assert controller._localhost == get_localhost()
    controller.start()
    assert Style146Controller.triggered == 1  # start() used the override to make the factory run
    assert isinstance(controller.smtpd, SMTP)
    thread = controller._thread
    assert thread is not None and thread.is_alive()
    port = controller.port
    assert send(controller) == {}
    assert [e.content for e in handler.envelopes] == [MESSAGE.replace("\n", "\r\n").encode()]
    controller.stop()
    assert controller._thread is None and not thread.is_alive()
    assert loop.is_closed()  # its _run closed the loop, as in aiosmtpd
    assert connection_refused("127.0.0.1", port)


def test_146_style_run_with_the_default_trigger_needs_no_connection() -> None:
    class RunOnly(Style146Controller):
        def _trigger_server(self) -> None:
            # The port-0 workaround people wrote for aiosmtpd, then ours.
            super(Style146Controller, self)._trigger_server()

    controller = RunOnly(Sink(), hostname="127.0.0.1", port=0, loop=asyncio.new_event_loop())
    controller.start()
    try:
        assert isinstance(controller.smtpd, SMTP) and controller.smtpd.transport is None  # never connected
        assert send(controller) == {}
    finally:
        controller.stop()


def test_146_style_run_bind_error_raises_at_once() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        # A start() that waited out ready_timeout would trip pytest's timeout.
        controller = Style146Controller(
            Sink(), hostname="127.0.0.1", port=port, loop=asyncio.new_event_loop(), ready_timeout=600
        )
        with pytest.raises(OSError):
            controller.start()
    controller.stop()  # the failed start's thread is gone; stop() still works


def test_146_style_run_factory_error_raises_and_leaves_no_server() -> None:
    class Broken(Style146Controller):
        def factory(self) -> Any:
            raise FileNotFoundError("no certificate")

    controller = Broken(Sink(), hostname="127.0.0.1", port=0, loop=asyncio.new_event_loop())
    with pytest.raises(FileNotFoundError, match="no certificate"):
        controller.start()
    thread = controller._thread
    assert thread is not None and not thread.is_alive()  # start() ended its thread
    assert connection_refused("127.0.0.1", controller.port)


def test_stop_returns_and_warns_when_run_never_returns() -> None:
    stuck = threading.Event()

    class NeverReturns(Style146Controller):
        stop_timeout = 0.5

        def _run(self, ready_event: threading.Event) -> None:
            super()._run(ready_event)
            stuck.wait(60)  # e.g. a wait_closed() that never finishes

    controller = NeverReturns(Sink(), hostname="127.0.0.1", port=0, loop=asyncio.new_event_loop())
    controller.start()
    thread = controller._thread
    try:
        with pytest.warns(RuntimeWarning, match="did not end within 0.5 s"):
            controller.stop()
        assert controller._thread is None and thread is not None and thread.is_alive()
    finally:
        stuck.set()
        assert thread is not None
        thread.join(5)


def test_stop_calls_an_overridden_cancel_tasks_in_the_loop_thread() -> None:
    threads: List[threading.Thread] = []

    class Spy(Controller):
        def cancel_tasks(self, stop_loop: bool = True) -> None:
            threads.append(threading.current_thread())
            super().cancel_tasks(stop_loop)

    controller = Spy(Sink(), hostname="127.0.0.1", port=0)
    controller.start()
    server_thread = controller._thread
    assert send(controller) == {}
    controller.stop()
    assert threads == [server_thread]


def test_stop_returns_when_cancel_tasks_ignores_it() -> None:
    class Deaf(Controller):
        stop_timeout = 0.5

        def cancel_tasks(self, stop_loop: bool = True) -> None:
            pass

    controller = Deaf(Sink(), hostname="127.0.0.1", port=0)
    controller.start()
    loop = controller.loop
    with pytest.warns(RuntimeWarning, match="left running as a daemon thread"):
        controller.stop()
    # Let the abandoned thread go (the default cancel_tasks would have).
    loop.call_soon_threadsafe(loop.stop)


def test_default_path_never_calls_an_overridden_trigger() -> None:
    class NoSelfConnect(Controller):
        def _trigger_server(self) -> None:
            raise AssertionError("the built-in _run() makes the factory itself")

    with NoSelfConnect(Sink(), hostname="127.0.0.1", port=0) as controller:
        assert send(controller) == {}


# -- SMTP: a subclass's own STARTTLS ------------------------------------------


class OwnStartTLS(SMTP):
    """STARTTLS through loop.start_tls(), as smtpdfix's _SMTP does it."""

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: Optional[str]) -> None:
        if arg:
            await self.push("501 Syntax: STARTTLS")
            return
        if not self.tls_context:
            await self.push("454 TLS not available")
            return
        await self.push("220 Ready to start TLS")
        try:
            self._original_transport = self.transport
            new_transport = await self.loop.start_tls(
                transport=self.transport,  # type: ignore[arg-type]
                protocol=self,
                sslcontext=self.tls_context,
                server_side=True,
                ssl_handshake_timeout=5.0,
            )
            assert new_transport is not None
            self._reader._transport = new_transport
            self._writer._transport = new_transport
            self._tls_protocol = new_transport.get_protocol()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            raise TLSSetupException() from error


def accept_all(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> Any:
    from smtpd_compat.modern.smtp import AuthResult

    return AuthResult(success=True, auth_data=data)


class StartTLSHook(RecordingHandler):
    def __init__(self) -> None:
        super().__init__()
        self.starttls_sessions: List[Session] = []

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        self.starttls_sessions.append(session)
        return True


def test_own_starttls_with_smtplib(cert_pair: CertPair) -> None:
    handler = StartTLSHook()
    with serve(handler, OwnStartTLS, tls_context=cert_pair.server_context(), authenticator=accept_all) as server:
        with smtplib.SMTP("localhost", server.port, timeout=5) as client:
            client.ehlo("c.test")
            assert "auth" not in client.esmtp_features  # AUTH waits for TLS
            client.starttls(context=cert_pair.client_context())
            client.ehlo("c.test")
            assert "starttls" not in client.esmtp_features and "auth" in client.esmtp_features
            client.login("alice", "secret")
            assert client.sendmail("a@example.com", ["b@example.com"], MESSAGE) == {}
    (session,) = handler.sessions
    assert session.ssl is not None and session.ssl["ssl_object"] is not None
    assert handler.starttls_sessions == [session]  # one new session for TLS, hook called on it


def test_own_starttls_drops_plaintext_pipelined_behind_it(cert_pair: CertPair) -> None:
    with serve(HookRecorder(), OwnStartTLS, tls_context=cert_pair.server_context()) as server:
        with Dialog(server.port) as dialog:
            dialog.cmd(b"EHLO c.test")
            dialog.send(b"STARTTLS\r\nHELP\r\n")
            assert dialog.reply() == b"220 Ready to start TLS\r\n"
            dialog.starttls(cert_pair.client_context())
            # HELP came in the clear: had it run, its reply would come first.
            assert dialog.cmd(b"NOOP") == b"250 OK\r\n"


def test_own_starttls_answers_ehlo_sent_with_the_last_handshake_flight(cert_pair: CertPair) -> None:
    with serve(HookRecorder(), OwnStartTLS, tls_context=cert_pair.server_context()) as server:
        with Dialog(server.port) as dialog:
            dialog.cmd(b"EHLO c.test")
            assert dialog.cmd(b"STARTTLS") == b"220 Ready to start TLS\r\n"
            reply = ehlo_in_last_handshake_flight(dialog.sock, cert_pair.client_context())
            assert reply.startswith(b"250-mx.test\r\n")


# -- SMTP: the stream views -----------------------------------------------------


class StreamUser(SMTP):
    """``push`` as aiosmtpd wrote it, and a command reading the next line
    through ``_reader`` (as a hand-written AUTH exchange might)."""

    async def push(self, status: Any) -> None:
        response = status.encode("ascii") if isinstance(status, str) else status
        self._writer.write(response + b"\r\n")
        await self._writer.drain()

    async def smtp_XECHO(self, arg: Optional[str]) -> None:
        peer = self._writer.get_extra_info("peername")
        await self.push("354 " + ("peer ok" if peer == self.session.peer else "peer?"))
        line = await self._reader.readline()
        await self.push(b"250 " + line.rstrip(b"\r\n"))



def test_writer_and_reader_views() -> None:
    with serve(HookRecorder(), StreamUser) as server:
        with Dialog(server.port) as dialog:
            assert dialog.greeting.startswith(b"220 mx.test ")
            assert dialog.cmd(b"XECHO") == b"354 peer ok\r\n"
            assert dialog.cmd(b"hello there") == b"250 hello there\r\n"
            assert dialog.cmd(b"QUIT") == b"221 Bye\r\n"
        with Dialog(server.port) as dialog:
            assert dialog.cmd(b"XECHO") == b"354 peer ok\r\n"
            dialog.sock.shutdown(socket.SHUT_WR)
            assert dialog.reply() == b"250 \r\n"  # readline() gave b"" at end of input


def test_views_before_any_connection() -> None:
    smtpd = SMTP(Sink(), loop=asyncio.new_event_loop())
    try:
        assert smtpd._reader._transport is None and smtpd._writer._transport is None
        assert smtpd._writer.get_extra_info("peername", "none") == "none"
        assert smtpd._tls_protocol is None and smtpd._original_transport is None
        smtpd._framer.feed(b"NOOP\r\nNOOP\r\n")
        smtpd._reader._buffer.clear()  # aiosmtpd's own CVE-2024-34083 fix did this
        assert smtpd._framer.buffered == 0
        marker = object()
        smtpd._tls_protocol = marker  # aiosmtpd's "TLS is up"
        assert smtpd._tls_protocol is marker and smtpd._tls_active
    finally:
        smtpd.loop.close()


def test_stop_request_never_reaches_a_supplied_loops_next_user() -> None:
    release = threading.Event()

    class LoopLess(Controller):
        """A _run() that makes the protocol itself and never runs the loop."""

        stop_timeout = 0.2

        def _run(self, ready_event: threading.Event) -> None:
            self._factory_invoker()
            ready_event.set()
            release.wait(60)

    loop = asyncio.new_event_loop()
    try:
        controller = LoopLess(Sink(), hostname="127.0.0.1", port=0, loop=loop)
        controller.start()
        thread = controller._thread
        with pytest.warns(RuntimeWarning):
            controller.stop()  # its request to the thread is left queued in the loop
        release.set()
        assert thread is not None
        thread.join(5)
        assert loop.run_until_complete(asyncio.sleep(0.01, "still usable")) == "still usable"
    finally:
        release.set()
        loop.close()
