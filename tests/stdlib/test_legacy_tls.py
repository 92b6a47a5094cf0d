"""STARTTLS and implicit TLS on the legacy face (opt-in): the modern face's
dialogs byte for byte, the STARTTLS injection defence, failed handshakes, and
real TLS clients (smtplib, aiosmtplib, swaks, openssl s_client), the
command line included."""

from __future__ import annotations

import asyncio
import shutil
import signal
import smtplib
import subprocess
from base64 import b64encode
from typing import Any, List

import pytest

from smtpd_compat.engine.sasl import LoginPassword
from smtpd_compat.modern.controller import Controller
from tests.modern._extensions import Dialog
from tests.modern._periphery import CertPair, cert_pair, ehlo_in_last_handshake_flight  # noqa: F401  (fixture)
from tests.stdlib._legacy_extensions import (
    FQDN,
    HANDSHAKE,
    LEGACY_IDENT,
    MESSAGE,
    CallLog,
    LegacyRecorder,
    ModernRecorder,
    both_faces,
    legacy,
    transcript,
)
from tests.stdlib._legacy_support import LoopThread
from tests.stdlib.test_legacy_cli import _run_cli, _start

PLAIN_OK = b"AUTH PLAIN " + b64encode(b"\0alice\0secret")
SEND = [b"MAIL FROM:<a@x>", b"RCPT TO:<b@x>", b"DATA", MESSAGE + b"."]
needs_swaks = pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


# -- the same dialogs as the modern face ------------------------------------------------


@pytest.mark.parametrize("require_starttls", [False, True])
def test_starttls_dialog_matches_the_modern_face(cert_pair: CertPair, require_starttls: bool) -> None:
    lines = [b"NOOP", b"EHLO c.test", b"MAIL FROM:<a@x>", b"AUTH PLAIN", b"VRFY a@x", b"XFOO", b"STARTTLS",
             HANDSHAKE, b"NOOP", b"MAIL FROM:<a@x>", b"EHLO c.test", b"STARTTLS", PLAIN_OK, *SEND, b"QUIT"]
    modern, replies, details = both_faces(lines, cert_pair.client_context(),
                                          tls_context=cert_pair.server_context(), require_starttls=require_starttls)
    assert replies == modern
    assert b"250-STARTTLS\r\n" in replies[2] and b"AUTH" not in replies[2]
    if require_starttls:
        assert replies[3:7] == [b"530 Must issue a STARTTLS command first\r\n"] * 4
    else:
        assert replies[3] == b"250 OK\r\n"
        assert replies[4] == b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    assert replies[7] == b"220 Ready to start TLS\r\n"
    # A new session inside TLS: the EHLO and MAIL sent in the clear are forgotten.
    assert replies[9] == b"503 Error: send HELO first\r\n"
    assert b"250-AUTH LOGIN PLAIN\r\n" in replies[10] and b"STARTTLS" not in replies[10]
    assert replies[11] == b"503 5.5.1 Error: TLS already active\r\n"
    assert replies[12] == b"235 2.7.0 Authentication successful\r\n"
    assert details["legacy_messages"][0][3]["auth_data"] == LoginPassword(b"alice", b"secret")


def test_starttls_replies_without_a_context_or_with_an_argument(cert_pair: CertPair) -> None:
    # An AUTH-only server knows STARTTLS but cannot do it (as the modern face).
    modern, replies, _ = both_faces([b"EHLO c.test", b"STARTTLS"], auth_require_tls=False)
    assert replies == modern
    assert replies[2] == b"454 TLS not available\r\n"
    modern, replies, _ = both_faces([b"STARTTLS now", b"NOOP"], tls_context=cert_pair.server_context())
    assert replies == modern
    assert replies[1] == b"501 Syntax: STARTTLS\r\n"


