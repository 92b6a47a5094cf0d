"""The optional uvloop event loop (issue 11): ``--loop`` on both command lines
(the legacy one for modern handler classes), ``workers.serve(loop=)``, ``Controller(loop=, loop_factory=)``, and the
error when uvloop is asked for but missing.  Servers run on real sockets and
report the module of the loop serving them through VRFY."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import smtplib
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest

from smtpd_compat.common.loops import DEFAULT_LOOP, LoopUnavailable, loop_factory, run
from smtpd_compat.legacy import cli as legacy_cli
from smtpd_compat.modern import main as modern_main
from smtpd_compat.modern.controller import Controller
from smtpd_compat.modern.workers import serve
from tests.portability._children import TerminalServer
from tests.portability._platforms import REPO_ROOT

from ._pid_classes import PidHandler
from ._worker_support import WorkerServer, pids_seen

needs_uvloop = pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed (pip install smtpd_compat[uvloop])"
)
CERTS = REPO_ROOT / "smtpd_compat" / "testserver" / "certs"
MESSAGE = "Subject: loops\r\n\r\nserved on uvloop\r\n"


def loop_module(port: int, client: "smtplib.SMTP | None" = None) -> str:
    """The module of the event loop serving a connection to ``port``."""
    if client is not None:
        return client.verify("anyone")[1].decode().split()[-1]
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as fresh:
        return loop_module(port, fresh)


def unverified_client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture
def uvloop_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import uvloop` raise ImportError.
    monkeypatch.setitem(sys.modules, "uvloop", None)


# -- the choice itself --------------------------------------------------------


def test_the_standard_loop_is_the_default() -> None:
    assert DEFAULT_LOOP == "asyncio"
    assert loop_factory() is asyncio.new_event_loop


def test_a_factory_is_taken_as_it_is() -> None:
    def factory() -> asyncio.AbstractEventLoop:
        return asyncio.new_event_loop()

    assert loop_factory(factory) is factory


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(ValueError, match="choose from asyncio, uvloop"):
        loop_factory("trio")


def test_run_closes_its_loop() -> None:
    made = []

    def factory() -> asyncio.AbstractEventLoop:
        made.append(asyncio.new_event_loop())
        return made[-1]

    async def answer() -> int:
        return 42

    assert run(answer(), factory) == 42
    assert made[0].is_closed()


# -- uvloop asked for but missing ---------------------------------------------


@pytest.mark.usefixtures("uvloop_missing")
def test_missing_uvloop_says_how_to_install_it() -> None:
    with pytest.raises(LoopUnavailable, match=r"pip install smtpd_compat\[uvloop\]"):
        loop_factory("uvloop")


@pytest.mark.usefixtures("uvloop_missing")
def test_missing_uvloop_fails_the_cli_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        modern_main.main(["-n", "-l", "127.0.0.1:0", "--loop", "uvloop"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "error: the uvloop event loop is not installed: pip install smtpd_compat[uvloop]" in err


@pytest.mark.usefixtures("uvloop_missing")
def test_missing_uvloop_fails_the_legacy_cli_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        sys, "argv", ["smtpd", "-n", "-c", "smtpd_compat.modern.handlers.Sink", "--loop", "uvloop", "127.0.0.1:0"]
    )
    with pytest.raises(SystemExit) as exited:
        legacy_cli.main()
    assert exited.value.code == 2
    assert capsys.readouterr().err == "smtpd: the uvloop event loop is not installed: pip install smtpd_compat[uvloop]\n"


def test_legacy_cli_refuses_a_loop_for_a_legacy_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["smtpd", "-n", "-c", "DebuggingServer", "--loop", "uvloop", "127.0.0.1:0"])
    with pytest.raises(SystemExit) as exited:
        legacy_cli.main()
    assert exited.value.code == 1
    assert capsys.readouterr().err.endswith("--loop applies to modern handler classes: DebuggingServer runs on asyncore\n")


@pytest.mark.usefixtures("uvloop_missing")
def test_missing_uvloop_fails_serve_before_binding() -> None:
    with pytest.raises(LoopUnavailable):
        serve(PidHandler, "127.0.0.1", 0, loop="uvloop")


@pytest.mark.usefixtures("uvloop_missing")
def test_missing_uvloop_fails_the_controller() -> None:
    with pytest.raises(LoopUnavailable):
        Controller(PidHandler(), hostname="127.0.0.1", port=0, loop_factory="uvloop")


# -- serving on uvloop ----------------------------------------------------------


#: (the command before the options, after them): the legacy CLI takes its address last
#: and serves a modern handler class through the modern face.
CLIS = {
    "modern": ([sys.executable, "-m", "smtpd_compat.modern", "-n", "-l", "127.0.0.1:0"], []),
    "legacy": ([sys.executable, "-m", "smtpd_compat", "-n"], ["127.0.0.1:0"]),
}


@needs_uvloop
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the server's stderr on a pseudo-terminal")
@pytest.mark.parametrize("cli", CLIS)
def test_cli_serves_starttls_and_a_message_on_uvloop(cli: str) -> None:
    before, after = CLIS[cli]
    options = ["--loop", "uvloop", "-c", "tests.modern._pid_classes.PidHandler",
               "--tlscert", str(CERTS / "cert.pem"), "--tlskey", str(CERTS / "key.pem")]
    server = TerminalServer(
        before + options + after,
        cwd=REPO_ROOT,
    )
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.starttls(context=unverified_client_context())
            assert loop_module(server.port, client) == "uvloop"
            assert client.sendmail("a@example.com", ["b@example.com"], MESSAGE) == {}
    finally:
        status, _ = server.stop(signal.SIGTERM)
    assert status == 0


@needs_uvloop
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks workers")
def test_two_workers_serve_on_uvloop(tmp_path: Path) -> None:
    server = WorkerServer(tmp_path / "server.log", "--workers", "2", "--loop", "uvloop")
    try:
        assert len(pids_seen(server.port, 2)) == 2
        assert loop_module(server.port) == "uvloop"
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            assert client.sendmail("a@example.com", ["b@example.com"], MESSAGE) == {}
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
    finally:
        server.kill()


def serve_one_message(controller: Controller) -> str:
    controller.start()
    try:
        with smtplib.SMTP(controller.hostname, controller.port, timeout=10) as client:
            assert client.sendmail("a@example.com", ["b@example.com"], MESSAGE) == {}
            return loop_module(controller.port, client)
    finally:
        controller.stop()


@needs_uvloop
def test_controller_serves_on_a_supplied_uvloop_loop() -> None:
    import uvloop

    loop: Any = uvloop.new_event_loop()
    try:
        controller = Controller(PidHandler(), hostname="127.0.0.1", port=0, loop=loop)
        assert serve_one_message(controller) == "uvloop"
        assert not loop.is_closed()  # a supplied loop stays the caller's
    finally:
        loop.close()


@needs_uvloop
def test_controller_makes_uvloop_loops_on_each_start() -> None:
    controller = Controller(PidHandler(), hostname="127.0.0.1", port=0, loop_factory="uvloop")
    assert serve_one_message(controller) == "uvloop"
    assert serve_one_message(controller) == "uvloop"
