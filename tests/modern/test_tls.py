"""STARTTLS and SMTPS on the modern face, with real TLS peers: smtplib,
aiosmtplib, swaks, ``openssl s_client`` and raw sockets wrapped in place."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import ssl
import subprocess
from typing import Any, List

import pytest

from smtpd_compat.modern.controller import Controller
from smtpd_compat.modern.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from ._extensions import CRLF, HANDSHAKE, Dialog, HookRecorder, replies_of_both, run_dialog, serve
from ._periphery import CertPair, cert_pair, ehlo_in_last_handshake_flight  # noqa: F401  (fixture)
from ._servers import free_port

MESSAGE = b"Subject: tls\r\n\r\nover TLS\r\n"


def accept_alice(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data == (b"alice", b"secret")
    return AuthResult(success=ok, handled=False, auth_data=data)


# -- STARTTLS with raw sockets ------------------------------------------------


def test_starttls_upgrades_and_starts_a_new_session(cert_pair: CertPair) -> None:
    handler = HookRecorder()
    with serve(handler, tls_context=cert_pair.server_context()) as server, Dialog(server.port) as dialog:
        ehlo = dialog.cmd(b"EHLO c.test")
        assert b"250-STARTTLS\r\n" in ehlo
        assert b"AUTH" not in ehlo  # auth_require_tls: no AUTH over plaintext
        assert dialog.cmd(b"STARTTLS") == b"220 Ready to start TLS\r\n"
        dialog.starttls(cert_pair.client_context())
        # A new session: the EHLO before TLS no longer counts (RFC 3207 4.2).
        assert dialog.cmd(b"MAIL FROM:<a@x>") == b"503 Error: send HELO first\r\n"
        ehlo = dialog.cmd(b"EHLO c.test")
        assert b"STARTTLS" not in ehlo
        assert b"250-AUTH LOGIN PLAIN\r\n" in ehlo
        for line in (b"MAIL FROM:<a@x>", b"RCPT TO:<b@x>"):
            assert dialog.cmd(line) == b"250 OK\r\n"
        assert dialog.cmd(b"DATA").startswith(b"354")
        assert dialog.cmd(MESSAGE + b".") == b"250 OK\r\n"
    session = handler.sessions[0]
    assert session.ssl is not None
    assert set(session.ssl) == {"sslcontext", "ssl_object", "peercert", "cipher", "compression"}
    assert isinstance(session.ssl["ssl_object"], ssl.SSLObject)
    assert session.ssl["cipher"][1].startswith("TLSv1")
    assert session.peer is not None and session.peer[0] == "127.0.0.1"


def test_commands_pipelined_behind_starttls_never_run(cert_pair: CertPair) -> None:
    """CVE-2024-34083: plaintext sent in the same segment as STARTTLS is dropped
    at the switch; the first reply inside TLS answers the client's own EHLO."""
    handler = HookRecorder()
    with serve(handler, tls_context=cert_pair.server_context()) as server, Dialog(server.port) as dialog:
        dialog.cmd(b"EHLO c.test")
        dialog.send(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@x>\r\n")
        assert dialog.reply() == b"220 Ready to start TLS\r\n"
        dialog.starttls(cert_pair.client_context())
        assert dialog.cmd(b"EHLO c.test").startswith(b"250-mx.test\r\n")
        assert dialog.cmd(b"MAIL FROM:<good@x>") == b"250 OK\r\n"
        assert dialog.cmd(b"RCPT TO:<b@x>") == b"250 OK\r\n"
        assert dialog.cmd(b"QUIT") == b"221 Bye\r\n"
    assert handler.mail_froms == ["good@x"]


def test_client_data_in_the_segment_that_ends_the_handshake_is_kept(cert_pair: CertPair) -> None:
    """The client's last handshake flight and its first command may arrive in one
    read; the command was sent over TLS and must be answered, not discarded."""
    with serve(HookRecorder(), tls_context=cert_pair.server_context()) as server, Dialog(server.port) as dialog:
        dialog.cmd(b"EHLO c.test")
        assert dialog.cmd(b"STARTTLS") == b"220 Ready to start TLS\r\n"
        reply = ehlo_in_last_handshake_flight(dialog.sock, cert_pair.client_context())
        assert reply.startswith(b"250-mx.test\r\n")


def test_second_starttls_inside_tls_is_refused(cert_pair: CertPair) -> None:
    with serve(HookRecorder(), tls_context=cert_pair.server_context()) as server, Dialog(server.port) as dialog:
        dialog.cmd(b"EHLO c.test")
        dialog.cmd(b"STARTTLS")
        dialog.starttls(cert_pair.client_context())
        dialog.cmd(b"EHLO c.test")
        assert dialog.cmd(b"STARTTLS") == b"503 5.5.1 Error: TLS already active\r\n"
        assert dialog.cmd(b"NOOP") == b"250 OK\r\n"  # still the same TLS session


def test_starttls_replies_without_context_and_with_argument(cert_pair: CertPair) -> None:
    with serve(HookRecorder()) as server:
        assert run_dialog(server.port, [b"EHLO c.test", b"STARTTLS"])[2] == b"454 TLS not available\r\n"
    with serve(HookRecorder(), tls_context=cert_pair.server_context()) as server:
        assert run_dialog(server.port, [b"STARTTLS now"])[1] == b"501 Syntax: STARTTLS\r\n"


def test_failed_handshake_closes_only_that_connection(cert_pair: CertPair) -> None:
    handler = HookRecorder()
    with serve(handler, tls_context=cert_pair.server_context()) as server:
        with Dialog(server.port) as other:
            other.cmd(b"EHLO other.test")
            with Dialog(server.port) as broken:
                broken.cmd(b"EHLO c.test")
                assert broken.cmd(b"STARTTLS") == b"220 Ready to start TLS\r\n"
                broken.send(b"this is not a TLS ClientHello\r\n" * 4)
                assert broken.rest_until_closed() == b""
            # An open session and new connections are unaffected.
            assert other.cmd(b"NOOP") == b"250 OK\r\n"
        assert run_dialog(server.port, [b"NOOP"])[1] == b"250 OK\r\n"
    assert [type(error) for error in handler.errors] == [TLSSetupException]


def test_require_starttls_gates_everything_but_ehlo_noop_quit_starttls(cert_pair: CertPair) -> None:
    handler = HookRecorder()
    with serve(handler, tls_context=cert_pair.server_context(), require_starttls=True) as server:
        with Dialog(server.port) as dialog:
            refused = b"530 Must issue a STARTTLS command first\r\n"
            for line in (b"HELO c.test", b"MAIL FROM:<a@x>", b"RCPT TO:<b@x>", b"DATA", b"VRFY a@x",
                         b"HELP", b"RSET", b"AUTH PLAIN", b"EXPN a"):
                assert dialog.cmd(line) == refused, line
            assert dialog.cmd(b"NOOP") == b"250 OK\r\n"
            assert dialog.cmd(b"EHLO c.test").startswith(b"250-mx.test")
            assert dialog.cmd(b"STARTTLS") == b"220 Ready to start TLS\r\n"
            dialog.starttls(cert_pair.client_context())
            dialog.cmd(b"EHLO c.test")
            assert dialog.cmd(b"MAIL FROM:<a@x>") == b"250 OK\r\n"
            assert dialog.cmd(b"QUIT") == b"221 Bye\r\n"
        assert run_dialog(server.port, [b"QUIT"])[1] == b"221 Bye\r\n"
    assert handler.mail_froms == ["a@x"]


def test_require_starttls_needs_a_context() -> None:
    with serve(HookRecorder(), require_starttls=True) as server:
        assert run_dialog(server.port, [b"HELO c.test"])[1] == b"250 mx.test\r\n"


class StartTLSVerdict(HookRecorder):
    def __init__(self, verdict: bool) -> None:
        super().__init__()
        self.verdict = verdict
        self.seen: List[Any] = []

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        # Synchronous, like aiosmtpd: it runs right after the handshake.
        self.seen.append((session.ssl is not None, server.session is session))
        return self.verdict


@pytest.mark.parametrize("verdict", [True, False])
def test_handle_starttls_decides_whether_the_session_may_continue(cert_pair: CertPair, verdict: bool) -> None:
    handler = StartTLSVerdict(verdict)
    with serve(handler, tls_context=cert_pair.server_context()) as server, Dialog(server.port) as dialog:
        dialog.cmd(b"EHLO c.test")
        dialog.cmd(b"STARTTLS")
        dialog.starttls(cert_pair.client_context())
        if verdict:
            assert dialog.cmd(b"EHLO c.test").endswith(b"250 HELP\r\n")
        else:
            for line in (b"EHLO c.test", b"NOOP", b"MAIL FROM:<a@x>"):
                assert dialog.cmd(line) == b"554 Command refused due to lack of security\r\n"
        assert dialog.cmd(b"QUIT") == b"221 Bye\r\n"
    assert handler.seen == [(True, True)]


# -- the same STARTTLS dialogs as aiosmtpd --------------------------------------


class SSLKeys:
    """Records the ``session.ssl`` keys whenever NOOP arrives."""

    def __init__(self) -> None:
        self.keys: List[List[str]] = []

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: Any) -> str:
        self.keys.append(sorted(session.ssl or ()))
        return "250 OK"


