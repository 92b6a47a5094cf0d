"""``python -m smtpd_compat.modern``: aiosmtpd's command line, run as a real process."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import smtplib
import subprocess
import sys
import threading
from mailbox import Maildir
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import pytest

from smtpd_compat.modern import __version__
from smtpd_compat.modern import main as main_module
from smtpd_compat.modern.handlers import Debugging
from smtpd_compat.modern.main import DEFAULT_CLASS, DEFAULT_HOST, DEFAULT_PORT, main, parseargs

from ._periphery import CertPair, cert_pair, connection_refused  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGE = "From: anne@example.com\nTo: bart@example.com\nSubject: A test\n\nTesting\n"
LISTENING = re.compile(r"INFO:mail\.log:Server is listening on (\S+):(\d+)$")

try:
    import pwd
except ImportError:  # pragma: no cover - Windows
    pwd = None  # type: ignore[assignment]


class NullHandler:
    """A handler class without from_cli()."""


class FromCliHandler:
    def __init__(self, *args: str) -> None:
        self.args = args

    @classmethod
    def from_cli(cls, parser: Any, *args: str) -> "FromCliHandler":
        return cls(*args)


def run_cli(*args: str, timeout: float = 30) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", "smtpd_compat.modern", *args],
        capture_output=True, text=True, timeout=timeout, env=child_env(),
    )


def child_env() -> Any:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


class Server:
    """The CLI as a child process listening on an ephemeral port of 127.0.0.1."""

    def __init__(self, *args: str, nosetuid: bool = True) -> None:
        command = [sys.executable, "-m", "smtpd_compat.modern", "-d", "-l", "127.0.0.1:0", *args]
        if nosetuid:
            command.insert(3, "-n")
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env()
        )
        self.stderr_lines: List[str] = []
        self.port = 0
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(15) or not self.port:
            self.process.kill()
            self.process.wait()
            self._reader.join(5)
            raise AssertionError("server did not start:\n" + "".join(self.stderr_lines))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line)
            match = LISTENING.search(line.rstrip("\n"))
            if match:
                self.port = int(match.group(2))
                self._ready.set()
        self._ready.set()

    def stop(self, signum: int = signal.SIGINT) -> Tuple[int, str, str]:
        """Signal the server; return (exit status, stdout, stderr)."""
        self.process.send_signal(signum)
        try:
            returncode = self.process.wait(15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()
        self.process.stdout.close()
        assert self.process.stderr is not None
        self.process.stderr.close()
        return returncode, stdout, "".join(self.stderr_lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.stop(signal.SIGKILL)


@pytest.fixture
def servers() -> Iterator[List[Server]]:
    started: List[Server] = []
    yield started
    for server in started:
        server.kill()


def start(servers: List[Server], *args: str, **kwargs: Any) -> Server:
    server = Server(*args, **kwargs)
    servers.append(server)
    return server


# -- options and their errors ------------------------------------------------------------


def test_help() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: smtpd_compat.modern [-h] [-v] [-n] [-c CLASSPATH]")
    for flag in ("--smtpscert", "--smtpskey", "--tlscert", "--tlskey", "--no-requiretls", "CLASSARGS"):
        assert flag in result.stdout


@pytest.mark.parametrize("flag", ["-v", "--version"])
def test_version(flag: str) -> None:
    result = run_cli(flag)
    assert (result.returncode, result.stdout) == (0, f"smtpd_compat.modern {__version__}\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-l", ":foo"], "Invalid port number: foo"),
        (["-c", "smtpd_compat.modern.handlers.Sink", "extra"], "Sink handler does not accept arguments"),
        (["-c", "tests.modern.test_main.NullHandler", "FOO"], "Handler class tests.modern.test_main takes no arguments"),
        (["-c", "smtpd_compat.modern.handlers.Mailbox"], "The directory for the maildir is required"),
        (["stdout", "stderr"], "Debugging usage: [stdout|stderr]"),
        (["--smtpscert", "x"], "--smtpscert and --smtpskey must be specified together"),
        (["--tlskey", "x"], "--tlscert and --tlskey must be specified together"),
        (["--tlscert", "x", "--tlskey", "x"], "Cert file x not found"),
    ],
)
def test_usage_errors_exit_2(args: List[str], message: str) -> None:
    result = run_cli("-n", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: smtpd_compat.modern")
    assert result.stderr.endswith(f"smtpd_compat.modern: error: {message}\n")


def test_parseargs_defaults() -> None:
    parser, args = parseargs(())
    assert (DEFAULT_HOST, DEFAULT_PORT, DEFAULT_CLASS) == ("localhost", 8025, "smtpd_compat.modern.handlers.Debugging")
    assert args.classpath == DEFAULT_CLASS and args.classargs == ()
    assert isinstance(args.handler, Debugging) and args.handler.stream is sys.stdout
    assert (args.host, args.port, args.listen) == ("localhost", 8025, None)
    assert (args.setuid, args.size, args.smtputf8, args.debug, args.requiretls) == (True, None, False, 0, True)
    assert (args.smtpscert, args.smtpskey, args.tlscert, args.tlskey) == (None, None, None, None)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        (["-l", "foo:25"], "foo", 25),
        (["--listen", "foo:25"], "foo", 25),
        (["-l", "foo"], "foo", 8025),
        (["-l", ":25"], "localhost", 25),
        (["-l", "::0:25"], "::0", 25),
        (["-l"], "localhost", 8025),
    ],
)
def test_parseargs_listen(listen: List[str], host: str, port: int) -> None:
    _, args = parseargs(listen)
    assert (args.host, args.port) == (host, port)


def test_parseargs_handler_from_cli_gets_classargs() -> None:
    _, args = parseargs(["-c", "tests.modern.test_main.FromCliHandler", "--", "FOO", "-x"])
    assert isinstance(args.handler, FromCliHandler)
    assert args.handler.args == ("FOO", "-x")
    _, args = parseargs(["-c", "tests.modern.test_main.NullHandler"])
    assert isinstance(args.handler, NullHandler)


def test_parseargs_cert_key_files(cert_pair: CertPair) -> None:
    _, args = parseargs(["--smtpscert", str(cert_pair.cert), "--smtpskey", str(cert_pair.key)])
    assert args.smtpscert == cert_pair.cert and args.smtpskey == cert_pair.key


# -- running servers --------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_debugging_output_then_clean_exit(servers: List[Server], signum: int) -> None:
    server = start(servers)
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        peer = client.sock.getsockname()
        assert client.sendmail("anne@example.com", ["bart@example.com"], MESSAGE) == {}
    returncode, stdout, stderr = server.stop(signum)
    assert returncode == 0, stderr
    assert "Traceback" not in stderr
    assert stdout == (
        # No "mail options" line: without -s no SIZE is advertised, so none is sent.
        "---------- MESSAGE FOLLOWS ----------\n"
        "From: anne@example.com\n"
        "To: bart@example.com\n"
        "Subject: A test\n"
        f"X-Peer: {peer!r}\n"
        "\n"
        "Testing\n"
        "------------ END MESSAGE ------------\n"
    )
    assert connection_refused("127.0.0.1", server.port)


def test_sigterm_with_a_client_still_connected(servers: List[Server]) -> None:
    server = start(servers)
    client = smtplib.SMTP("127.0.0.1", server.port)
    try:
        assert client.ehlo("me")[0] == 250
        returncode, _, stderr = server.stop(signal.SIGTERM)
        assert returncode == 0, stderr
        # The drain said goodbye to the idle session before closing it.
        code, text = client.noop()
        assert (code, text.partition(b" ")[2]) == (421, b"Service not available, closing transmission channel")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()
    assert connection_refused("127.0.0.1", server.port)


def test_swaks(servers: List[Server]) -> None:
    server = start(servers)
    result = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(server.port), "--from", "anne@example.com",
         "--to", "bart@example.com", "--header", "Subject: via swaks", "--body", "hello from swaks"],
        capture_output=True, text=True, timeout=30,
    )
    returncode, stdout, _ = server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<-  250 OK" in result.stdout
    assert returncode == 0
    assert "Subject: via swaks\n" in stdout
    assert "\nhello from swaks\n" in stdout


def test_class_with_arguments(servers: List[Server], tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    server = start(servers, "-c", "smtpd_compat.modern.handlers.Mailbox", str(maildir))
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.sendmail("anne@example.com", ["bart@example.com"], MESSAGE)
    assert server.stop()[0] == 0
    (message,) = list(Maildir(maildir))
    assert message["Subject"] == "A test"
    assert message["X-RcptTo"] == "bart@example.com"


def test_debugging_to_stderr(servers: List[Server]) -> None:
    server = start(servers, "-c", "smtpd_compat.modern.handlers.Debugging", "stderr")
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.sendmail("anne@example.com", ["bart@example.com"], MESSAGE)
    returncode, stdout, stderr = server.stop()
    assert (returncode, stdout) == (0, "")
    assert "---------- MESSAGE FOLLOWS ----------\n" in stderr
    assert "Subject: A test\n" in stderr


def test_size_and_smtputf8_options(servers: List[Server]) -> None:
    plain = start(servers)
    tuned = start(servers, "-s", "1000", "-u")
    with smtplib.SMTP("127.0.0.1", plain.port) as client:
        client.ehlo("me")
        # aiosmtpd passes size None by default: no limit, no SIZE keyword.
        assert not client.has_extn("size") and not client.has_extn("smtputf8")
    with smtplib.SMTP("127.0.0.1", tuned.port) as client:
        client.ehlo("me")
        assert client.esmtp_features["size"] == "1000"
        assert client.has_extn("smtputf8")
        with pytest.raises(smtplib.SMTPSenderRefused) as excinfo:
            client.sendmail("a@example.com", ["b@example.com"], "x" * 2000)
        assert excinfo.value.smtp_code == 552


EXTENSIONS = ["chunking", "binarymime", "pipelining", "enhancedstatuscodes", "dsn"]


def test_extension_flags(servers: List[Server]) -> None:
    plain = start(servers)
    offering = start(servers, *("--" + name for name in EXTENSIONS))
    with smtplib.SMTP("127.0.0.1", plain.port) as client:
        client.ehlo("me")
        assert not any(client.has_extn(name) for name in EXTENSIONS)
    with smtplib.SMTP("127.0.0.1", offering.port) as client:
        client.ehlo("me")
        assert all(client.has_extn(name) for name in EXTENSIONS)
        assert client.docmd("MAIL FROM:<a@example.com> RET=HDRS") == (250, b"2.1.0 OK")


def test_help_documents_the_extension_flags() -> None:
    text = run_cli("--help").stdout
    for name in EXTENSIONS:
        assert re.search(rf"--{name}\s", text) and f"``{name.upper()}``" in text


def test_debug_levels(servers: List[Server]) -> None:
    quiet = start(servers)
    chatty = start(servers, "-dd")
    with smtplib.SMTP("127.0.0.1", chatty.port) as client:
        client.noop()
    _, _, quiet_log = quiet.stop()
    _, _, chatty_log = chatty.stop()
    assert "DEBUG:mail.log" not in quiet_log
    assert "DEBUG:mail.log:Attempting to start server on 127.0.0.1:0" in chatty_log
    assert "DEBUG:mail.log:Completed asyncio loop" in chatty_log


class TestTLS:
    def test_starttls_required_by_default(self, servers: List[Server], cert_pair: CertPair) -> None:
        server = start(servers, "--tlscert", str(cert_pair.cert), "--tlskey", str(cert_pair.key))
        with smtplib.SMTP("localhost", server.port) as client:
            client.ehlo("me")
            assert client.has_extn("starttls")
            code, reply = client.mail("anne@example.com")
            assert (code, reply) == (530, b"Must issue a STARTTLS command first")
            client.starttls(context=cert_pair.client_context())
            assert client.sendmail("anne@example.com", ["bart@example.com"], MESSAGE) == {}
        returncode, stdout, _ = server.stop()
        assert returncode == 0 and "Subject: A test" in stdout

    def test_no_requiretls(self, servers: List[Server], cert_pair: CertPair) -> None:
        server = start(servers, "--tlscert", str(cert_pair.cert), "--tlskey", str(cert_pair.key), "--no-requiretls")
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo("me")
            assert client.has_extn("starttls")
            assert client.sendmail("anne@example.com", ["bart@example.com"], MESSAGE) == {}

    def test_swaks_starttls(self, servers: List[Server], cert_pair: CertPair) -> None:
        server = start(servers, "--tlscert", str(cert_pair.cert), "--tlskey", str(cert_pair.key))
        result = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(server.port), "--tls",
             "--from", "anne@example.com", "--to", "bart@example.com"],
            capture_output=True, text=True, timeout=30,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "TLS started" in result.stdout

    def test_smtps(self, servers: List[Server], cert_pair: CertPair) -> None:
        server = start(servers, "--smtpscert", str(cert_pair.cert), "--smtpskey", str(cert_pair.key))
        with smtplib.SMTP_SSL("localhost", server.port, context=cert_pair.client_context()) as client:
            assert client.sendmail("anne@example.com", ["bart@example.com"], MESSAGE) == {}
        returncode, stdout, _ = server.stop()
        assert returncode == 0 and "Subject: A test" in stdout


# -- dropping privileges ---------------------------------------------------------------


def nobody_uid() -> Optional[int]:
    if pwd is None:
        return None
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or nobody_uid() is None,
                    reason="needs root and a 'nobody' user")
def test_setuid_nobody_by_default(servers: List[Server]) -> None:
    server = start(servers, nosetuid=False)
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.MULTILINE)
    assert uids is not None and set(uids.group(1).split()) == {str(nobody_uid())}
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        assert client.sendmail("anne@example.com", ["bart@example.com"], MESSAGE) == {}
    assert server.stop()[0] == 0


@pytest.fixture
def fresh_event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """main() runs in this process: give it its own current loop and drop it after."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


