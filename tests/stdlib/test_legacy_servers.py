"""DebuggingServer, PureProxy and MailmanProxy."""

from __future__ import annotations

import email
import io
import signal
import smtplib
import socket
import subprocess
import sys
import types
from typing import Any, Iterator, List, Tuple

import pytest

import smtpd_compat as smtpd
from tests.stdlib._legacy_support import LoopThread, ServerProcess, env_with_repo, reference_python, start_recorder

SERVER_SCRIPT = r"""
import importlib, sys
smtpd = importlib.import_module(sys.argv[1])
server_class = getattr(smtpd, sys.argv[2])
upstream = int(sys.argv[3])
server = server_class(("127.0.0.1", 0), ("127.0.0.1", upstream), decode_data=sys.argv[4] == "1")
print("PORT", server.socket.getsockname()[1], flush=True)
smtpd.asyncore.loop(timeout=0.05)
"""

MESSAGES = [
    ("a@example.com", ["b@example.com"], b"From: a@example.com\r\nSubject: one\r\n\r\nhello\r\n..dot\r\n"),
    ("c@example.com", ["d@example.com", "e@example.com"], b"Only: headers\r\nno: separator\r\n"),
    ("f@example.com", ["g@example.com"], "Subject: utf8\r\n\r\n\u00fcber\r\n\r\nend\r\n".encode()),
]


def _start_script(reference: bool, server_class: str, upstream: int = 0, decode: bool = False) -> Tuple[ServerProcess, int]:
    python, module = (reference_python(), "smtpd") if reference else (sys.executable, "smtpd_compat")
    server = ServerProcess([python, "-W", "ignore", "-c", SERVER_SCRIPT, module, server_class, str(upstream), str(int(decode))])
    return server, server.wait_for_port_line()


