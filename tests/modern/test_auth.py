"""SMTP AUTH (RFC 4954) on the modern face: the same dialogs as aiosmtpd 1.4.6,
byte for byte, then where and why we differ, then real clients."""

from __future__ import annotations

import asyncio
import smtplib
import socket
from base64 import b64encode
from types import ModuleType
from typing import Any, Dict, List, Tuple

import pytest

from smtpd_compat.modern import smtp as ours
from smtpd_compat.modern.smtp import SMTP, LoginPassword, auth_mechanism

from ._extensions import Dialog, HookRecorder, replies_of_both, run_dialog, serve
from ._periphery import CertPair, cert_pair  # noqa: F401  (fixture)


def b64(text: bytes) -> bytes:
    return b64encode(text)


PLAIN_OK = b"AUTH PLAIN " + b64(b"\0alice\0secret")
PLAIN_BAD = b"AUTH PLAIN " + b64(b"\0alice\0wrong")


class StateRecorder:
    """NOOP records the AUTH state of the session, so dialogs can compare it."""

    def __init__(self) -> None:
        self.states: List[Tuple[Any, ...]] = []
        self.calls: List[Tuple[str, Any]] = []

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: Any) -> str:
        self.states.append((session.authenticated, session.auth_data))
        return "250 OK"


def authenticator_for(module: ModuleType, calls: List[Tuple[str, Any]]) -> Any:
    """alice/secret succeeds with module's AuthResult; "custom" gets a message."""

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        calls.append((mechanism, data))
        if data.login == b"custom":
            return module.AuthResult(success=data.password == b"pw", handled=False,
                                     message="235 2.7.0 welcome" if data.password == b"pw" else "535 5.7.8 nope",
                                     auth_data={"user": "custom"})
        return module.AuthResult(success=data == (b"alice", b"secret"), handled=False, auth_data=data)

    return authenticator


def standard(**kwargs: Any) -> Any:
    """A setup: StateRecorder plus an authenticator, AUTH allowed over plaintext."""

    def setup(module: ModuleType) -> Tuple[Any, Dict[str, Any]]:
        handler = StateRecorder()
        options = {"auth_require_tls": False, "authenticator": authenticator_for(module, handler.calls)}
        options.update(kwargs)
        return handler, options

    return setup


