"""AUTH on the legacy face (opt-in): the modern face's dialogs byte for byte,
the authenticator contract, auth_required, and real clients."""

from __future__ import annotations

import collections
import smtplib
import warnings
from base64 import b64encode
from typing import Any, Dict, List
from unittest import mock

import pytest

import smtpd_compat as smtpd
from smtpd_compat.engine.sasl import AuthResult, LoginPassword
from smtpd_compat.modern.controller import Controller
from tests.stdlib._legacy_extensions import MESSAGE, CallLog, LegacyRecorder, both_faces, legacy, transcript
from tests.stdlib._legacy_support import LoopThread, converse, start_recorder


def b64(text: bytes) -> bytes:
    return b64encode(text)


PLAIN_OK = b"AUTH PLAIN " + b64(b"\0alice\0secret")
PLAIN_BAD = b"AUTH PLAIN " + b64(b"\0alice\0wrong")
SEND = [b"MAIL FROM:<a@x>", b"RCPT TO:<b@x>", b"DATA", MESSAGE + b"."]

# One EHLO per dialog: the legacy face keeps stdlib smtpd's "503 Duplicate HELO/EHLO".
DIALOGS: Dict[str, List[bytes]] = {
    "plain inline": [b"EHLO c.test", PLAIN_OK, b"NOOP", PLAIN_OK, *SEND],
    "plain challenge": [b"EHLO c.test", b"AUTH PLAIN", b64(b"\0alice\0secret"), *SEND],
    "plain wrong password": [b"EHLO c.test", PLAIN_BAD, b"NOOP", PLAIN_OK, *SEND],
    "plain with authzid": [b"EHLO c.test", b"AUTH PLAIN " + b64(b"admin\0alice\0secret"), b"NOOP"],
    "login inline username": [b"EHLO c.test", b"AUTH LOGIN " + b64(b"alice"), b64(b"secret"), *SEND],
    "login challenges": [b"EHLO c.test", b"AUTH LOGIN", b64(b"alice"), b64(b"secret"), b"NOOP"],
    "login wrong": [b"EHLO c.test", b"AUTH LOGIN", b64(b"alice"), b64(b"nope"), b"NOOP"],
    "login empty password": [b"EHLO c.test", b"AUTH LOGIN", b64(b"alice"), b"", b"NOOP"],
    "authenticator messages": [
        b"EHLO c.test", b"AUTH PLAIN " + b64(b"\0custom\0bad"), b"AUTH PLAIN " + b64(b"\0custom\0pw"), *SEND,
    ],
    "star cancels": [
        b"EHLO c.test", b"AUTH PLAIN", b"*", b"AUTH LOGIN", b"*", b"AUTH LOGIN", b64(b"alice"), b"*",
        b"AUTH LOGIN " + b64(b"alice"), b" * ", b"NOOP",
    ],
    "bad base64": [
        b"EHLO c.test", b"AUTH PLAIN !!!!", b"AUTH PLAIN", b"not base64", b"AUTH LOGIN @@", b"AUTH LOGIN",
        b"YWxpY2U", b"AUTH LOGIN", b64(b"alice"), b"c2VjcmV0!", b"NOOP",
    ],
    "plain value that does not split": [
        b"EHLO c.test", b"AUTH PLAIN " + b64(b"alice\0secret"), b"AUTH PLAIN =", b"AUTH PLAIN",
        b64(b"\0a\0b\0c"), b"NOOP",
    ],
    "gates before EHLO": [b"AUTH PLAIN", b"EHLO c.test", b"AUTH", b"AUTH PLAIN a b", b"AUTH CRAM-MD5",
                          b"AUTH plain " + b64(b"\0alice\0secret"), b"NOOP"],
    "AUTH after HELO": [b"HELO c.test", PLAIN_OK, b"NOOP"],
    "a command is an answer inside the exchange": [b"EHLO c.test", b"AUTH LOGIN", b"QUIT", b"NOOP", b"NOOP"],
}


@pytest.mark.parametrize("name", sorted(DIALOGS))
def test_same_dialog_as_the_modern_face(name: str) -> None:
    modern, legacy_replies, details = both_faces(DIALOGS[name], auth_require_tls=False)
    assert legacy_replies == modern
    assert details["legacy_calls"] == details["modern_calls"]
    # What the handler learns about the client's identity agrees, too.
    legacy_seen = [(m[0], m[1], m[3].get("auth_data")) for m in details["legacy_messages"]]
    modern_seen = [(m[0], m[1], m[3]) for m in details["modern_messages"]]
    assert legacy_seen == modern_seen


