"""The command lines and legacy programs where Windows would run them: no
``select.poll``, no ``loop.add_signal_handler`` (simulated on Linux, see
``_children``), side by side with the same run on plain Linux."""

from __future__ import annotations

import mailbox
import re
import signal
import smtplib
import textwrap
from pathlib import Path
from typing import Iterator, List

import pytest

from tests.portability._children import TerminalServer
from tests.portability._platforms import WINDOWS_LIKE, console_script, python

PLATFORMS = pytest.mark.parametrize("prelude", ["", WINDOWS_LIKE], ids=["linux", "windows-like"])
STOPS = pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
# Both command lines serving a modern handler (the Debugging one).
MODERN_HANDLER_CLIS = pytest.mark.parametrize(
    ("module", "args"),
    [
        ("smtpd_compat.modern", ["-n", "-l", "127.0.0.1:0"]),
        ("smtpd_compat", ["-n", "-c", "smtpd_compat.modern.handlers.Debugging", "127.0.0.1:0"]),
    ],
    ids=["modern-cli", "legacy-cli-modern-handler"],
)
BODY = "Subject: portable\r\n\r\nHello from a test.\r\n"


@pytest.fixture
def servers() -> Iterator[List[TerminalServer]]:
    started: List[TerminalServer] = []
    yield started
    for server in started:
        server.stop(signal.SIGKILL)


def send(port: int, times: int = 1) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        for _ in range(times):
            assert client.sendmail("a@example.com", ["b@example.com"], BODY) == {}


def serve_and_stop(servers: List[TerminalServer], argv: List[str], signum: int, cwd: "Path | None" = None) -> bytes:
    """Start ``argv``, send it two messages, stop it with ``signum``; its stdout."""
    server = TerminalServer(argv, cwd=cwd)
    servers.append(server)
    send(server.port, times=2)
    returncode, stdout = server.stop(signum)
    assert returncode == 0, server.terminal()
    assert b"Traceback" not in server.terminal()
    return stdout


def peerless(output: bytes) -> bytes:
    """Output with the client's port (in the modern Debugging handler's X-Peer) masked."""
    return re.sub(rb"X-Peer: \('127\.0\.0\.1', \d+\)", b"X-Peer: <peer>", output)


@STOPS
def test_legacy_debugging_server(servers: List[TerminalServer], signum: int) -> None:
    outputs = [
        serve_and_stop(servers, python(prelude, "smtpd_compat", "-n", "-c", "DebuggingServer", "127.0.0.1:0"), signum)
        for prelude in ("", WINDOWS_LIKE)
    ]
    assert outputs[0].count(b"b'Hello from a test.'") == 2
    assert outputs[1] == outputs[0]


@STOPS
@MODERN_HANDLER_CLIS
def test_modern_debugging_handler(servers: List[TerminalServer], signum: int, module: str, args: List[str]) -> None:
    outputs = [peerless(serve_and_stop(servers, python(prelude, module, *args), signum)) for prelude in ("", WINDOWS_LIKE)]
    assert outputs[0].count(b"Hello from a test.") == 2
    assert outputs[1] == outputs[0]


PRINTING_SERVER = '''
import smtpd_compat as smtpd


class PrintingServer(smtpd.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        print("from", mailfrom, "to", rcpttos, "lines", len(data.splitlines()), flush=True)
'''

PRINTING_HANDLER = '''
class Handler:
    async def handle_DATA(self, server, session, envelope):
        print("from", envelope.mail_from, "to", envelope.rcpt_tos, flush=True)
        return "250 OK"
'''


@PLATFORMS
def test_console_scripts_find_classes_in_the_current_directory(
    servers: List[TerminalServer], tmp_path: Path, prelude: str
) -> None:
    tmp_path = tmp_path / "My Project (ü)"  # a current directory with spaces and non-ASCII
    tmp_path.mkdir()
    (tmp_path / "mypackage").mkdir()
    (tmp_path / "mypackage" / "__init__.py").write_text(textwrap.dedent(PRINTING_SERVER))
    (tmp_path / "mymodule.py").write_text(textwrap.dedent(PRINTING_HANDLER))
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    legacy = console_script(prelude, bin_dir, "smtpd_compat.__main__", "-n", "-c", "mypackage.PrintingServer",
                            "127.0.0.1:0")
    assert serve_and_stop(servers, legacy, signal.SIGINT, cwd=tmp_path) == b"from a@example.com to ['b@example.com'] lines 3\n" * 2
    modern = console_script(prelude, bin_dir, "smtpd_compat.modern.main", "-n", "-c", "mymodule.Handler",
                            "-l", "127.0.0.1:0")
    assert serve_and_stop(servers, modern, signal.SIGTERM, cwd=tmp_path) == b"from a@example.com to ['b@example.com']\n" * 2


@PLATFORMS
@MODERN_HANDLER_CLIS
def test_sigterm_with_a_client_still_connected(
    servers: List[TerminalServer], prelude: str, module: str, args: List[str]
) -> None:
    server = TerminalServer(python(prelude, module, *args))
    servers.append(server)
    client = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    try:
        assert client.ehlo("me")[0] == 250
        returncode, _ = server.stop(signal.SIGTERM)
        assert returncode == 0, server.terminal()
        # The drain said goodbye to the idle session before closing it.
        code, text = client.noop()
        assert (code, text.partition(b" ")[2]) == (421, b"Service not available, closing transmission channel")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()


@PLATFORMS
def test_mailbox_handler_with_a_relative_directory(servers: List[TerminalServer], tmp_path: Path, prelude: str) -> None:
    here = tmp_path / "Mail (ü)"
    here.mkdir()
    command = python(prelude, "smtpd_compat.modern", "-n", "-l", "127.0.0.1:0",
                     "-c", "smtpd_compat.modern.handlers.Mailbox", "inbox dir")
    serve_and_stop(servers, command, signal.SIGINT, cwd=here)
    messages = list(mailbox.Maildir(str(here / "inbox dir")))
    assert [message["Subject"] for message in messages] == ["portable", "portable"]
