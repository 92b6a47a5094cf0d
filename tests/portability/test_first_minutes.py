"""What a newcomer meets first: one-line errors, IPv6 addresses, the startup line on
a terminal (and nothing new where a script captures the output)."""

from __future__ import annotations

import importlib.util
import re
import signal
import smtplib
import socket
import subprocess
import sys
from typing import Iterator, List

import pytest

from smtpd_compat.modern.main import parseargs
from tests.portability._children import TerminalServer
from tests.portability._platforms import REPO_ROOT, child_env, python

MODERN = [sys.executable, "-m", "smtpd_compat.modern", "-n"]
LEGACY = [sys.executable, "-m", "smtpd_compat", "-n"]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield holder.getsockname()[1]


def run(argv: List[str]) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=30)


def one_line_error(result: "subprocess.CompletedProcess[str]", start: str) -> str:
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(start), result.stderr
    return result.stderr


def test_modern_busy_port(busy_port: int) -> None:
    error = one_line_error(run(MODERN + ["-l", "127.0.0.1:%d" % busy_port]), "smtpd_compat.modern: error: ")
    assert "cannot listen on 127.0.0.1:%d: " % busy_port in error and "in use" in error


@pytest.mark.parametrize(
    ("classpath", "message"),
    [
        ("nosuchmodule.Handler", "cannot find handler class nosuchmodule.Handler: No module named 'nosuchmodule'"),
        ("smtpd_compat.modern.handlers.NoSuch", "cannot find handler class smtpd_compat.modern.handlers.NoSuch: "),
        ("Sink", "cannot find handler class Sink: "),
        ("smtpd_compat.DebuggingServer", "smtpd_compat.DebuggingServer is a legacy smtpd server class: "
                                         "serve it with python -m smtpd_compat -c smtpd_compat.DebuggingServer"),
    ],
)
def test_modern_class_errors(classpath: str, message: str) -> None:
    one_line_error(run(MODERN + ["-c", classpath]), "smtpd_compat.modern: error: " + message)


def test_legacy_busy_port_and_modern_handler_busy_port(busy_port: int) -> None:
    for classname in ("DebuggingServer", "smtpd_compat.modern.handlers.Sink"):
        error = one_line_error(run(LEGACY + ["-c", classname, "127.0.0.1:%d" % busy_port]),
                               "Cannot serve %s on 127.0.0.1:%d: " % (classname, busy_port))
        assert "in use" in error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["localhost:65536"], "Bad local port: localhost:65536 (ports are 0 to 65535)\n"),
        (["localhost:-1"], "Bad local port: localhost:-1 (ports are 0 to 65535)\n"),
        (["localhost:8025", "relay:99999"], "Bad remote port: relay:99999 (ports are 0 to 65535)\n"),
        (["[::1]:65536"], "Bad local port: [::1]:65536 (ports are 0 to 65535)\n"),
    ],
)
def test_legacy_port_out_of_range(args: List[str], message: str) -> None:
    assert one_line_error(run(LEGACY + ["-c", "DebuggingServer", *args]), "Bad ") == message


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("[::1]:25", "::1", 25), ("[::1]", "::1", 8025), ("[::1]:", "::1", 8025), ("::1:25", "::1", 25)],
)
def test_modern_listen_accepts_bracketed_ipv6(listen: str, host: str, port: int) -> None:
    _, args = parseargs(["-l", listen])
    assert (args.host, args.port) == (host, port)


@pytest.mark.parametrize("listen", ["[::1]x", "[::1]:x", ":65536"])
def test_modern_listen_errors_exit_2_like_aiosmtpd(listen: str) -> None:
    result = run(MODERN + ["-l", listen])
    assert result.returncode == 2 and result.stderr.startswith("usage: smtpd_compat.modern")
    assert result.stderr.splitlines()[-1].startswith("smtpd_compat.modern: error: Invalid ")


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("smtpd_compat", ["-n", "-c", "DebuggingServer", "[::1]:0"]),
        ("smtpd_compat", ["-n", "-c", "smtpd_compat.modern.handlers.Debugging", "[::1]:0"]),
        ("smtpd_compat.modern", ["-n", "-l", "[::1]:0"]),
    ],
    ids=["legacy", "legacy-cli-modern-handler", "modern"],
)
def test_ipv6_and_the_startup_line(module: str, args: List[str]) -> None:
    server = TerminalServer(python("", module, *args))
    try:
        with smtplib.SMTP("::1", server.port, timeout=10) as client:
            assert client.sendmail("a@example.com", ["b@example.com"], "Subject: six\r\n\r\nover IPv6\r\n") == {}
    finally:
        returncode, stdout = server.stop(signal.SIGINT)
    assert returncode == 0
    assert b"over IPv6" in stdout
    # Exactly one line on the terminal: where it listens and how to stop.
    line = re.escape(b"listening on [::1]:%d; press Ctrl-C to stop\r\n" % server.port)
    assert re.fullmatch(rb"smtpd_compat(\.modern)?: \S+ " + line, server.terminal()), server.terminal()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def served_through_pipes(argv: List[str], port: int) -> "tuple[str, str]":
    """Run ``argv`` on pipes, send one message to ``port``, stop with SIGINT: (stdout, stderr)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        for _ in range(300):  # 0.05 s each
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.sendmail("a@example.com", ["b@example.com"], "Subject: piped\r\n\r\nno terminal\r\n")
                break
            except OSError:
                assert process.poll() is None, process.communicate()
                subprocess.run(["sleep", "0.05"])
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    return re.sub(r"X-Peer: \('127\.0\.0\.1', \d+\)", "X-Peer: <peer>", stdout), stderr


def test_modern_prints_what_aiosmtpd_prints_on_pipes() -> None:
    if importlib.util.find_spec("aiosmtpd") is None:
        pytest.skip("aiosmtpd (a test extra) is not installed")
    outputs = []
    for module in ("aiosmtpd", "smtpd_compat.modern"):
        port = free_port()
        outputs.append(served_through_pipes([sys.executable, "-m", module, "-n", "-l", "127.0.0.1:%d" % port], port))
    theirs, ours = outputs
    assert "no terminal" in ours[0] and ours[1] == ""
    assert ours == theirs


def test_the_readme_test_mail_prints_what_the_readme_shows() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    one_liner = re.search(r"^python3 -c '(import smtplib; .*)'$", readme, re.MULTILINE)
    shown = re.search(r"and it prints:\n\n```\n(.*?)```\n", readme, re.DOTALL)
    assert one_liner is not None and shown is not None
    server = TerminalServer(python("", "smtpd_compat", "-n", "-c", "DebuggingServer", "localhost:0"))
    try:
        code = one_liner.group(1).replace("8025", str(server.port))
        subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    finally:
        returncode, stdout = server.stop(signal.SIGINT)
    assert returncode == 0
    assert stdout.decode() == shown.group(1)
