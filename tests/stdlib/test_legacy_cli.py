"""``python -m smtpd_compat`` against ``python3.11 -m smtpd``: output, messages, exit codes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from smtpd_compat.legacy import cli
from tests.stdlib._legacy_support import ServerProcess, converse, env_with_repo, reference_python

MESSAGES = [
    ("a@example.com", ["b@example.com"], b"From: a@example.com\r\nSubject: one\r\n\r\nhello\r\n..dot\r\n"),
    ("", ["c@example.com", "d@example.com"], b"No-Blank-Line: here\r\nbody without separator\r\n"),
    ("e@example.com", ["f@example.com"], b"Subject: 8bit\r\n\r\ncaf\xc3\xa9 \xff\r\n\r\nend\r\n"),
]


def _cli(reference: bool) -> List[str]:
    if reference:
        return [reference_python(), "-W", "ignore", "-m", "smtpd"]
    return [sys.executable, "-m", "smtpd_compat"]


def _run_cli(reference: bool, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(reference) + list(args), capture_output=True, env=env_with_repo(), timeout=timeout)


def _start(reference: bool, *args: str) -> Tuple[ServerProcess, int]:
    return start_cli(_cli(reference), *args)


def start_cli(command: List[str], *args: str, env: Optional[Dict[str, str]] = None) -> Tuple[ServerProcess, int]:
    """``command *args 127.0.0.1:<a free port>``, listening; another port if that one was taken meanwhile."""
    for _ in range(3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = ServerProcess(command + list(args) + ["127.0.0.1:%d" % port], env=env)
        try:
            _wait_listening(server, port)
        except AssertionError:
            taken = b"Address already in use" in server.stderr()
            server.close()
            if taken:
                continue
            raise
        return server, port
    raise AssertionError("no free port in three tries")


def _wait_listening(server: ServerProcess, port: int) -> None:
    for _ in range(300):
        if server.proc.poll() is not None:
            raise AssertionError("server exited: %r" % server.stderr())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            subprocess.run(["sleep", "0.05"])
    raise AssertionError("server never listened")


def _send_all(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        for sender, recipients, body in MESSAGES:
            client.sendmail(sender, recipients, body)


def _mask_debug(text: bytes) -> bytes:
    text = re.sub(rb"started at [^\n]*\n", b"started at <time>\n", text)
    return re.sub(rb"127\.0\.0\.1', \d+\)", b"127.0.0.1', <port>)", text)


@pytest.fixture
def cli_pair() -> Iterator[List[Tuple[ServerProcess, int]]]:
    started: List[Tuple[ServerProcess, int]] = []
    yield started
    for server, _ in started:
        server.close()


@pytest.mark.parametrize("options", [[], ["-d"], ["-s", "100000", "-u"], ["--size=50"]])
def test_debugging_server_output_is_byte_identical(cli_pair, options: List[str]) -> None:
    for reference in (True, False):
        cli_pair.append(_start(reference, "-n", "-c", "DebuggingServer", *options))
    outputs = []
    for server, port in cli_pair:
        if options == ["--size=50"]:
            with pytest.raises(smtplib.SMTPException):
                _send_all(port)
        else:
            _send_all(port)
        server.stop(signal.SIGINT)
        outputs.append((server.stdout(), _mask_debug(server.stderr())))
    (ref_out, ref_err), (our_out, our_err) = outputs
    assert our_out == ref_out
    # Pipes, not a terminal: no startup line either.
    assert our_err == ref_err
    if options == []:
        assert b"b'hello'" in our_out and b"b'X-Peer: 127.0.0.1'" in our_out
    if "-d" in options:
        assert re.search(rb"Data: b'rcpt to:<b@example.com>'", our_err, re.IGNORECASE)  # case: smtplib's version


@pytest.mark.parametrize("options", [[], ["-s", "1000"], ["-u"], ["-s", "0"]])
def test_ehlo_advertises_like_the_stdlib_cli(cli_pair, options: List[str]) -> None:
    # The stdlib CLI passes size_limit=None unless -s is given: no SIZE line.
    for reference in (True, False):
        cli_pair.append(_start(reference, "-n", "-c", "DebuggingServer", *options))
    (_, ref_port), (_, our_port) = cli_pair
    dialog = [b"EHLO there\r\n", b"MAIL FROM:<a@b> SIZE=2000\r\n"]
    assert converse(our_port, dialog) == converse(ref_port, dialog)


@pytest.mark.parametrize(
    "args",
    [
        ["-V"],
        ["--version"],
        ["--bogus"],
        ["-c"],
        ["-s", "lots"],
        ["-n", "nocolon"],
        ["-n", "host:port"],
        ["-n", "localhost:8025", "remote"],
        ["-n", "localhost:8025", "remote:x"],
        ["-n", "a:1", "b:2", "c:3"],
    ],
)
def test_messages_and_exit_codes_match(args: List[str]) -> None:
    expected = _run_cli(True, *args)
    got = _run_cli(False, *args)
    assert got.returncode == expected.returncode
    assert got.stdout == expected.stdout
    # The help text is our own wording; the message after it is the stdlib's.
    assert got.stderr.splitlines()[-1:] == expected.stderr.splitlines()[-1:]


def test_help_describes_every_option() -> None:
    result = _run_cli(False, "-h")
    assert result.returncode == 0
    text = result.stderr.decode()
    for option in ("--nosetuid", "--version", "--class", "--size", "--smtputf8", "--debug", "--help"):
        assert option in text
    assert "Python SMTP proxy version 0.3" in text
    assert "smtpd_compat" in text.splitlines()[3]  # %(program)s: the script that ran


def test_setuid_is_attempted_without_n(monkeypatch, capsys) -> None:
    calls = []

    def refuse(uid: int) -> None:
        calls.append(uid)
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setuid", refuse)
    monkeypatch.setattr(sys, "argv", ["smtpd", "-c", "DebuggingServer", "127.0.0.1:0"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    assert calls, "setuid was not attempted"
    assert capsys.readouterr().err == 'Cannot setuid "nobody"; try running with -n option.\n'


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv")
def test_setuid_without_privilege_matches_the_stdlib() -> None:
    # Drop CAP_SETUID so that even root cannot become `nobody`.
    no_setuid = ["setpriv", "--bounding-set", "-setuid", "--inh-caps", "-setuid"]
    results = []
    for reference in (True, False):
        results.append(
            subprocess.run(
                no_setuid + _cli(reference) + ["-c", "DebuggingServer", "127.0.0.1:0"],
                capture_output=True, env=env_with_repo(), timeout=20,
            )
        )
    expected, got = results
    assert expected.returncode == 1
    assert (got.returncode, got.stderr) == (expected.returncode, expected.stderr)


def test_swaks_against_the_cli(cli_pair) -> None:
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed")
    cli_pair.append(_start(False, "-n", "-c", "DebuggingServer"))
    server, port = cli_pair[0]
    result = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(port), "--from", "s@example.com", "--to", "r@example.com",
         "--header", "Subject: via swaks", "--body", "swaks body"],
        capture_output=True, timeout=30,
    )
    assert result.returncode == 0, result.stdout
    assert b"<-  250 OK" in result.stdout
    server.stop(signal.SIGTERM)
    assert b"b'Subject: via swaks'" in server.stdout()
    assert b"b'swaks body'" in server.stdout()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_it_cleanly(cli_pair, sig: int) -> None:
    cli_pair.append(_start(False, "-n", "-c", "DebuggingServer"))
    server, port = cli_pair[0]
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    try:
        client.sendmail("a@b", ["c@d"], b"Subject: s\r\n\r\nbefore the signal\r\n")
        assert server.stop(sig) == 0
        # The drain said goodbye to the idle session before closing it.
        code, text = client.noop()
        assert (code, text.partition(b" ")[2]) == (421, b"Service not available, closing transmission channel")
    finally:
        client.close()
    assert b"before the signal" in server.stdout()
    assert server.stderr() == b""


def test_modern_handler_class_is_served_by_the_modern_face(cli_pair) -> None:
    cli_pair.append(_start(False, "-n", "-c", "smtpd_compat.modern.handlers.Debugging", "-s", "1000"))
    server, port = cli_pair[0]
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        code, lines = client.ehlo("me")
        assert code == 250 and b"SIZE 1000" in lines
        client.sendmail("a@b", ["c@d"], b"Subject: modern\r\n\r\nserved by the modern face\r\n")
    assert server.stop(signal.SIGTERM) == 0, server.stderr()
    assert b"served by the modern face" in server.stdout()


def test_dotted_class_path_names_a_user_server(cli_pair, tmp_path: Path) -> None:
    (tmp_path / "userserver.py").write_text(textwrap.dedent("""\
        import smtpd_compat as smtpd

        class Shouting(smtpd.SMTPServer):
            def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
                print("GOT", data.upper(), flush=True)
                return "250 Shouted"
        """))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = env_with_repo()
    env["PYTHONPATH"] += os.pathsep + str(tmp_path)
    server = ServerProcess([sys.executable, "-m", "smtpd_compat", "-n", "-c", "userserver.Shouting",
                            "127.0.0.1:%d" % port], env=env)
    cli_pair.append((server, port))
    _wait_listening(server, port)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo()
        client.mail("a@b")
        client.rcpt("c@d")
        assert client.data(b"quiet please") == (250, b"Shouted")
    server.stop()
    assert b"GOT b'QUIET PLEASE'" in server.stdout()


@pytest.mark.parametrize("classname", ["NoSuchServer", "no.such.module.Server", "smtpd_compat.NoSuchServer"])
def test_unknown_class_is_a_one_line_error(classname: str) -> None:
    result = _run_cli(False, "-n", "-c", classname, "127.0.0.1:0")
    assert result.returncode == 1
    assert result.stderr.startswith(b"Cannot find class " + classname.encode())
    assert len(result.stderr.splitlines()) == 1


def test_busy_port_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_cli(False, "-n", "-c", "DebuggingServer", "127.0.0.1:%d" % port)
    assert result.returncode == 1
    assert b"Address already in use" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_pureproxy_refuses_smtputf8_like_the_stdlib() -> None:
    result = _run_cli(False, "-n", "-u", "127.0.0.1:0")
    assert result.returncode == 1
    assert b"PureProxy does not support SMTPUTF8." in result.stderr