def test_smtps_dialog_matches_the_modern_controller(cert_pair: CertPair) -> None:
    lines = [b"EHLO c.test", b"STARTTLS", PLAIN_OK, *SEND, b"QUIT"]
    handler = ModernRecorder()
    controller = Controller(handler, hostname="127.0.0.1", port=0, ssl_context=cert_pair.server_context(),
                            server_hostname=FQDN, ident=LEGACY_IDENT, authenticator=CallLog(),
                            enable_SMTPUTF8=False)  # the Controller's default is True
    controller.start()
    try:
        modern = _tls_transcript(controller.port, lines, cert_pair)
    finally:
        controller.stop()
    with legacy(ssl_context=cert_pair.server_context(), authenticator=CallLog()) as loop:
        replies = _tls_transcript(loop.port, lines, cert_pair)
        delivered = loop.server.messages
    assert replies == modern
    assert replies[0].startswith(b"220 ")
    assert b"250-AUTH LOGIN PLAIN\r\n" in replies[1] and b"STARTTLS" not in replies[1]
    assert replies[2] == b"454 TLS not available\r\n"  # SMTPS only: no STARTTLS context
    assert replies[3] == b"235 2.7.0 Authentication successful\r\n"
    assert delivered[0][3]["auth_data"] == LoginPassword(b"alice", b"secret")


def _tls_transcript(port: int, lines: List[bytes], cert_pair: CertPair) -> List[bytes]:
    with Dialog(port, tls=cert_pair.client_context()) as dialog:
        return [dialog.greeting] + [dialog.cmd(line) for line in lines]


# -- STARTTLS injection (CVE-2024-34083) and the switch itself -----------------------------