def test_the_shared_texts() -> None:
    """Spelled out once; the side-by-side test proves both faces use them."""
    _, replies, details = both_faces(DIALOGS["star cancels"], auth_require_tls=False)
    assert replies[1].endswith(b"250-8BITMIME\r\n250-AUTH LOGIN PLAIN\r\n250 HELP\r\n")
    assert replies[2] == b"334 \r\n"
    assert replies[3] == b"501 5.7.0 Auth aborted\r\n"
    assert replies[4] == b"334 VXNlciBOYW1lAA==\r\n"
    assert replies[7] == b"334 UGFzc3dvcmQA\r\n"
    assert details["legacy_calls"] == []  # "*" stops before any check
    _, replies, _ = both_faces(DIALOGS["bad base64"], auth_require_tls=False)
    assert replies[2] == b"501 5.5.2 Can't decode base64\r\n"
    _, replies, _ = both_faces(DIALOGS["plain inline"], auth_require_tls=False)
    assert replies[2] == b"235 2.7.0 Authentication successful\r\n"
    assert replies[4] == b"503 Already authenticated\r\n"
    _, replies, _ = both_faces(DIALOGS["plain wrong password"], auth_require_tls=False)
    assert replies[2] == b"535 5.7.8 Authentication credentials invalid\r\n"


def test_auth_required_gates_like_the_modern_face() -> None:
    lines = [b"EHLO c.test", b"MAIL FROM:<a@x>", b"RCPT TO:<b@x>", b"DATA", b"VRFY a@x", b"HELP", b"NOOP",
             b"RSET", b"EXPN a", PLAIN_OK, *SEND]
    with pytest.warns(UserWarning, match="Requiring AUTH while not requiring TLS"):
        modern, replies, details = both_faces(lines, auth_require_tls=False, auth_required=True)
    assert replies == modern
    required = b"530 5.7.0 Authentication required\r\n"
    assert replies[2:7] == [required] * 5
    assert replies[7:10] == [b"250 OK\r\n", b"250 OK\r\n", b"502 EXPN not implemented\r\n"]
    assert replies[-1] == b"250 OK\r\n"
    assert details["legacy_messages"][0][3]["auth_data"] == LoginPassword(b"alice", b"secret")


def test_auth_needs_tls_by_default() -> None:
    """auth_require_tls (the default): not offered, and refused, in the clear."""
    lines = [b"EHLO c.test", PLAIN_OK, b"NOOP"]
    modern, replies, details = both_faces(lines)
    assert replies == modern
    assert b"AUTH" not in replies[1]
    assert replies[2] == b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    assert details["legacy_calls"] == []


def test_process_message_sees_who_authenticated() -> None:
    with legacy(authenticator=CallLog(), auth_require_tls=False, decode_data=True) as loop:
        with smtplib.SMTP("127.0.0.1", loop.port, timeout=5) as client:
            client.login("alice", "secret")
            client.sendmail("a@x", ["b@x"], MESSAGE)
            client.sendmail("c@x", ["d@x"], MESSAGE)
        with smtplib.SMTP("127.0.0.1", loop.port, timeout=5) as client:
            client.sendmail("e@x", ["f@x"], MESSAGE)  # AUTH offered, not used
        messages = loop.server.messages
    alice = LoginPassword(b"alice", b"secret")
    # decode_data=True: stdlib passed no keyword at all; auth_data is the only one.
    assert [m[3] for m in messages] == [{"auth_data": alice}, {"auth_data": alice}, {}]


def test_the_same_server_class_reports_auth_data_on_the_modern_face() -> None:
    server = LegacyRecorder(None, None)
    controller = Controller(server, hostname="127.0.0.1", port=0, authenticator=CallLog(), auth_require_tls=False)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=5) as client:
            client.login("alice", "secret")
            client.sendmail("a@x", ["b@x"], MESSAGE)
    finally:
        controller.stop()
    assert server.messages[0][3]["auth_data"] == LoginPassword(b"alice", b"secret")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("initial_response", [True, False])
