"""SASL without I/O: the LOGIN and PLAIN conversations, decoding, AUTH gates."""

from __future__ import annotations

from base64 import b64encode
from typing import List, Optional

import pytest

from smtpd_compat.engine import sasl
from smtpd_compat.engine.sasl import AuthResult, LoginPassword, SaslFailure


def converse(conversation: sasl.Conversation, answers: List[bytes]) -> "tuple[List[bytes], LoginPassword]":
    """Drive ``conversation`` with ``answers``: (challenges, credentials)."""
    challenges = []
    answer: Optional[bytes] = None
    try:
        while True:
            challenges.append(conversation.send(answer))  # type: ignore[arg-type]
            answer = answers.pop(0)
    except StopIteration as done:
        return challenges, done.value


def test_plain_with_and_without_initial_response() -> None:
    assert converse(sasl.plain(b"\x00joe\x00pw"), []) == ([], LoginPassword(b"joe", b"pw"))
    assert converse(sasl.plain(None), [b"zid\x00joe\x00pw"]) == ([b""], LoginPassword(b"joe", b"pw"))
    with pytest.raises(SaslFailure) as caught:
        converse(sasl.plain(b"joe\x00pw"), [])
    assert caught.value.reply == sasl.BAD_PLAIN


def test_login_challenges() -> None:
    challenges, credentials = converse(sasl.login(None), [b"joe", b"pw"])
    assert challenges == [b"User Name\x00", b"Password\x00"]
    assert credentials == LoginPassword(b"joe", b"pw")
    challenges, _ = converse(sasl.login(b"joe", password_challenge="pass?"), [b"pw"])
    assert challenges == [b"pass?"]


def test_decoding_answers() -> None:
    assert sasl.decode_response(b" " + b64encode(b"x") + b" ") == b"x"
    assert sasl.initial_response(["PLAIN", b64encode(b"abc").decode()]) == b"abc"
    assert sasl.initial_response(["LOGIN"]) is None
    assert sasl.challenge_line(b"hi") == b"334 aGk="
    assert sasl.challenge_line(b"raw", encode_to_b64=False) == b"334 raw"
    for bad, reply in ((b"*", sasl.ABORTED), (b"not base64!", sasl.BAD_BASE64)):
        with pytest.raises(SaslFailure) as caught:
            sasl.decode_response(bad)
        assert caught.value.reply == reply


def test_results_and_replies() -> None:
    assert sasl.reply_for(AuthResult(success=True)) == sasl.CODE_SUCCESS
    assert sasl.reply_for(AuthResult(success=True, message="235 fine")) == "235 fine"
    assert sasl.reply_for(AuthResult(success=False)) is None  # the mechanism replied
    assert sasl.reply_for(AuthResult(success=False, handled=False)) == sasl.CODE_INVALID
    # An authenticator cannot have replied itself.
    assert sasl.synchronous(AuthResult(success=False, message="535 no")) == AuthResult(
        success=False, handled=False, message="535 no"
    )
    assert sasl.synchronous("legacy") == "legacy"
    secret = LoginPassword(b"joe", b"hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    assert AuthResult(success=True) != object()


def vet(arg: Optional[str], **state: bool) -> List[str]:
    settings = dict(extended=True, require_tls=True, tls_active=True, authenticated=False)
    settings.update(state)
    return sasl.auth_arguments(arg, mechanisms={"LOGIN", "PLAIN"}, **settings)


@pytest.mark.parametrize(
    "arg, state, reply",
    [
        ("PLAIN", {"extended": False}, sasl.NOT_ESMTP),
        ("PLAIN", {"tls_active": False}, sasl.ENCRYPTION_REQUIRED),
        ("PLAIN", {"authenticated": True}, sasl.ALREADY_AUTHENTICATED),
        (None, {}, sasl.NOT_ENOUGH_VALUE),
        ("PLAIN a b", {}, sasl.TOO_MANY_VALUES),
        ("CRAM-MD5", {}, sasl.UNRECOGNIZED_MECHANISM),
    ],
)
def test_auth_command_gates(arg: Optional[str], state: dict, reply: str) -> None:
    with pytest.raises(SaslFailure) as caught:
        vet(arg, **state)
    assert caught.value.reply == reply


def test_auth_command_accepted() -> None:
    assert vet("PLAIN abc=") == ["PLAIN", "abc="]
    assert vet("LOGIN", require_tls=False, tls_active=False) == ["LOGIN"]