class MailWatcher(LegacyRecorder):
    """A legacy server with a modern hook: records every MAIL FROM it is asked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mail_froms: List[str] = []
        self.tls_seen: List[Any] = []

    def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        self.mail_froms.append(address)
        self.tls_seen.append(session.ssl is not None and session.ssl["ssl_object"] is not None)
        envelope.mail_from = address
        return "250 OK"


def test_commands_pipelined_behind_starttls_never_run(cert_pair: CertPair) -> None:
    with LoopThread(MailWatcher, None, tls_context=cert_pair.server_context()) as loop:
        with Dialog(loop.port) as dialog:
            dialog.cmd(b"EHLO c.test")
            dialog.send(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@x>\r\n")
            assert dialog.reply() == b"220 Ready to start TLS\r\n"
            dialog.starttls(cert_pair.client_context())
            # The first reply inside TLS answers the client's own EHLO.
            assert dialog.cmd(b"EHLO c.test").startswith(b"250-%s\r\n" % FQDN.encode())
            for line in (b"MAIL FROM:<good@x>", b"RCPT TO:<b@x>"):
                assert dialog.cmd(line) == b"250 OK\r\n"
            assert dialog.cmd(b"DATA").startswith(b"354 ")
            assert dialog.cmd(MESSAGE + b".") == b"250 OK\r\n"
            assert dialog.cmd(b"QUIT") == b"221 Bye\r\n"
        server = loop.server
    assert server.mail_froms == ["good@x"]
    assert server.tls_seen == [True]
    assert [m[:2] for m in server.messages] == [("good@x", ["b@x"])]


def test_plaintext_sent_after_starttls_is_taken_as_a_bad_handshake(cert_pair: CertPair) -> None:
    with LoopThread(MailWatcher, None, tls_context=cert_pair.server_context()) as loop:
        with Dialog(loop.port) as dialog:
            dialog.cmd(b"EHLO c.test")
            assert dialog.cmd(b"STARTTLS") == b"220 Ready to start TLS\r\n"
            dialog.send(b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@x>\r\n")
            assert dialog.rest_until_closed() == b""
        assert loop.server.mail_froms == []


def test_client_data_in_the_segment_that_ends_the_handshake_is_kept(cert_pair: CertPair) -> None:
    """The client's last handshake flight and its first command may arrive in
    one read: the command came over TLS and is answered."""
    with legacy(tls_context=cert_pair.server_context()) as loop, Dialog(loop.port) as dialog:
        dialog.cmd(b"EHLO c.test")
        assert dialog.cmd(b"STARTTLS") == b"220 Ready to start TLS\r\n"
        reply = ehlo_in_last_handshake_flight(dialog.sock, cert_pair.client_context())
    assert reply.startswith(b"250-%s\r\n" % FQDN.encode())


def test_failed_handshake_closes_only_that_connection(cert_pair: CertPair, capsys: pytest.CaptureFixture) -> None:
    with legacy(tls_context=cert_pair.server_context()) as loop:
        with Dialog(loop.port) as other:
            other.cmd(b"EHLO other.test")
            with Dialog(loop.port) as broken:
                broken.cmd(b"EHLO c.test")
                assert broken.cmd(b"STARTTLS") == b"220 Ready to start TLS\r\n"
                broken.send(b"this is not a TLS ClientHello\r\n" * 4)
                assert broken.rest_until_closed() == b""
            assert other.cmd(b"NOOP") == b"250 OK\r\n"
        assert transcript(loop.port, [b"NOOP"])[1] == b"250 OK\r\n"
    # Closed quietly: no "uncaptured python exception" from asyncore.
    assert "uncaptured" not in capsys.readouterr().out


def test_plaintext_client_on_the_smtps_port_is_dropped(cert_pair: CertPair, capsys: pytest.CaptureFixture) -> None:
    with legacy(ssl_context=cert_pair.server_context()) as loop:
        with Dialog(loop.port, greet=False) as plain:
            plain.send(b"EHLO c.test\r\n")
            assert plain.rest_until_closed() == b""  # the greeting waits for the handshake
        assert _tls_transcript(loop.port, [b"NOOP"], cert_pair)[1] == b"250 OK\r\n"
    assert "uncaptured" not in capsys.readouterr().out


class StartTLSVerdict(LegacyRecorder):
    verdict = True

    def handle_STARTTLS(self, server: Any, session: Any, envelope: Any) -> bool:
        return self.verdict and session.ssl is not None


@pytest.mark.parametrize("verdict", [True, False])
def test_handle_starttls_hook_decides_whether_the_session_goes_on(cert_pair: CertPair, verdict: bool) -> None:
    with LoopThread(StartTLSVerdict, None, tls_context=cert_pair.server_context()) as loop:
        loop.server.verdict = verdict
        with Dialog(loop.port) as dialog:
            dialog.cmd(b"EHLO c.test")
            dialog.cmd(b"STARTTLS")
            dialog.starttls(cert_pair.client_context())
            if verdict:
                assert dialog.cmd(b"EHLO c.test").endswith(b"250 HELP\r\n")
            else:
                for line in (b"EHLO c.test", b"NOOP", b"MAIL FROM:<a@x>"):
                    assert dialog.cmd(line) == b"554 Command refused due to lack of security\r\n"
            assert dialog.cmd(b"QUIT") == b"221 Bye\r\n"


def test_large_message_over_tls(cert_pair: CertPair) -> None:
    body = b"".join(b"line %07d %s\r\n" % (i, b"x" * 60) for i in range(40000))  # ~3 MB
    with legacy(tls_context=cert_pair.server_context()) as loop:
        with smtplib.SMTP("127.0.0.1", loop.port, timeout=10) as client:
            client.starttls(context=cert_pair.client_context())
            client.sendmail("a@x", ["b@x"], body)
        messages = loop.server.messages
    assert messages[0][2] == body[:-2].replace(b"\r\n", b"\n")


# -- real clients ------------------------------------------------------------------------


def test_smtplib_starttls_login_and_send(cert_pair: CertPair) -> None:
    log = CallLog()
    with legacy(tls_context=cert_pair.server_context(), require_starttls=True, authenticator=log,
                auth_required=True) as loop:
        with smtplib.SMTP("127.0.0.1", loop.port, timeout=5) as client:
            client.ehlo("c.test")
            assert client.has_extn("starttls") and not client.has_extn("auth")
            assert client.mail("a@x") == (530, b"Must issue a STARTTLS command first")
            client.starttls(context=cert_pair.client_context())
            client.ehlo("c.test")
            assert client.mail("a@x")[0] == 530  # auth_required
            client.rset()
            assert client.login("alice", "secret") == (235, b"2.7.0 Authentication successful")
            assert client.sendmail("a@x", ["b@x"], MESSAGE) == {}
        messages = loop.server.messages
    assert messages == [("a@x", ["b@x"], MESSAGE[:-2].replace(b"\r\n", b"\n"),
                         {"mail_options": ["SIZE=%d" % len(MESSAGE)], "rcpt_options": [],
                          "auth_data": LoginPassword(b"alice", b"secret")})]


def test_smtplib_smtp_ssl(cert_pair: CertPair) -> None:
    with legacy(ssl_context=cert_pair.server_context(), tls_context=cert_pair.server_context(),
                authenticator=CallLog()) as loop:
        with smtplib.SMTP_SSL("127.0.0.1", loop.port, context=cert_pair.client_context(), timeout=5) as client:
            client.ehlo("c.test")
            assert client.esmtp_features["auth"] == " LOGIN PLAIN"
            assert "starttls" not in client.esmtp_features
            assert client.docmd("STARTTLS") == (503, b"5.5.1 Error: TLS already active")
            assert client.login("alice", "secret")[0] == 235
            client.sendmail("a@x", ["b@x"], MESSAGE)
        messages = loop.server.messages
    assert messages[0][3]["auth_data"] == LoginPassword(b"alice", b"secret")


def test_aiosmtplib_start_tls(cert_pair: CertPair) -> None:
    aiosmtplib = pytest.importorskip("aiosmtplib")

    async def send(port: int) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True,
                                 tls_context=cert_pair.client_context(), timeout=5)
        async with client:
            await client.login("alice", "secret")
            await client.sendmail("a@x", ["b@x"], MESSAGE)

    with legacy(tls_context=cert_pair.server_context(), authenticator=CallLog()) as loop:
        asyncio.run(send(loop.port))
        messages = loop.server.messages
    assert messages[0][3]["auth_data"] == LoginPassword(b"alice", b"secret")


@needs_swaks
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("tls_flag", ["--tls", "--tls-on-connect"])
def test_swaks_tls_auth(cert_pair: CertPair, mechanism: str, tls_flag: str) -> None:
    context = cert_pair.server_context()
    settings = {"tls_context": context, "require_starttls": True} if tls_flag == "--tls" else {"ssl_context": context}
    with legacy(authenticator=CallLog(), auth_required=True, **settings) as loop:
        result = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(loop.port), tls_flag,
             "--auth", mechanism, "--auth-user", "alice", "--auth-password", "secret",
             "--from", "a@x", "--to", "b@x", "--helo", "c.test", "--timeout", "5"],
            capture_output=True, timeout=20,
        )
        messages = loop.server.messages
    transcript_text = result.stdout.decode(errors="replace")
    assert result.returncode == 0, transcript_text
    if tls_flag == "--tls":
        assert "<-  220 Ready to start TLS" in transcript_text
    assert "<~  235 2.7.0 Authentication successful" in transcript_text
    assert messages[0][3]["auth_data"] == LoginPassword(b"alice", b"secret")


@needs_openssl
def test_openssl_s_client_starttls(cert_pair: CertPair) -> None:
    with legacy(tls_context=cert_pair.server_context(), require_starttls=True) as loop:
        result = subprocess.run(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % loop.port, "-starttls", "smtp",
             "-CAfile", str(cert_pair.cert), "-verify_return_error", "-crlf", "-quiet"],
            input=b"EHLO s-client.test\nMAIL FROM:<a@x>\nRCPT TO:<b@x>\nDATA\nover s_client\n.\nQUIT\n",
            capture_output=True, timeout=20,
        )
        messages = loop.server.messages
    assert result.returncode == 0, result.stderr
    # s_client read the greeting, its own EHLO's reply and the 220 itself.
    assert result.stdout.startswith(b"250-%s\r\n" % FQDN.encode())
    assert result.stdout.endswith(b"250 OK\r\n221 Bye\r\n")
    assert messages[0][:3] == ("a@x", ["b@x"], b"over s_client")


# -- the command line ----------------------------------------------------------------------


def test_cli_starttls_with_the_debugging_server(cert_pair: CertPair, cli_pair: List[Any]) -> None:
    server, port = _start(False, "-n", "-c", "DebuggingServer", "--tlscert", str(cert_pair.cert),
                          "--tlskey", str(cert_pair.key))
    cli_pair.append((server, port))
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        assert client.ehlo("c.test")[0] == 250 and client.has_extn("starttls")
        assert client.mail("a@x")[0] == 530  # required unless --no-requiretls
        client.starttls(context=cert_pair.client_context())
        client.sendmail("a@x", ["b@x"], b"Subject: cli\r\n\r\nover TLS\r\n")
    server.stop(signal.SIGINT)
    assert b"b'over TLS'" in server.stdout()


def test_cli_no_requiretls_and_smtps(cert_pair: CertPair, cli_pair: List[Any]) -> None:
    started = _start(False, "-n", "-c", "DebuggingServer", "--tlscert", str(cert_pair.cert),
                     "--tlskey", str(cert_pair.key), "--no-requiretls")
    cli_pair.append(started)
    with smtplib.SMTP("127.0.0.1", started[1], timeout=5) as client:
        client.sendmail("a@x", ["b@x"], b"Subject: clear\r\n\r\nin the clear\r\n")
    started = _start(False, "-n", "-c", "DebuggingServer", "--smtpscert", str(cert_pair.cert),
                     "--smtpskey", str(cert_pair.key))
    cli_pair.append(started)
    with smtplib.SMTP_SSL("127.0.0.1", started[1], context=cert_pair.client_context(), timeout=5) as client:
        client.sendmail("a@x", ["b@x"], b"Subject: smtps\r\n\r\nimplicit TLS\r\n")
    outputs = []
    for server, _ in cli_pair:
        server.stop(signal.SIGINT)
        outputs.append(server.stdout())
    assert b"b'in the clear'" in outputs[0]
    assert b"b'implicit TLS'" in outputs[1]


def test_cli_serves_a_modern_handler_over_tls(cert_pair: CertPair, cli_pair: List[Any]) -> None:
    started = _start(False, "-n", "-c", "smtpd_compat.modern.handlers.Sink", "--tlscert", str(cert_pair.cert),
                     "--tlskey", str(cert_pair.key))
    cli_pair.append(started)
    with smtplib.SMTP("127.0.0.1", started[1], timeout=5) as client:
        assert client.mail("a@x")[0] == 530
        client.starttls(context=cert_pair.client_context())
        assert client.sendmail("a@x", ["b@x"], MESSAGE) == {}


@pytest.mark.parametrize("args", [["--smtp", "-V"], ["--sm", "-V"], ["--no", "-V"], ["--n", "-V"],
                                  ["--smtp=1"], ["--no=1"], ["--s"]])
def test_cli_stdlib_abbreviations_mean_what_they_meant(args: List[str]) -> None:
    expected = _run_cli(True, *args)
    got = _run_cli(False, *args)
    assert (got.returncode, got.stdout) == (expected.returncode, expected.stdout)
    assert got.stderr.splitlines()[-1:] == expected.stderr.splitlines()[-1:]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--tlscert", "x.pem"], b"--tlscert and --tlskey must be specified together"),
        (["--smtpskey", "x.pem"], b"--smtpscert and --smtpskey must be specified together"),
        (["--tlscert", "/nonexistent.crt", "--tlskey", "/nonexistent.key"], b"Cert file /nonexistent.crt not found"),
        (["--tls"], b"option --tls not a unique prefix"),
    ],
)
def test_cli_tls_option_errors(args: List[str], message: bytes) -> None:
    result = _run_cli(False, "-n", *args)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == message


def test_cli_help_documents_the_tls_options() -> None:
    text = _run_cli(False, "-h").stderr.decode()
    for option in ("--tlscert", "--tlskey", "--no-requiretls", "--smtpscert", "--smtpskey"):
        assert option in text


EXTENSIONS = ["chunking", "binarymime", "pipelining", "enhancedstatuscodes", "dsn"]


@pytest.mark.parametrize("server_class", ["DebuggingServer", "smtpd_compat.modern.handlers.Sink"])
def test_cli_extension_flags(cli_pair: List[Any], server_class: str) -> None:
    plain = _start(False, "-n", "-c", server_class)
    cli_pair.append(plain)
    offering = _start(False, "-n", "-c", server_class, *("--" + name for name in EXTENSIONS))
    cli_pair.append(offering)
    with smtplib.SMTP("127.0.0.1", plain[1], timeout=10) as client:
        client.ehlo("me")
        assert not any(client.has_extn(name) for name in EXTENSIONS)
    with smtplib.SMTP("127.0.0.1", offering[1], timeout=10) as client:
        client.ehlo("me")
        assert all(client.has_extn(name) for name in EXTENSIONS)
        assert client.docmd("BDAT 0")[0] == 503  # BDAT is a command now (no MAIL yet)


@pytest.mark.parametrize("args", [["--c=x", "-V"], ["--d", "-V"], ["--de", "-V"], ["--cl=x", "-V"]])
def test_cli_abbreviations_next_to_the_extension_flags(args: List[str]) -> None:
    expected = _run_cli(True, *args)
    got = _run_cli(False, *args)
    assert (got.returncode, got.stdout) == (expected.returncode, expected.stdout)
    assert got.stderr.splitlines()[-1:] == expected.stderr.splitlines()[-1:]


def test_cli_help_documents_the_extension_flags() -> None:
    text = _run_cli(False, "-h").stderr.decode()
    for name in EXTENSIONS:
        assert "--" + name in text


@pytest.fixture
def cli_pair() -> Any:
    started: List[Any] = []
    yield started
    for server, _ in started:
        server.close()
