"""Letting no one in: commands injected before a STARTTLS handshake, and
AUTH refusals (plaintext, "*" cancels, bad base64) that must never reach
the authenticator.  Both faces: the legacy face offers STARTTLS and AUTH
when its SMTPServer is given a context and an authenticator.  AUTH failure
limits are tested in tests/modern/test_auth.py."""

from __future__ import annotations

import base64
from typing import Any, List

import pytest

from smtpd_compat.modern.auth import AuthResult

from ..modern._periphery import CertPair, cert_pair  # noqa: F401  (fixture)
from ._faces import Wire
from .conftest import MakeFace

INJECTED = (
    b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
    b"Subject: injected\r\n\r\nbody\r\n.\r\n"
)


def test_a_transaction_pipelined_behind_starttls_never_runs(make_face: MakeFace, cert_pair: CertPair) -> None:
    face = make_face(tls_context=cert_pair.server_context())
    with Wire(face.port) as wire:
        assert b"250-STARTTLS" in wire.cmd(b"EHLO c")
        wire.send(b"STARTTLS\r\n" + INJECTED)
        assert wire.reply() == b"220 Ready to start TLS\r\n"
        wire.starttls(cert_pair.client_context())
        assert wire.cmd(b"EHLO c").startswith(b"250-")
        assert wire.cmd(b"RCPT TO:<victim@example.org>") == b"503 Error: need MAIL command\r\n"
        assert wire.cmd(b"DATA") == b"503 Error: need RCPT command\r\n"
        assert wire.cmd(b"QUIT") == b"221 Bye\r\n"
    assert face.deliveries == []


def test_legacy_face_has_no_starttls_and_no_auth_by_default(make_legacy: MakeFace) -> None:
    """As stdlib smtpd, unless the SMTPServer is given a TLS context and an
    authenticator: STARTTLS and AUTH are unknown commands."""
    face = make_legacy()
    with Wire(face.port) as wire:
        assert b"STARTTLS" not in wire.cmd(b"EHLO c")
        assert wire.cmd(b"STARTTLS") == b'500 Error: command "STARTTLS" not recognized\r\n'
        assert wire.cmd(b"AUTH PLAIN " + base64.b64encode(b"\0alice\0secret")).startswith(b"500 ")


class CountingAuthenticator:
    """Accepts alice/secret; records every call it gets."""

    def __init__(self) -> None:
        self.calls: List[Any] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        self.calls.append((mechanism, data))
        return AuthResult(success=(data.login, data.password) == (b"alice", b"secret"))


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_no_credentials_over_plaintext_when_auth_require_tls(make_face: MakeFace) -> None:
    authenticator = CountingAuthenticator()
    face = make_face(authenticator=authenticator, auth_required=True, auth_require_tls=True)
    with Wire(face.port) as wire:
        assert b"AUTH" not in wire.cmd(b"EHLO c")
        for attempt in (b"AUTH PLAIN " + b64(b"\0alice\0secret"), b"AUTH LOGIN", b"AUTH LOGIN " + b64(b"alice")):
            assert wire.cmd(attempt) == b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
        assert wire.cmd(b"MAIL FROM:<a@x.test>") == b"530 5.7.0 Authentication required\r\n"
    assert authenticator.calls == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize(
    "dialog",
    [
        [b"AUTH PLAIN", b"*"],
        [b"AUTH LOGIN", b"*"],
        [b"AUTH LOGIN", b64(b"alice"), b"*"],
        [b"AUTH LOGIN " + b64(b"alice"), b"*"],
        [b"AUTH PLAIN !!!notbase64"],
        [b"AUTH PLAIN", b"@@@@"],
        [b"AUTH LOGIN", b"YWxpY2U"],
        [b"AUTH LOGIN", b64(b"alice"), b"c2VjcmV0!"],
        [b"AUTH LOGIN =" + b"A" * 400],
    ],
    ids=["plain-star", "login-star", "login-star-at-password", "login-inline-star", "plain-bad", "plain-challenge-bad",
         "login-unpadded", "login-bad-password", "login-junk"],
)
def test_cancelled_or_undecodable_auth_never_reaches_the_authenticator(make_face: MakeFace, dialog: List[bytes]) -> None:
    authenticator = CountingAuthenticator()
    face = make_face(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    with Wire(face.port) as wire:
        wire.cmd(b"EHLO c")
        replies = [wire.cmd(line) for line in dialog]
        assert all(reply.startswith(b"334 ") for reply in replies[:-1]), replies
        assert replies[-1].startswith(b"501 "), replies
        assert wire.cmd(b"MAIL FROM:<a@x.test>") == b"530 5.7.0 Authentication required\r\n"
        # The session is still usable: a good AUTH now succeeds.
        assert wire.cmd(b"AUTH PLAIN " + b64(b"\0alice\0secret")).startswith(b"235 ")
    assert [mechanism for mechanism, _ in authenticator.calls] == ["PLAIN"]  # the good one only