DIALOGS: Dict[str, List[bytes]] = {
    "plain inline": [b"EHLO c.test", PLAIN_OK, b"NOOP", PLAIN_OK, b"NOOP"],
    "plain challenge": [b"EHLO c.test", b"AUTH PLAIN", b64(b"\0alice\0secret"), b"NOOP"],
    "plain wrong password": [b"EHLO c.test", PLAIN_BAD, b"NOOP", PLAIN_OK, b"NOOP"],
    "plain with authzid": [b"EHLO c.test", b"AUTH PLAIN " + b64(b"admin\0alice\0secret"), b"NOOP"],
    "login inline username": [b"EHLO c.test", b"AUTH LOGIN " + b64(b"alice"), b64(b"secret"), b"NOOP"],
    "login challenges": [b"EHLO c.test", b"AUTH LOGIN", b64(b"alice"), b64(b"secret"), b"NOOP"],
    "login wrong": [b"EHLO c.test", b"AUTH LOGIN", b64(b"alice"), b64(b"nope"), b"NOOP"],
    "authenticator messages": [
        b"EHLO c.test", b"AUTH PLAIN " + b64(b"\0custom\0bad"), b"AUTH PLAIN " + b64(b"\0custom\0pw"), b"NOOP",
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
    "gates": [
        b"AUTH PLAIN", b"HELO c.test", b"AUTH PLAIN", b"EHLO c.test", b"AUTH", b"AUTH PLAIN a b",
        b"AUTH CRAM-MD5", b"AUTH plain " + b64(b"\0alice\0secret"), b"HELP AUTH", b"NOOP",
    ],
    "auth_required": [
        b"EHLO c.test", b"MAIL FROM:<a@x>", b"RCPT TO:<b@x>", b"DATA", b"VRFY a@x", b"HELP", b"NOOP",
        b"RSET", PLAIN_OK, b"MAIL FROM:<a@x>", b"HELP MAIL",
    ],
    "EHLO and HELO forget nothing": [b"EHLO c.test", PLAIN_OK, b"EHLO c.test", b"NOOP", b"RSET", b"NOOP"],
}


@pytest.mark.parametrize("name", sorted(DIALOGS))
def test_same_dialog_as_aiosmtpd(name: str) -> None:
    kwargs = {"auth_required": True} if name == "auth_required" else {}
    (theirs, their_handler), (mine, my_handler) = replies_of_both(DIALOGS[name], standard(**kwargs))
    assert mine == theirs
    assert my_handler.states == their_handler.states
    assert my_handler.calls == their_handler.calls


def test_dialog_expectations() -> None:
    """The shared texts, spelled out once (the side-by-side test proves parity)."""
    (_, _), (mine, handler) = replies_of_both(DIALOGS["star cancels"] + [b"AUTH LOGIN"], standard())
    assert mine[1].endswith(b"250-AUTH LOGIN PLAIN\r\n250 HELP\r\n")
    assert mine[2] == b"334 \r\n"
    assert mine[3] == b"501 5.7.0 Auth aborted\r\n"
    assert mine[4] == b"334 VXNlciBOYW1lAA==\r\n"
    assert mine[7] == b"334 UGFzc3dvcmQA\r\n"
    assert handler.calls == []  # no mechanism ran its check after "*"
    (_, _), (mine, handler) = replies_of_both(DIALOGS["bad base64"], standard())
    assert mine[2:4] == [b"501 5.5.2 Can't decode base64\r\n", b"334 \r\n"]
    assert handler.calls == []
    (_, _), (mine, _) = replies_of_both(DIALOGS["gates"], standard())
    assert mine[1:] == [
        b"503 Error: send EHLO first\r\n", b"250 mx.test\r\n", b"500 Error: command 'AUTH' not recognized\r\n",
        mine[4], b"501 Not enough value\r\n", b"501 Too many values\r\n",
        b"504 5.5.4 Unrecognized authentication type\r\n", b"504 5.5.4 Unrecognized authentication type\r\n",
        b"250 Syntax: AUTH <mechanism>\r\n", b"250 OK\r\n",
    ]
    (_, _), (mine, handler) = replies_of_both(DIALOGS["plain inline"], standard())
    assert mine[2] == b"235 2.7.0 Authentication successful\r\n"
    assert mine[4] == b"503 Already authenticated\r\n"
    assert handler.states[0] == (True, LoginPassword(b"alice", b"secret"))


def test_auth_require_tls_refuses_credentials_over_plaintext() -> None:
    lines = [b"EHLO c.test", PLAIN_OK, b"AUTH LOGIN", b"NOOP"]
    (theirs, _), (mine, handler) = replies_of_both(lines, standard(auth_require_tls=True))
    assert mine == theirs
    assert b"AUTH" not in mine[1]
    assert mine[2] == mine[3] == b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    assert handler.calls == [] and handler.states == [(None, None)]


def test_auth_exclude_mechanism() -> None:
    lines = [b"EHLO c.test", b"AUTH LOGIN", PLAIN_OK]
    (theirs, _), (mine, _) = replies_of_both(lines, standard(auth_exclude_mechanism=["LOGIN"]))
    assert mine == theirs
    assert b"250-AUTH PLAIN\r\n" in mine[1]
    assert mine[2] == b"504 5.5.4 Unrecognized authentication type\r\n"
    assert mine[3].startswith(b"235")


def mechanisms_handler(module: ModuleType) -> Any:
    """A handler with its own auth_* hooks, written against ``module``."""

    class Mechanisms(StateRecorder):
        async def auth_DENY(self, server: Any, args: List[str]) -> Any:
            return module.MISSING

        async def auth_FALSE(self, server: Any, args: List[str]) -> Any:
            return False

        async def auth_SELF(self, server: Any, args: List[str]) -> Any:
            await server.push("535 5.7.8 I said no myself")
            return None

        async def auth_WHO(self, server: Any, args: List[str]) -> Any:
            answer = await server.challenge_auth("Who are you?")
            if answer is module.MISSING:
                return None
            return module.AuthResult(success=True, auth_data=answer)

        async def auth_OLD(self, server: Any, args: List[str]) -> Any:
            answer = await server._auth_interact("334 " + b64(b"old style").decode())
            return module.AuthResult(success=answer == b"ok", handled=False, auth_data=answer)

        @module.auth_mechanism("X-TOKEN")
        async def auth_whatever_name(self, server: Any, args: List[str]) -> Any:
            return module.AuthResult(success=args[1:] == ["t0k3n"], handled=False, auth_data="token")

        async def auth_WITH__DASH(self, server: Any, args: List[str]) -> Any:
            return module.AuthResult(success=False, handled=False, message="535 5.7.8 dashed")

        async def auth_PLAIN(self, server: Any, args: List[str]) -> Any:
            return module.AuthResult(success=True, message="235 2.7.0 handler PLAIN", auth_data="p")

    return Mechanisms()


@pytest.mark.filterwarnings("ignore:_auth_interact will be deprecated:DeprecationWarning")
def test_handler_mechanisms_same_as_aiosmtpd() -> None:
    lines = [
        b"EHLO c.test", b"AUTH DENY", b"AUTH FALSE", b"AUTH SELF", b"AUTH WHO", b"*", b"AUTH WITH-DASH",
        b"AUTH X-TOKEN wrong", b"AUTH OLD", b64(b"no"), b"NOOP", b"AUTH X-TOKEN t0k3n", b"NOOP",
    ]
    (theirs, their_handler), (mine, my_handler) = replies_of_both(
        lines, lambda module: (mechanisms_handler(module), {"auth_require_tls": False})
    )
    assert mine == theirs
    assert my_handler.states == their_handler.states
    assert b"250-AUTH DENY FALSE LOGIN OLD PLAIN SELF WHO WITH-DASH X-TOKEN\r\n" in mine[1]
    assert mine[2:8] == [
        b"535 5.7.8 Authentication credentials invalid\r\n", b"535 5.7.8 Authentication credentials invalid\r\n",
        b"535 5.7.8 I said no myself\r\n", b"334 V2hvIGFyZSB5b3U/\r\n", b"501 5.7.0 Auth aborted\r\n",
        b"535 5.7.8 dashed\r\n",
    ]
    assert mine[9] == b"334 " + b64(b"old style") + b"\r\n"
    assert mine[12] == b"235 2.7.0 Authentication successful\r\n"
    assert my_handler.states == [(None, None), (True, "token")]


def test_handler_overrides_builtin_plain() -> None:
    lines = [b"EHLO c.test", b"AUTH PLAIN", b"NOOP"]
    (theirs, _), (mine, handler) = replies_of_both(
        lines, lambda module: (mechanisms_handler(module), {"auth_require_tls": False})
    )
    assert mine == theirs
    assert mine[2] == b"235 2.7.0 handler PLAIN\r\n"  # no 334: the handler's PLAIN ran, not ours
    assert handler.states == [(True, "p")]


def test_who_mechanism_gets_the_decoded_answer() -> None:
    with serve(mechanisms_handler(ours), auth_require_tls=False) as server:
        replies = run_dialog(server.port, [b"EHLO c.test", b"AUTH WHO", b64(b"bob"), b"NOOP"])
    assert replies[3] == b"235 2.7.0 Authentication successful\r\n"


def test_auth_mechanism_validates_names() -> None:
    assert auth_mechanism("x-oauth2")(lambda: None).__auth_mechanism_name__ == "X-OAUTH2"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="Invalid AUTH mechanism name: BAD NAME"):
        auth_mechanism("bad name")