@pytest.mark.parametrize("require_starttls", [False, True])
def test_starttls_dialog_matches_aiosmtpd(cert_pair: CertPair, require_starttls: bool) -> None:
    lines = [b"NOOP", b"HELP", b"EHLO c.test", b"MAIL FROM:<a@x>", b"AUTH PLAIN", b"STARTTLS", HANDSHAKE,
             b"NOOP", b"MAIL FROM:<a@x>", b"EHLO c.test", b"HELP", b"MAIL FROM:<a@x>", b"QUIT"]
    (theirs, their_handler), (mine, my_handler) = replies_of_both(
        lines,
        lambda module: (SSLKeys(), {"tls_context": cert_pair.server_context(),
                                    "require_starttls": require_starttls}),
        cert_pair.client_context(),
    )
    assert mine == theirs
    assert b"250-STARTTLS\r\n" in mine[3] and b"AUTH" not in mine[3]
    assert b"250-AUTH LOGIN PLAIN\r\n" in mine[9] and b"STARTTLS" not in mine[9]
    assert my_handler.keys == their_handler.keys
    assert my_handler.keys[-1] == ["cipher", "compression", "peercert", "ssl_object", "sslcontext"]


# -- SMTPS through the Controller ------------------------------------------------


def test_smtps_offers_auth_and_no_starttls(cert_pair: CertPair) -> None:
    """aiosmtpd issue #274: over implicit TLS it hid AUTH and answered 538."""
    handler = HookRecorder()
    controller = Controller(handler, hostname="127.0.0.1", port=0, ssl_context=cert_pair.server_context(),
                            server_hostname="mx.test", authenticator=accept_alice,
                            tls_context=cert_pair.server_context())
    controller.start()
    try:
        with smtplib.SMTP_SSL("127.0.0.1", controller.port, context=cert_pair.client_context(), timeout=5) as client:
            code, _ = client.ehlo("c.test")
            assert code == 250
            assert client.esmtp_features["auth"] == " LOGIN PLAIN"
            assert "starttls" not in client.esmtp_features
            assert client.docmd("STARTTLS") == (503, b"5.5.1 Error: TLS already active")
            assert client.login("alice", "secret") == (235, b"2.7.0 Authentication successful")
            client.sendmail("a@x", ["b@x"], MESSAGE)
    finally:
        controller.stop()
    session = handler.sessions[0]
    assert session.authenticated is True
    assert session.auth_data == LoginPassword(b"alice", b"secret")
    assert session.ssl is not None and session.ssl["ssl_object"] is not None