def test_smtplib_login(mechanism: str, initial_response: bool) -> None:
    log = CallLog()
    with legacy(authenticator=log, auth_require_tls=False) as loop:
        with smtplib.SMTP("127.0.0.1", loop.port, timeout=5) as client:
            client.ehlo("c.test")
            assert client.esmtp_features["auth"] == " LOGIN PLAIN"
            client.user, client.password = "alice", "secret"
            authobject = client.auth_plain if mechanism == "PLAIN" else client.auth_login
            code, text = client.auth(mechanism, authobject, initial_response_ok=initial_response)
            assert (code, text) == (235, b"2.7.0 Authentication successful")
            client.sendmail("a@x", ["b@x"], MESSAGE)
            client.user, client.password = "alice", "wrong"
            assert client.auth(mechanism, authobject) == (503, b"Already authenticated")
        messages = loop.server.messages
    assert log.calls == [(mechanism, LoginPassword(b"alice", b"secret"))]
    assert messages[0][3]["auth_data"] == LoginPassword(b"alice", b"secret")


def test_wrong_password_with_smtplib() -> None:
    with pytest.warns(UserWarning):
        loop = legacy(authenticator=CallLog(), auth_require_tls=False, auth_required=True)
    with loop:
        with smtplib.SMTP("127.0.0.1", loop.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                client.login("alice", "wrong")
            assert refused.value.smtp_code == 535
            with pytest.raises(smtplib.SMTPSenderRefused) as gated:
                client.sendmail("a@x", ["b@x"], MESSAGE)
            assert gated.value.smtp_code == 530
        assert loop.server.messages == []


def test_async_authenticator_is_awaited() -> None:
    """Hooks on the legacy face may be coroutines; so may the authenticator."""
    seen: List[Any] = []

    async def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        seen.append((server.hostname, session.peer[0], mechanism))
        return AuthResult(success=data.password == b"secret", handled=False, auth_data="alice")

    with legacy(authenticator=authenticator, auth_require_tls=False) as loop:
        replies = transcript(loop.port, [b"EHLO c.test", PLAIN_BAD, PLAIN_OK])
    assert replies[2:] == [b"535 5.7.8 Authentication credentials invalid\r\n",
                           b"235 2.7.0 Authentication successful\r\n"]
    assert seen[0][1:] == ("127.0.0.1", "PLAIN")


def test_authenticator_that_returns_no_authresult_fails_closed() -> None:
    with legacy(authenticator=lambda *args: True, auth_require_tls=False) as loop:
        replies = transcript(loop.port, [b"EHLO c.test", PLAIN_OK, b"MAIL FROM:<a@x>"])
    assert replies[2] == b"535 5.7.8 Authentication credentials invalid\r\n"


def test_handled_failure_still_gets_a_reply() -> None:
    """A synchronous authenticator cannot reply itself (as on the modern face)."""
    with legacy(authenticator=lambda *args: AuthResult(success=False), auth_require_tls=False) as loop:
        replies = transcript(loop.port, [b"EHLO c.test", PLAIN_OK])
    assert replies[2] == b"535 5.7.8 Authentication credentials invalid\r\n"


def test_excluded_mechanism_is_neither_offered_nor_accepted() -> None:
    lines = [b"EHLO c.test", b"AUTH LOGIN", PLAIN_OK]
    modern, replies, _ = both_faces(lines, auth_require_tls=False, auth_exclude_mechanism=["LOGIN"])
    assert replies == modern
    assert b"250-AUTH PLAIN\r\n" in replies[1]
    assert replies[2] == b"504 5.5.4 Unrecognized authentication type\r\n"
    assert replies[3] == b"235 2.7.0 Authentication successful\r\n"


class SessionWatcher(LegacyRecorder):
    """A modern hook on a legacy server sees the AUTH state in its session."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: List[Any] = []

    def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        self.sessions.append((session.authenticated, session.auth_data))
        envelope.mail_from = address
        return "250 OK"


def test_bridge_hooks_see_the_auth_state() -> None:
    with LoopThread(SessionWatcher, None, authenticator=CallLog(), auth_require_tls=False) as loop:
        transcript(loop.port, [b"EHLO c.test", b"MAIL FROM:<a@x>", b"RSET", PLAIN_OK, b"MAIL FROM:<a@x>"])
        sessions = loop.server.sessions
    assert sessions == [(False, None), (True, LoginPassword(b"alice", b"secret"))]


# -- nothing changes unless asked -------------------------------------------------------


def test_without_an_authenticator_auth_is_unknown_as_in_the_stdlib() -> None:
    dialog = [b"EHLO c.test\r\n", PLAIN_OK + b"\r\n", b"AUTH LOGIN\r\n", b"STARTTLS\r\n", b"HELP AUTH\r\n"]
    transcripts = []
    for reference in (True, False):
        server, port = start_recorder(reference)
        try:
            transcripts.append(converse(port, dialog))
        finally:
            server.close()
    assert transcripts[1] == transcripts[0]
    assert b'500 Error: command "AUTH" not recognized\r\n' in transcripts[1][2]


def test_stdlib_signature_and_kwargs_passing_subclasses_still_work() -> None:
    # Positional arguments as stdlib smtpd took them.
    server = LegacyRecorder(None, None, 1000, None, False, True)
    assert (server.data_size_limit, server._decode_data, server.authenticator) == (1000, True, None)

    class PassesKwargs(LegacyRecorder):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)

    log = CallLog()
    with pytest.raises(TypeError):
        LegacyRecorder(None, None, 1000, None, False, False, log)  # the additions are keyword-only
    with legacy(authenticator=log, auth_require_tls=False) as loop:
        assert isinstance(loop.server, LegacyRecorder)
    with LoopThread(PassesKwargs, None, authenticator=log, auth_require_tls=False) as loop:
        replies = transcript(loop.port, [b"EHLO c.test", PLAIN_OK])
    assert replies[2].startswith(b"235 ")


def test_attributes_set_after_creation_count_for_new_connections() -> None:
    with legacy() as loop:
        assert b"AUTH" not in transcript(loop.port, [b"EHLO c.test"])[1]
        loop.server.authenticator = CallLog()
        loop.server.auth_require_tls = False
        replies = transcript(loop.port, [b"EHLO c.test", PLAIN_OK])
    assert b"250-AUTH LOGIN PLAIN\r\n" in replies[1]
    assert replies[2].startswith(b"235 ")


def test_auth_required_needs_an_authenticator_and_warns_without_tls() -> None:
    with pytest.raises(ValueError, match="auth_required needs an authenticator"):
        LegacyRecorder(None, None, auth_required=True)
    with pytest.warns(UserWarning, match="Requiring AUTH while not requiring TLS"):
        LegacyRecorder(None, None, authenticator=CallLog(), auth_required=True, auth_require_tls=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LegacyRecorder(None, None, authenticator=CallLog(), auth_required=True)


def test_a_mock_server_enables_nothing() -> None:
    """Test doubles whose every attribute exists must not turn AUTH or TLS on."""
    from smtpd_compat.legacy.extensions import settings_of

    assert settings_of(mock.Mock()) is None
    assert settings_of(mock.MagicMock(spec=smtpd.SMTPServer)) is None
    assert settings_of(LegacyRecorder(None, None)) is None


class StdlibStyleChannel(smtpd.SMTPChannel):
    """Re-implements __init__ the stdlib way, without calling SMTPChannel's."""

    def __init__(self, server: Any, conn: Any, addr: Any, data_size_limit: Any = 0, map: Any = None,
                 enable_SMTPUTF8: bool = False, decode_data: bool = False) -> None:
        smtpd.asynchat.async_chat.__init__(self, conn, map=map)
        self.smtp_server, self.conn, self.addr = server, conn, addr
        self.data_size_limit, self.enable_SMTPUTF8, self._decode_data = data_size_limit, False, False
        self._emptystring, self._linesep, self._dotsep, self._newline = b"", b"\r\n", ord(b"."), b"\n"
        self._set_rset_state()
        self.seen_greeting = ""
        self.extended_smtp = False
        # Its own dict: EHLO raises the MAIL limit in it (the class-level one is shared).
        self.command_size_limits = collections.defaultdict(lambda: 512)
        self.fqdn = "own.init"
        self.peer = conn.getpeername()
        self.push("220 own.init ready")


class OwnInitServer(LegacyRecorder):
    channel_class = StdlibStyleChannel


def test_auth_required_holds_for_a_channel_with_its_own_init() -> None:
    with pytest.warns(UserWarning):
        loop = LoopThread(OwnInitServer, None, authenticator=CallLog(), auth_require_tls=False, auth_required=True)
    with loop:
        replies = transcript(loop.port, [b"EHLO c.test", b"MAIL FROM:<a@x>", PLAIN_OK, b"MAIL FROM:<a@x>"])
    assert replies[0] == b"220 own.init ready\r\n"
    assert b"250-AUTH LOGIN PLAIN\r\n" in replies[1]
    assert replies[2] == b"530 5.7.0 Authentication required\r\n"
    assert replies[3:] == [b"235 2.7.0 Authentication successful\r\n", b"250 OK\r\n"]