class HandleAuth(StateRecorder):
    """handle_AUTH replaces the whole dispatch (it must set the session itself)."""

    async def handle_AUTH(self, server: Any, session: Any, envelope: Any, args: List[str]) -> Any:
        self.calls.append(("handle_AUTH", args))
        if args == ["PLAIN", "bGV0IG1lIGlu"]:
            session.authenticated = True
            return "235 2.7.0 by handle_AUTH"
        if args[0] == "LOGIN":
            await server.push("535 5.7.8 pushed by handle_AUTH")
            return None
        return "535 5.7.8 refused by handle_AUTH"


def test_handle_auth_overrides_dispatch() -> None:
    lines = [b"EHLO c.test", b"AUTH PLAIN", b"AUTH LOGIN", b"AUTH NOPE", b"AUTH PLAIN bGV0IG1lIGlu", b"NOOP"]
    (theirs, their_handler), (mine, my_handler) = replies_of_both(
        lines, lambda module: (HandleAuth(), {"auth_require_tls": False})
    )
    assert mine == theirs
    assert my_handler.calls == their_handler.calls
    assert mine[2:] == [
        b"535 5.7.8 refused by handle_AUTH\r\n", b"535 5.7.8 pushed by handle_AUTH\r\n",
        b"504 5.5.4 Unrecognized authentication type\r\n", b"235 2.7.0 by handle_AUTH\r\n", b"250 OK\r\n",
    ]
    assert my_handler.states == [(True, None)]