def test_aiosmtpd_smtps_hides_auth_for_comparison(cert_pair: CertPair) -> None:
    aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
    port = free_port()
    controller = aiosmtpd_controller.Controller(HookRecorder(), hostname="127.0.0.1", port=port,
                                                ssl_context=cert_pair.server_context())
    controller.start()
    try:
        with smtplib.SMTP_SSL("127.0.0.1", port, context=cert_pair.client_context(), timeout=5) as client:
            client.ehlo("c.test")
            assert "auth" not in client.esmtp_features
            assert client.docmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==")[0] == 538
    finally:
        controller.stop()


# -- real TLS clients ------------------------------------------------------------


def test_smtplib_starttls_login_and_send(cert_pair: CertPair) -> None:
    handler = HookRecorder()
    with serve(handler, tls_context=cert_pair.server_context(), require_starttls=True,
               authenticator=accept_alice, auth_required=True) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
            client.ehlo("c.test")
            assert not client.has_extn("auth")
            client.starttls(context=cert_pair.client_context())
            client.ehlo("c.test")
            assert client.login("alice", "secret")[0] == 235
            assert client.sendmail("a@x", ["b@x"], MESSAGE) == {}
    assert handler.envelopes[0].content == MESSAGE
    assert handler.sessions[0].ssl is not None