@pytest.mark.usefixtures("fresh_event_loop")
class TestInProcess:
    def test_setuid_refused(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        if pwd is None or nobody_uid() is None:
            pytest.skip("needs pwd and a 'nobody' user")

        def refuse(uid: int) -> None:
            raise PermissionError(uid)

        monkeypatch.setattr(os, "setuid", refuse)
        with pytest.raises(SystemExit) as excinfo:
            main(["-l", "127.0.0.1:0"])
        assert excinfo.value.code == 1
        assert capsys.readouterr().err == 'Cannot setuid "nobody"; try running with -n option.\n'

    def test_no_pwd_module(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        monkeypatch.setattr(main_module, "pwd", None)
        with pytest.raises(SystemExit) as excinfo:
            main(["-l", "127.0.0.1:0"])
        assert excinfo.value.code == 1
        assert capsys.readouterr().err == 'Cannot import module "pwd"; try running with -n option.\n'

    def test_sigterm_returns_normally_with_debug_settings(
        self, caplog: pytest.LogCaptureFixture, fresh_event_loop: asyncio.AbstractEventLoop
    ) -> None:
        mail_log = logging.getLogger("mail.log")
        old_level = mail_log.level
        caplog.set_level(logging.DEBUG)
        port: List[int] = []

        def signal_when_listening() -> None:
            # main() logs "listening" only after installing its signal handlers.
            for _ in range(200):
                for record in list(caplog.records):
                    match = re.search(r"listening on 127.0.0.1:(\d+)", record.getMessage())
                    if match:
                        port.append(int(match.group(1)))
                        os.kill(os.getpid(), signal.SIGTERM)
                        return
                threading.Event().wait(0.05)

        watcher = threading.Thread(target=signal_when_listening)
        watcher.start()
        try:
            main(["-n", "-ddd", "-l", "127.0.0.1:0"])
        finally:
            watcher.join(10)
            level = mail_log.level
            mail_log.setLevel(old_level)
        assert level == logging.DEBUG
        # main() served on the current loop (aiosmtpd's make_loop()) and closed it.
        assert fresh_event_loop.get_debug() and fresh_event_loop.is_closed()
        assert port and connection_refused("127.0.0.1", port[0])
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