def test_deprecated_auth_callback_and_login_data(caplog: pytest.LogCaptureFixture) -> None:
    seen: List[Tuple[str, bytes, bytes]] = []

    def auth_callback(mechanism: str, login: bytes, password: bytes) -> bool:
        seen.append((mechanism, login, password))
        return password == b"secret"

    class LoginData(StateRecorder):
        async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: Any) -> str:
            self.states.append((session.authenticated, session.login_data))
            return "250 OK"

    lines = [b"EHLO c.test", PLAIN_BAD, b"AUTH LOGIN " + b64(b"alice"), b64(b"secret"), b"NOOP"]
    (theirs, their_handler), (mine, my_handler) = replies_of_both(
        lines, lambda module: (LoginData(), {"auth_require_tls": False, "auth_callback": auth_callback})
    )
    assert mine == theirs
    assert my_handler.states == their_handler.states == [(True, b"alice")]
    assert seen[-2:] == [("PLAIN", b"alice", b"wrong"), ("LOGIN", b"alice", b"secret")]
    deprecations = [r for r in caplog.records if "login_data is deprecated" in r.getMessage()]
    assert deprecations and all(r.name == "mail.log" for r in deprecations)


def test_default_auth_callback_refuses_everyone() -> None:
    with serve(StateRecorder(), auth_require_tls=False) as server:
        replies = run_dialog(server.port, [b"EHLO c.test", PLAIN_OK])
    assert replies[2] == b"535 5.7.8 Authentication credentials invalid\r\n"


def test_auth_required_without_tls_warns() -> None:
    with pytest.warns(UserWarning, match="Requiring AUTH while not requiring TLS"):
        SMTP(StateRecorder(), auth_required=True, auth_require_tls=False, loop=asyncio.new_event_loop())


# -- where we differ from aiosmtpd, on purpose ---------------------------------


def test_failed_authenticator_result_always_gets_a_reply() -> None:
    """aiosmtpd sends nothing for AuthResult(success=False) (handled defaults to
    True), so the client hangs; a synchronous authenticator cannot have replied."""

    def setup(module: ModuleType) -> Tuple[Any, Dict[str, Any]]:
        def refuse(*args: Any) -> Any:
            return module.AuthResult(success=False)

        return StateRecorder(), {"auth_require_tls": False, "authenticator": refuse}

    invalid = b"535 5.7.8 Authentication credentials invalid\r\n"
    for module, expected in ((pytest.importorskip("aiosmtpd.smtp"), None), (ours, invalid)):
        handler, kwargs = setup(module)
        with serve(handler, cls=module.SMTP, **kwargs) as server, Dialog(server.port, timeout=0.3) as dialog:
            dialog.cmd(b"EHLO c.test")
            dialog.send(PLAIN_OK + b"\r\n")
            if expected is None:
                with pytest.raises(OSError):
                    dialog.reply()
            else:
                assert dialog.reply() == expected