def test_aiosmtplib_start_tls(cert_pair: CertPair) -> None:
    aiosmtplib = pytest.importorskip("aiosmtplib")
    handler = HookRecorder()

    async def send(port: int) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True,
                                 tls_context=cert_pair.client_context(), timeout=5)
        async with client:
            assert client.get_transport_info("sslcontext") is not None
            await client.login("alice", "secret")
            await client.sendmail("a@x", ["b@x"], MESSAGE)

    with serve(handler, tls_context=cert_pair.server_context(), authenticator=accept_alice) as server:
        asyncio.run(send(server.port))
    assert handler.envelopes[0].content == MESSAGE
    assert handler.sessions[0].authenticated is True


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_tls_auth(cert_pair: CertPair, mechanism: str) -> None:
    handler = HookRecorder()
    with serve(handler, tls_context=cert_pair.server_context(), require_starttls=True,
               authenticator=accept_alice) as server:
        result = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(server.port), "--tls",
             "--auth", mechanism, "--auth-user", "alice", "--auth-password", "secret",
             "--from", "a@x", "--to", "b@x", "--helo", "c.test", "--timeout", "5"],
            capture_output=True, timeout=20,
        )
    assert result.returncode == 0, result.stdout.decode(errors="replace")
    transcript = result.stdout.decode()
    assert "<-  220 Ready to start TLS" in transcript
    assert "<~  235 2.7.0 Authentication successful" in transcript
    assert handler.sessions[0].auth_data.login == b"alice"
    assert handler.sessions[0].ssl is not None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_starttls(cert_pair: CertPair) -> None:
    handler = HookRecorder()
    with serve(handler, tls_context=cert_pair.server_context(), require_starttls=True) as server:
        result = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-starttls", "smtp",
             "-CAfile", str(cert_pair.cert), "-verify_return_error", "-crlf", "-quiet"],
            input=b"EHLO s-client.test\nMAIL FROM:<a@x>\nRCPT TO:<b@x>\nDATA\nover s_client\n.\nQUIT\n",
            capture_output=True, timeout=20,
        )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert out.startswith(b"250-mx.test\r\n")  # s_client consumed greeting, EHLO and 220 itself
    assert out.endswith(b"250 OK\r\n221 Bye\r\n")
    assert handler.envelopes[0].content == b"over s_client" + CRLF
    assert handler.sessions[0].ssl is not None
