"""smtpd_compat.modern.controller: aiosmtpd's controllers, with their bugs fixed."""

from __future__ import annotations

import asyncio
import errno
import smtplib
import socket
import threading
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Callable, Iterator, List

import aiosmtplib
import pytest

from smtpd_compat.modern import controller as controller_module
from smtpd_compat.modern.controller import (
    DEFAULT_READY_TIMEOUT,
    IP6_IS,
    Controller,
    UnixSocketController,
    UnixSocketUnthreadedController,
    UnthreadedController,
    _server_to_client_ssl_ctx,
    get_localhost,
)
from smtpd_compat.modern.handlers import Sink
from smtpd_compat.modern.lmtp import LMTP
from smtpd_compat.modern.smtp import SMTP, Envelope, Session

from ._periphery import CertPair, RecordingHandler, cert_pair, connection_refused  # noqa: F401

MESSAGE = "Subject: hello\n\nbody\n"
has_ipv6 = get_localhost() == "::1"


def send(host: str, port: int, **kwargs: Any) -> Any:
    with smtplib.SMTP(host, port, timeout=5, **kwargs) as client:
        return client.sendmail("a@example.com", ["b@example.com"], MESSAGE)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # AF_UNIX paths must be short; pytest's tmp_path can be too long.
    with TemporaryDirectory(prefix="smtp") as name:
        yield Path(name)


def test_exports_and_defaults() -> None:
    assert sorted(controller_module.__all__) == sorted([
        "BaseController", "BaseThreadedController", "BaseUnthreadedController", "Controller",
        "IP6_IS", "InetMixin", "UnixSocketController", "UnixSocketMixin",
        "UnixSocketUnthreadedController", "UnthreadedController", "get_localhost",
    ])
    assert DEFAULT_READY_TIMEOUT == 5.0
    assert IP6_IS.NO == {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}
    assert IP6_IS.YES == {errno.EADDRINUSE}


# -- construction -------------------------------------------------------------------