def test_legacy_identity_counts_as_authenticated() -> None:
    """aiosmtpd issue #452: an auth_* hook returning an identity got 235 but left
    session.authenticated unset, so auth_required refused MAIL forever."""

    class Identity(StateRecorder):
        async def auth_IDENT(self, server: Any, args: List[str]) -> Any:
            return "someone"

    lines = [b"EHLO c.test", b"AUTH IDENT", b"MAIL FROM:<a@x>"]
    (theirs, _), (mine, _) = replies_of_both(
        lines, lambda module: (Identity(), {"auth_require_tls": False, "auth_required": True})
    )
    assert theirs[2] == mine[2] == b"235 2.7.0 Authentication successful\r\n"
    assert theirs[3] == b"530 5.7.0 Authentication required\r\n"
    assert mine[3] == b"250 OK\r\n"


def test_hang_up_inside_a_challenge_checks_no_credentials() -> None:
    """aiosmtpd reads b"" at EOF and goes on checking empty credentials."""
    calls: List[Tuple[str, Any]] = []
    with serve(StateRecorder(), auth_require_tls=False, authenticator=authenticator_for(ours, calls)) as server:
        with Dialog(server.port) as dialog:
            dialog.cmd(b"EHLO c.test")
            assert dialog.cmd(b"AUTH LOGIN " + b64(b"alice")) == b"334 UGFzc3dvcmQA\r\n"
            dialog.sock.shutdown(socket.SHUT_WR)
            assert dialog.rest_until_closed() == b""
        assert run_dialog(server.port, [b"NOOP"])[1] == b"250 OK\r\n"
    assert calls == []


class Limited(SMTP):
    failed_auth_limit = 3


def test_failed_auth_limit_closes_the_connection() -> None:
    calls: List[Tuple[str, Any]] = []
    with serve(StateRecorder(), cls=Limited, auth_require_tls=False,
               authenticator=authenticator_for(ours, calls)) as server:
        with Dialog(server.port) as dialog:
            dialog.cmd(b"EHLO c.test")
            assert dialog.cmd(PLAIN_BAD).startswith(b"535")
            assert dialog.cmd(b"AUTH PLAIN") == b"334 \r\n"
            assert dialog.cmd(b"*") == b"501 5.7.0 Auth aborted\r\n"  # a cancel counts too
            assert dialog.cmd(b"AUTH NOPE").startswith(b"504")  # no attempt: not counted
            assert dialog.cmd(b"NOOP") == b"250 OK\r\n"
            # The third failure is answered, then the connection is closed at once.
            dialog.send(PLAIN_BAD + b"\r\n" + PLAIN_OK + b"\r\n")
            assert dialog.rest_until_closed() == (
                b"535 5.7.8 Authentication credentials invalid\r\n"
                b"421 4.7.0 mx.test Error: too many failed AUTH attempts\r\n"
            )
        # Commands pipelined behind the last failure never ran; others may connect.
        assert len(calls) == 2
        replies = run_dialog(server.port, [b"EHLO c.test", PLAIN_OK])
        assert replies[2].startswith(b"235")


def test_failed_auth_limit_survives_starttls_and_ignores_successes(cert_pair: CertPair) -> None:
    with serve(StateRecorder(), cls=Limited, tls_context=cert_pair.server_context(),
               authenticator=authenticator_for(ours, [])) as server, Dialog(server.port) as dialog:
        dialog.cmd(b"EHLO c.test")
        dialog.cmd(b"STARTTLS")
        dialog.starttls(cert_pair.client_context())
        dialog.cmd(b"EHLO c.test")
        for _ in range(2):
            assert dialog.cmd(PLAIN_BAD).startswith(b"535")
        assert dialog.cmd(PLAIN_OK).startswith(b"235")
        assert dialog.cmd(b"NOOP") == b"250 OK\r\n"


def test_failed_auth_limit_defaults_to_unlimited_like_aiosmtpd() -> None:
    assert SMTP.failed_auth_limit == 0
    with serve(StateRecorder(), auth_require_tls=False) as server:
        replies = run_dialog(server.port, [b"EHLO c.test"] + [PLAIN_BAD] * 25 + [b"NOOP"])
    assert replies[-1] == b"250 OK\r\n"