def _send(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        for sender, recipients, body in MESSAGES:
            client.sendmail(sender, recipients, body)


def test_debugging_server_with_decode_data_prints_like_the_stdlib() -> None:
    outputs = []
    for reference in (True, False):
        server, port = _start_script(reference, "DebuggingServer", decode=True)
        try:
            _send(port)
            server.stop(signal.SIGINT)
            outputs.append(server.stdout().split(b"\n", 1)[1])  # after the PORT line
        finally:
            server.close()
    assert outputs[1] == outputs[0]
    assert b"X-Peer: 127.0.0.1\n\nhello\n..dot\n" in outputs[1]
    assert "\u00fcber".encode() in outputs[1]


# -- PureProxy --------------------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[Tuple[ServerProcess, int]]:
    server, port = start_recorder(reference=False)
    yield server, port
    server.close()


def _calls(server: ServerProcess) -> List[Tuple[Any, ...]]:
    import ast

    return [ast.literal_eval(line) for line in server.new_output().decode().splitlines()]


def test_pureproxy_relays_bytes_messages_with_x_peer(upstream) -> None:
    # stdlib 3.11's PureProxy failed on every message unless decode_data=True.
    server, port = upstream
    with LoopThread(smtpd.PureProxy, ("127.0.0.1", port)) as proxy:
        _send(proxy.port)
    calls = _calls(server)
    assert [(c[1], c[2]) for c in calls] == [(m[0], m[1]) for m in MESSAGES]
    assert calls[0][3] == b"From: a@example.com\nSubject: one\nX-Peer: 127.0.0.1\n\nhello\n..dot"
    assert calls[1][3] == b"Only: headers\nno: separator\nX-Peer: 127.0.0.1"
    assert calls[2][3] == "Subject: utf8\nX-Peer: 127.0.0.1\n\n\u00fcber\n\nend".encode()


def test_pureproxy_with_decode_data_delivers_what_the_stdlib_one_does(upstream) -> None:
    server, port = upstream
    delivered = []
    for reference in (True, False):
        proxy, proxy_port = _start_script(reference, "PureProxy", port, decode=True)
        try:
            with smtplib.SMTP("127.0.0.1", proxy_port, timeout=10) as client:
                for sender, recipients, body in MESSAGES[:2]:  # ASCII: stdlib's smtplib call needs it
                    client.sendmail(sender, recipients, body)
        finally:
            proxy.close()
        delivered.append(_calls(server))
    assert delivered[1] == delivered[0]
    assert len(delivered[0]) == 2


class PickyUpstream(smtpd.SMTPServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: List[Tuple[Any, ...]] = []

    def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        if address.startswith("no"):
            return "550 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> None:
        self.messages.append((mailfrom, list(rcpttos)))


@pytest.fixture
def debugstream(monkeypatch) -> io.StringIO:
    stream = io.StringIO()
    monkeypatch.setattr(smtpd, "DEBUGSTREAM", stream)
    return stream


def test_pureproxy_reports_refused_recipients_like_the_stdlib(debugstream: io.StringIO) -> None:
    with LoopThread(PickyUpstream, None) as picky:
        with LoopThread(smtpd.PureProxy, ("127.0.0.1", picky.port)) as proxy:
            with smtplib.SMTP("127.0.0.1", proxy.port, timeout=10) as client:
                # The proxy accepts the message for everyone: refusals are only logged.
                assert client.sendmail("a@b", ["yes@x", "no@x"], b"m1") == {}
                assert client.sendmail("a@b", ["no@x", "nobody@x"], b"m2") == {}
        assert picky.server.messages == [("a@b", ["yes@x"])]
    log = debugstream.getvalue()
    assert "we got some refusals: {'no@x': (550, b'No such user')}" in log
    assert "got SMTPRecipientsRefused" in log
    assert "we got some refusals: {'no@x': (550, b'No such user'), 'nobody@x': (550, b'No such user')}" in log


def test_pureproxy_with_upstream_down_refuses_everyone(debugstream: io.StringIO) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    with LoopThread(smtpd.PureProxy, ("127.0.0.1", dead_port)) as proxy:
        with smtplib.SMTP("127.0.0.1", proxy.port, timeout=10) as client:
            assert client.sendmail("a@b", ["c@d"], b"lost") == {}
    assert "got <class 'ConnectionRefusedError'>" in debugstream.getvalue()
    assert "we got some refusals: {'c@d': (-1, 'ignore')}" in debugstream.getvalue()


def test_pureproxy_refuses_smtputf8() -> None:
    with pytest.raises(ValueError, match="PureProxy does not support SMTPUTF8."):
        smtpd.PureProxy(("127.0.0.1", 0), ("127.0.0.1", 25), enable_SMTPUTF8=True)


# -- MailmanProxy -------------------------------------------------------------------------


@pytest.fixture
def fake_mailman(monkeypatch) -> List[Tuple[str, str, dict]]:
    """A stand-in for GNU Mailman 2's package: lists "announce" and "devel"."""
    queued: List[Tuple[str, str, dict]] = []

    class Message(email.message.Message):
        def __init__(self, fp: Any) -> None:
            super().__init__()
            parsed = email.message_from_file(fp)
            for key, value in parsed.items():
                self[key] = value
            self.set_payload(parsed.get_payload())

        def Enqueue(self, mlist: Any, **flags: Any) -> None:
            queued.append((mlist.name, self.as_string(), flags))

    class MailList:
        def __init__(self, name: str, lock: int = 1) -> None:
            assert lock == 0
            self.name = name

    package = types.ModuleType("Mailman")
    modules = {
        "Utils": {"list_exists": lambda name: name in ("announce", "devel")},
        "Message": {"Message": Message},
        "MailList": {"MailList": MailList},
    }
    monkeypatch.setitem(sys.modules, "Mailman", package)
    for name, attrs in modules.items():
        module = types.ModuleType("Mailman." + name)
        module.__dict__.update(attrs)
        setattr(package, name, module)
        monkeypatch.setitem(sys.modules, "Mailman." + name, module)
    return queued


def test_mailmanproxy_hands_list_mail_to_mailman_and_relays_the_rest(fake_mailman, upstream) -> None:
    server, port = upstream
    with LoopThread(smtpd.MailmanProxy, ("127.0.0.1", port)) as proxy:
        with smtplib.SMTP("127.0.0.1", proxy.port, timeout=10) as client:
            client.sendmail(
                "sender@example.com",
                ["announce@lists.example", "DEVEL-request@lists.example", "devel-join@x", "devel-bogus@x",
                 "a-b-c@x", "person@example.com"],
                b"Subject: hi\r\n\r\nlist mail\r\n",
            )
    relayed = _calls(server)
    assert [(c[1], c[2]) for c in relayed] == [("sender@example.com", ["devel-bogus@x", "a-b-c@x", "person@example.com"])]
    assert [(name, flags) for name, _, flags in fake_mailman] == [
        ("announce", {"tolist": 1}), ("devel", {"torequest": 1}), ("devel", {"torequest": 1}),
    ]
    text = fake_mailman[2][1]
    assert "From: sender@example.com" in text and "Date: " in text
    assert "Subject: subscribe" in text
    assert text.endswith("list mail")


def test_mailmanproxy_without_mailman_is_a_clear_error() -> None:
    with pytest.raises(ImportError, match="MailmanProxy needs GNU Mailman 2's 'Mailman' package"):
        smtpd.MailmanProxy(("127.0.0.1", 0), ("127.0.0.1", 25))


def test_importing_smtpd_compat_never_imports_mailman() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import sys, smtpd_compat; print('Mailman' in sys.modules, smtpd_compat.MailmanProxy.__name__)"],
        capture_output=True, check=True, env=env_with_repo(),
    )
    assert result.stdout == b"False MailmanProxy\n"