class TestConstruction:
    def test_attributes(self) -> None:
        handler = Sink()
        controller = Controller(handler)
        assert controller.handler is handler
        assert controller.hostname == get_localhost()
        assert controller.port == 8025
        assert controller.ready_timeout == DEFAULT_READY_TIMEOUT
        assert controller.ssl_context is None
        assert controller.server is None and controller.smtpd is None
        assert controller.SMTP_kwargs == {"enable_SMTPUTF8": True}
        assert isinstance(controller.loop, asyncio.AbstractEventLoop)
        controller.loop.close()

    def test_hostname_empty_string_kept(self) -> None:
        assert Controller(Sink(), hostname="").hostname == ""

    def test_smtp_kwargs(self) -> None:
        controller = Controller(Sink(), server_hostname="mx.example", enable_SMTPUTF8=False, decode_data=True)
        assert controller.SMTP_kwargs == {"hostname": "mx.example", "enable_SMTPUTF8": False, "decode_data": True}

    def test_server_kwargs_is_deprecated_and_explicit_wins(self) -> None:
        with pytest.warns(DeprecationWarning, match="server_kwargs will be removed in version 2.0"):
            controller = Controller(
                Sink(), enable_SMTPUTF8=False, server_hostname="explicit",
                server_kwargs={"enable_SMTPUTF8": True, "hostname": "old", "timeout": 9},
            )
        assert controller.SMTP_kwargs == {"enable_SMTPUTF8": False, "hostname": "explicit", "timeout": 9}

    def test_ready_timeout_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AIOSMTPD_CONTROLLER_TIMEOUT", "2.5")
        assert Controller(Sink(), ready_timeout=9).ready_timeout == 2.5

    def test_get_localhost_without_ipv6(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(controller_module, "_has_ipv6", lambda: False)
        assert get_localhost() == "127.0.0.1"

    @pytest.mark.parametrize(("err", "expected"), [(errno.EADDRNOTAVAIL, "127.0.0.1"), (errno.EADDRINUSE, "::1")])
    def test_get_localhost_probe_errors(self, monkeypatch: pytest.MonkeyPatch, err: int, expected: str) -> None:
        def failing_socket(*args: Any) -> Any:
            raise OSError(err, "mocked")

        monkeypatch.setattr(controller_module, "_has_ipv6", lambda: True)
        monkeypatch.setattr(controller_module, "makesock", failing_socket)
        assert get_localhost() == expected

    def test_stop_before_start(self) -> None:
        controller = Controller(Sink())
        with pytest.raises(AssertionError, match="SMTP daemon not running"):
            controller.stop()
        controller.stop(no_assert=True)


# -- threaded Controller ------------------------------------------------------------------


class TestController:
    def test_port_zero_gets_the_bound_port(self) -> None:
        handler = RecordingHandler()
        with Controller(handler, hostname="127.0.0.1", port=0) as controller:
            assert controller.port != 0
            assert controller.server is not None
            assert controller.server.sockets[0].getsockname()[1] == controller.port
            assert send(controller.hostname, controller.port) == {}
        assert handler.envelopes[0].content == b"Subject: hello\r\n\r\nbody\r\n"
        assert controller.server is None

    @pytest.mark.skipif(not has_ipv6, reason="needs IPv6 loopback")
    def test_all_interfaces_share_one_port(self) -> None:
        with Controller(Sink(), hostname="", port=0) as controller:
            ports = {sock.getsockname()[1] for sock in controller.server.sockets}  # type: ignore[union-attr]
            assert ports == {controller.port}
            assert send("127.0.0.1", controller.port) == {}
            assert send("::1", controller.port) == {}

    def test_smtputf8_enabled_by_default(self) -> None:
        with Controller(Sink(), hostname="127.0.0.1", port=0) as controller:
            with smtplib.SMTP(controller.hostname, controller.port) as client:
                client.ehlo("me")
                assert client.has_extn("smtputf8")

    def test_smtpd_is_the_latest_session(self) -> None:
        with Controller(Sink(), hostname="127.0.0.1", port=0) as controller:
            assert isinstance(controller.smtpd, SMTP)  # made eagerly at start
            with smtplib.SMTP(controller.hostname, controller.port) as client:
                client.noop()
                assert controller.smtpd.session.peer == client.sock.getsockname()

    @pytest.mark.timeout(15)
    def test_port_in_use_raises_from_start_without_waiting(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            controller = Controller(Sink(), hostname="127.0.0.1", port=taken.getsockname()[1], ready_timeout=600)
            # A hang until ready_timeout would trip the 15 s test timeout.
            with pytest.raises(OSError) as excinfo:
                controller.start()
            assert excinfo.value.errno == errno.EADDRINUSE
            controller.stop()
        # The failed controller can start once the port is free.
        controller.start()
        try:
            assert send(controller.hostname, controller.port) == {}
        finally:
            controller.stop()

    def test_restart_uses_a_fresh_loop(self) -> None:
        handler = RecordingHandler()
        controller = Controller(handler, hostname="127.0.0.1", port=0)
        controller.start()
        first_loop = controller.loop
        send(controller.hostname, controller.port)
        controller.stop()
        assert first_loop.is_closed()
        controller.start()
        try:
            assert controller.loop is not first_loop
            send(controller.hostname, controller.port)
        finally:
            controller.stop()
        assert len(handler.envelopes) == 2

    def test_start_twice_is_refused(self) -> None:
        with Controller(Sink(), hostname="127.0.0.1", port=0) as controller:
            with pytest.raises(AssertionError, match="SMTP daemon already running"):
                controller.start()

    def test_stop_closes_sessions_and_listener(self) -> None:
        controller = Controller(Sink(), hostname="127.0.0.1", port=0)
        controller.start()
        port = controller.port
        client = smtplib.SMTP(controller.hostname, port)
        try:
            assert client.ehlo("me")[0] == 250
            controller.stop()
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()
        finally:
            client.close()
        assert connection_refused("127.0.0.1", port)

    def test_stop_during_data_cancels_the_hook(self) -> None:
        entered = threading.Event()
        outcome: List[str] = []

        class Stuck:
            async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
                entered.set()
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    outcome.append("cancelled")
                    raise
                return "250 OK"

        controller = Controller(Stuck(), hostname="127.0.0.1", port=0)
        controller.start()
        errors: List[BaseException] = []

        def client() -> None:
            try:
                send(controller.hostname, controller.port)
            except BaseException as e:
                errors.append(e)

        sender = threading.Thread(target=client)
        sender.start()
        assert entered.wait(5)
        controller.stop()
        sender.join(5)
        assert outcome == ["cancelled"]
        assert len(errors) == 1 and isinstance(errors[0], (smtplib.SMTPServerDisconnected, OSError))

    def test_supplied_loop_stays_open_and_foreign_tasks_survive(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            foreign = loop.create_task(asyncio.sleep(3600))
            controller = Controller(Sink(), hostname="127.0.0.1", port=0, loop=loop)
            controller.start()
            assert controller.smtpd.loop is loop
            send(controller.hostname, controller.port)
            controller.stop()
            assert not loop.is_closed()
            assert not foreign.cancelled() and not foreign.done()
            # And it can serve again on the same loop.
            controller.start()
            send(controller.hostname, controller.port)
            controller.stop()
        finally:
            foreign.cancel()
            loop.run_until_complete(asyncio.gather(foreign, return_exceptions=True))
            loop.close()

    def test_slow_start_times_out_and_stop_still_cleans_up(self) -> None:
        release = threading.Event()

        class SlowStart(Controller):
            def _run(self, ready_event: threading.Event) -> None:
                release.wait(5)
                super()._run(ready_event)

        controller = SlowStart(Sink(), hostname="127.0.0.1", port=0, ready_timeout=0.2)
        with pytest.raises(TimeoutError, match="SMTP server failed to start within allotted time"):
            controller.start()
        release.set()
        controller.stop()
        assert controller.loop.is_closed() and controller.server is None

    def test_cancel_tasks_from_outside_then_stop(self) -> None:
        controller = Controller(Sink(), hostname="127.0.0.1", port=0)
        controller.start()
        port = controller.port
        client = smtplib.SMTP(controller.hostname, port)
        try:
            client.ehlo("me")
            controller.loop.call_soon_threadsafe(controller.cancel_tasks)
            controller.stop()
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()
        finally:
            client.close()
        assert connection_refused("127.0.0.1", port)

    def test_closed_supplied_loop_fails_fast(self) -> None:
        loop = asyncio.new_event_loop()
        loop.close()
        controller = Controller(Sink(), hostname="127.0.0.1", port=0, loop=loop, ready_timeout=600)
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            controller.start()
        assert controller._thread is None

    def test_smtps_with_ssl_context(self, cert_pair: CertPair) -> None:
        handler = RecordingHandler()
        with Controller(handler, hostname="localhost", port=0, ssl_context=cert_pair.server_context()) as controller:
            with smtplib.SMTP_SSL("localhost", controller.port, context=cert_pair.client_context()) as client:
                client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
            # The helper makes a client context from the server's, for local probes.
            probe_ctx = _server_to_client_ssl_ctx(cert_pair.server_context())
            with smtplib.SMTP_SSL("localhost", controller.port, context=probe_ctx) as client:
                assert client.noop()[0] == 250
        assert handler.sessions[0].ssl is not None

    @pytest.mark.timeout(20)
    def test_stop_with_a_client_stuck_before_the_tls_handshake(self, cert_pair: CertPair) -> None:
        controller = Controller(Sink(), hostname="127.0.0.1", port=0, ssl_context=cert_pair.server_context())
        controller.start()
        with socket.create_connection(("127.0.0.1", controller.port), timeout=10) as silent:
            # Make sure the server has accepted it before stopping.
            with smtplib.SMTP_SSL("127.0.0.1", controller.port, context=_server_to_client_ssl_ctx(
                    cert_pair.server_context())) as client:
                client.noop()
            controller.stop()  # must not wait for the 60 s handshake timeout
            assert silent.recv(1) == b""

    def test_lmtp_through_factory_override(self) -> None:
        class LMTPController(Controller):
            def factory(self) -> Any:
                return LMTP(self.handler, **self.SMTP_kwargs)

        with LMTPController(Sink(), hostname="127.0.0.1", port=0) as controller:
            with smtplib.LMTP(controller.hostname, controller.port) as client:
                assert client.ehlo_resp is None
                assert client.sendmail("a@example.com", ["b@example.com"], MESSAGE) == {}

    def test_aiosmtplib_client(self) -> None:
        handler = RecordingHandler()
        with Controller(handler, hostname="127.0.0.1", port=0) as controller:
            errors, _ = asyncio.run(aiosmtplib.send(
                MESSAGE, sender="a@example.com", recipients=["b@example.com"],
                hostname=controller.hostname, port=controller.port,
            ))
        assert errors == {}
        assert handler.envelopes[0].mail_from == "a@example.com"


# -- factory errors --------------------------------------------------------------------


class TestFactoryErrors:
    def test_factory_exception_raises_from_start(self) -> None:
        class Broken(Controller):
            def factory(self) -> Any:
                raise ValueError("no SMTP for you")

        controller = Broken(Sink(), hostname="127.0.0.1", port=0)
        with pytest.raises(ValueError, match="no SMTP for you"):
            controller.start()
        assert isinstance(controller._thread_exception, ValueError)
        assert controller.smtpd is None
        assert controller.port != 0 and connection_refused("127.0.0.1", controller.port)
        controller.stop()
        assert controller._thread_exception is None

    def test_unknown_smtp_keyword(self) -> None:
        controller = Controller(Sink(), hostname="127.0.0.1", port=0, this_is_unknown=True)
        with pytest.raises(TypeError, match="this_is_unknown"):
            controller.start()
        controller.stop()

    def test_factory_returning_none(self) -> None:
        class NoneFactory(Controller):
            def factory(self) -> Any:
                return None

        controller = NoneFactory(Sink(), hostname="127.0.0.1", port=0)
        with pytest.raises(RuntimeError, match=r"factory\(\) returned None"):
            controller.start()
        controller.stop()

    def test_later_factory_failure_hangs_up_on_that_client_only(self) -> None:
        class FailsSecondTime(Controller):
            calls = 0

            def factory(self) -> Any:
                self.calls += 1
                if self.calls == 3:
                    raise RuntimeError("flaky")
                return super().factory()

        with FailsSecondTime(Sink(), hostname="127.0.0.1", port=0) as controller:
            assert send(controller.hostname, controller.port) == {}  # call 2
            with pytest.raises(smtplib.SMTPServerDisconnected):
                send(controller.hostname, controller.port)  # call 3
            assert send(controller.hostname, controller.port) == {}  # call 4
            assert isinstance(controller._thread_exception, RuntimeError)

    def test_slow_factory_times_out(self) -> None:
        release = threading.Event()

        class Slow(Controller):
            def factory(self) -> Any:
                release.wait(5)
                return super().factory()

        controller = Slow(Sink(), hostname="127.0.0.1", port=0, ready_timeout=0.2)
        try:
            with pytest.raises(TimeoutError, match="SMTP server started, but not responding"):
                controller.start()
        finally:
            release.set()
            controller.stop()


# -- Unix sockets -------------------------------------------------------------------------


def unix_dialog(path: str, read_reply: Callable[[socket.socket], bytes], ssl_ctx: Any = None) -> List[bytes]:
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.settimeout(5)
    try:
        raw.connect(path)
    except OSError:
        raw.close()
        raise
    with ssl_ctx.wrap_socket(raw, server_hostname="localhost") if ssl_ctx else raw as sock:
        replies = [read_reply(sock)]
        for command in (b"EHLO unix.test\r\n", b"QUIT\r\n"):
            sock.sendall(command)
            replies.append(read_reply(sock))
        return replies


class TestUnixSocket:
    def test_threaded(self, socket_dir: Path, read_reply: Callable[[socket.socket], bytes]) -> None:
        path = socket_dir / "smtp"
        controller = UnixSocketController(Sink(), unix_socket=path)
        assert controller.unix_socket == str(path)
        with controller:
            greeting, ehlo, quit_ = unix_dialog(str(path), read_reply)
        assert greeting.startswith(b"220 ")
        assert ehlo.endswith(b"250 HELP\r\n")
        assert quit_.startswith(b"221")

    def test_threaded_with_tls(self, socket_dir: Path, cert_pair: CertPair,
                               read_reply: Callable[[socket.socket], bytes]) -> None:
        path = socket_dir / "smtps"
        with UnixSocketController(Sink(), unix_socket=path, ssl_context=cert_pair.server_context()):
            greeting, ehlo, _ = unix_dialog(str(path), read_reply, cert_pair.client_context())
        assert greeting.startswith(b"220 ")
        assert b"250 HELP\r\n" in ehlo

    def test_restart_reuses_the_path(self, socket_dir: Path, read_reply: Callable[[socket.socket], bytes]) -> None:
        path = socket_dir / "smtp"
        controller = UnixSocketController(Sink(), unix_socket=path)
        for _ in range(2):
            with controller:
                assert unix_dialog(str(path), read_reply)[0].startswith(b"220 ")

    def test_unthreaded(self, socket_dir: Path, read_reply: Callable[[socket.socket], bytes]) -> None:
        path = socket_dir / "smtp"
        loop = asyncio.new_event_loop()
        controller = UnixSocketUnthreadedController(Sink(), unix_socket=path, loop=loop)
        controller.begin()
        runner = threading.Thread(target=loop.run_forever)
        runner.start()
        try:
            assert unix_dialog(str(path), read_reply)[0].startswith(b"220 ")
            loop.call_soon_threadsafe(controller.end)
            assert controller.ended.wait(5)
            with pytest.raises(OSError):
                unix_dialog(str(path), read_reply)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            runner.join(5)
            loop.close()


# -- unthreaded ---------------------------------------------------------------------------


class TestUnthreaded:
    def test_begin_run_end(self) -> None:
        loop = asyncio.new_event_loop()
        handler = RecordingHandler()
        controller = UnthreadedController(handler, hostname="127.0.0.1", port=0, loop=loop)
        controller.begin()
        assert controller.port != 0
        assert not loop.is_running()
        runner = threading.Thread(target=loop.run_forever)
        runner.start()
        try:
            assert send(controller.hostname, controller.port) == {}
            loop.call_soon_threadsafe(controller.end)
            assert controller.ended.wait(5)
            assert connection_refused("127.0.0.1", controller.port)
            assert loop.is_running()
        finally:
            loop.call_soon_threadsafe(controller.cancel_tasks)
            runner.join(5)
        assert not loop.is_running() and not loop.is_closed()
        loop.close()
        assert len(handler.envelopes) == 1

    def test_end_with_stopped_loop(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            controller = UnthreadedController(Sink(), hostname="127.0.0.1", port=0, loop=loop)
            controller.begin()
            port = controller.port
            controller.end()
            assert controller.ended.is_set()
            assert controller.server is None
            assert connection_refused("127.0.0.1", port)
        finally:
            loop.close()

    def test_begin_surfaces_factory_errors(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            controller = UnthreadedController(Sink(), hostname="127.0.0.1", port=0, loop=loop, bogus=1)
            with pytest.raises(TypeError, match="bogus"):
                controller.begin()
            assert connection_refused("127.0.0.1", controller.port)
        finally:
            loop.close()

    def test_async_with_on_the_running_loop(self) -> None:
        handler = RecordingHandler()
        other_task_result: List[str] = []

        async def main() -> int:
            async def bystander() -> None:
                await asyncio.sleep(0.05)
                other_task_result.append("done")

            keep = asyncio.ensure_future(bystander())
            async with UnthreadedController(handler, hostname="127.0.0.1", port=0) as controller:
                assert controller.loop is asyncio.get_running_loop()
                client = aiosmtplib.SMTP(hostname=controller.hostname, port=controller.port)
                await client.connect()
                await client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
                # Leave the client connected: finalize() must close it.
                port = controller.port
            assert not client.is_connected or await _peer_closed(client)
            await keep
            return port

        port = asyncio.run(main())
        assert other_task_result == ["done"]
        assert connection_refused("127.0.0.1", port)
        assert len(handler.envelopes) == 1

    def test_start_serving_refuses_a_foreign_loop(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            controller = UnthreadedController(Sink(), hostname="127.0.0.1", port=0, loop=loop)
            with pytest.raises(RuntimeError, match="different event loop"):
                asyncio.run(controller.start_serving())
        finally:
            loop.close()


async def _peer_closed(client: aiosmtplib.SMTP) -> bool:
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await client.noop()
    return True