def test_command_call_limit_also_caps_auth() -> None:
    """aiosmtpd's own knob counts every AUTH command, successful or not."""
    lines = [b"EHLO c.test", PLAIN_BAD, PLAIN_BAD]
    (theirs, _), (mine, _) = replies_of_both(lines, standard(command_call_limit={"AUTH": 2}))
    assert mine == theirs
    with serve(StateRecorder(), auth_require_tls=False, command_call_limit={"AUTH": 2}) as server:
        with Dialog(server.port) as dialog:
            for line in lines:
                dialog.cmd(line)
            assert dialog.cmd(PLAIN_BAD) == b"421 4.7.0 AUTH sent too many times\r\n"
            assert dialog.rest_until_closed() == b""


# -- real clients ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["login", "auth_plain", "auth_login"])
def test_smtplib_over_starttls(cert_pair: CertPair, method: str) -> None:
    handler = HookRecorder()
    calls: List[Tuple[str, Any]] = []
    with serve(handler, tls_context=cert_pair.server_context(), auth_required=True,
               authenticator=authenticator_for(ours, calls)) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
            client.starttls(context=cert_pair.client_context())
            client.ehlo("c.test")
            if method == "login":
                client.user, client.password = "alice", "wrong"
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    client.login("alice", "wrong")
                code, text = client.login("alice", "secret")
            else:
                client.user, client.password = "alice", "secret"
                code, text = client.auth(method[5:].upper(), getattr(client, method))
            assert (code, text) == (235, b"2.7.0 Authentication successful")
            client.sendmail("a@x", ["b@x"], b"Subject: auth\r\n\r\nhi\r\n")
    mechanism = "LOGIN" if method == "auth_login" else "PLAIN"
    assert calls[-1] == (mechanism, LoginPassword(b"alice", b"secret"))
    session = handler.sessions[0]
    assert session.authenticated is True and session.auth_data.login == b"alice"


def test_smtplib_refused_without_auth(cert_pair: CertPair) -> None:
    with serve(HookRecorder(), tls_context=cert_pair.server_context(), auth_required=True) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
            client.starttls(context=cert_pair.client_context())
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("a@x", ["b@x"], b"x")
    assert refused.value.smtp_code == 530


def test_smtplib_sees_no_auth_over_plaintext() -> None:
    with serve(HookRecorder(), authenticator=authenticator_for(ours, [])) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPNotSupportedError, match="AUTH extension not supported"):
                client.login("alice", "secret")


def test_aiosmtplib_login(cert_pair: CertPair) -> None:
    aiosmtplib = pytest.importorskip("aiosmtplib")
    handler = HookRecorder()

    async def send(port: int) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True,
                                   tls_context=cert_pair.client_context(), timeout=5) as client:
            with pytest.raises(aiosmtplib.SMTPAuthenticationError):
                await client.login("alice", "wrong")
            response = await client.login("alice", "secret")
            assert (response.code, response.message) == (235, "2.7.0 Authentication successful")
            await client.sendmail("a@x", ["b@x"], b"Subject: a\r\n\r\nhi\r\n")

    with serve(handler, tls_context=cert_pair.server_context(), auth_required=True,
               authenticator=authenticator_for(ours, [])) as server:
        asyncio.run(send(server.port))
    assert handler.sessions[0].auth_data == LoginPassword(b"alice", b"secret")


def test_async_authenticator_is_awaited_not_taken_for_success() -> None:
    """aiosmtpd's authenticator is synchronous; given an ``async def`` one it
    took the coroutine object for a successful login.  We await it."""
    from smtpd_compat.modern.smtp import AuthResult

    async def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        await asyncio.sleep(0)
        return AuthResult(success=data.password == b"right", auth_data=data.login)

    with serve(StateRecorder(), auth_require_tls=False, authenticator=authenticator) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
            client.ehlo("c")
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                client.login("user", "wrong")
            assert refused.value.smtp_code == 535
            assert client.login("user", "right")[0] == 235
