"""SMTP smuggling (CVE-2023-51764/51765/51766, aiosmtpd CVE-2024-27305):
only <CR><LF>.<CR><LF> ends a message, on both faces.

A smuggling client hides a second transaction after a fake end-of-data
marker inside its first message.  Each probe pipelines it in one write and
expects exactly one message, holding the smuggled commands as body text.
"""

from __future__ import annotations

from typing import List

import pytest

from ._faces import Face, Wire, codes
from .conftest import MakeFace

FAKE_ENDS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
    "LF.CR": b"\n.\r",
    "CR.LF": b"\r.\n",
    "CRLF.NUL.CRLF": b"\r\n.\x00\r\n",
    "CRLF.NUL-dot.CRLF": b"\r\n\x00.\r\n",
    "LF.NUL.LF": b"\n.\x00\n",
    "CRLF.SP.CRLF": b"\r\n. \r\n",
    "CRLF.dot-dot.CRLF": b"\r\n..\r\n",
}
# The fake ends without a bare CR or LF: accepted even under "reject".
NO_BARE_NEWLINE = {"CRLF.NUL.CRLF", "CRLF.NUL-dot.CRLF", "CRLF.SP.CRLF", "CRLF.dot-dot.CRLF"}

SMUGGLED = (
    b"MAIL FROM:<admin@bank.example>\r\n"
    b"RCPT TO:<victim@example.org>\r\n"
    b"DATA\r\n"
    b"From: admin@bank.example\r\n\r\nsmuggled body\r\n"
)


def smuggle(port: int, fake_end: bytes) -> List[bytes]:
    """Send the whole attack in one write; every reply until the server closes."""
    with Wire(port) as wire:
        wire.send(
            b"EHLO attacker.example\r\n"
            b"MAIL FROM:<someone@attacker.example>\r\n"
            b"RCPT TO:<legit@example.org>\r\n"
            b"DATA\r\n"
            b"Subject: hello\r\n\r\nfirst" + fake_end + SMUGGLED + b".\r\n"
            b"QUIT\r\n"
        )
        replies = []
        while True:
            reply = wire.reply()
            replies.append(reply)
            if reply.startswith(b"221"):
                return replies


@pytest.mark.parametrize("fake_end", FAKE_ENDS.values(), ids=list(FAKE_ENDS))
def test_a_fake_end_of_data_never_ends_the_message(face: Face, fake_end: bytes) -> None:
    replies = smuggle(face.port, fake_end)
    # EHLO, MAIL, RCPT, 354, one message accepted, QUIT: nothing smuggled ran.
    assert codes(replies) == [250, 250, 250, 354, 250, 221]
    (delivery,) = face.wait_for(1)
    assert delivery.mail_from == "someone@attacker.example"
    assert delivery.rcpt_tos == ("legit@example.org",)
    assert b"RCPT TO:<victim@example.org>" in delivery.content
    assert b"smuggled body" in delivery.content
    assert len(face.deliveries) == 1


@pytest.mark.parametrize("fake_end", FAKE_ENDS.values(), ids=list(FAKE_ENDS))
def test_reject_policy_refuses_bare_newlines_and_runs_nothing_smuggled(make_modern: MakeFace, fake_end: bytes) -> None:
    face = make_modern(bare_newline="reject")
    name = next(key for key, value in FAKE_ENDS.items() if value == fake_end)
    replies = smuggle(face.port, fake_end)
    if name in NO_BARE_NEWLINE:
        assert codes(replies) == [250, 250, 250, 354, 250, 221]
        assert len(face.wait_for(1)) == 1
        return
    assert codes(replies) == [250, 250, 250, 354, 550, 221]
    assert replies[4] == b"550 5.5.2 Error: bare <CR> or <LF> received\r\n"
    assert face.deliveries == []  # the program runs before the reply


def test_normalize_policy_delivers_once_with_crlf_only(make_modern: MakeFace) -> None:
    face = make_modern(bare_newline="normalize")
    replies = smuggle(face.port, b"\n.\n")
    assert codes(replies) == [250, 250, 250, 354, 250, 221]
    (delivery,) = face.wait_for(1)
    content = delivery.content
    assert content.count(b"\r") == content.count(b"\n") == content.count(b"\r\n")
    assert b"first\r\n.\r\nMAIL FROM:<admin@bank.example>\r\n" in content


def test_bare_newline_default_is_accept_like_aiosmtpd(make_modern: MakeFace) -> None:
    face = make_modern()
    with Wire(face.port) as wire:
        wire.cmd(b"HELO c")
        assert wire.transaction(b"a\nb\rc\r\n") == b"250 OK\r\n"
    assert face.wait_for(1)[0].content == b"a\nb\rc\r\n"


# Far more than one received chunk on each side of the bare CR.
LINES = (b"x" * 98 + b"\r\n") * 2000


@pytest.mark.parametrize("policy", ["normalize", "reject"])
def test_policy_applies_to_bare_newlines_anywhere_in_the_message(make_modern: MakeFace, policy: str) -> None:
    face = make_modern(bare_newline=policy)
    with Wire(face.port) as wire:
        wire.cmd(b"HELO c")
        reply = wire.transaction(LINES + b"a\rb\r\n" + LINES)
        assert wire.cmd(b"NOOP") == b"250 OK\r\n"
    if policy == "reject":
        assert reply.startswith(b"550 ")
        assert face.deliveries == []  # the program runs before the reply
    else:
        assert reply == b"250 OK\r\n"
        assert face.wait_for(1)[0].content == LINES + b"a\r\nb\r\n" + LINES


@pytest.mark.parametrize("policy", ["accept", "normalize", "reject"])
def test_legacy_face_has_the_same_bare_newline_policies(make_legacy: MakeFace, policy: str) -> None:
    """Same setting on SMTPChannel; the legacy face hands process_message
    "\n"-separated lines, as stdlib smtpd did."""
    face = make_legacy(bare_newline=policy)
    with Wire(face.port) as wire:
        wire.cmd(b"HELO c")
        reply = wire.transaction(LINES + b"a\rb\nc\r\n" + LINES)
        assert wire.cmd(b"NOOP") == b"250 OK\r\n"
    plain = (b"x" * 98 + b"\n") * 2000
    if policy == "reject":
        assert reply == b"550 5.5.2 Error: bare <CR> or <LF> received\r\n"
        assert face.deliveries == []
    elif policy == "normalize":
        assert reply == b"250 OK\r\n"
        assert face.wait_for(1)[0].content == plain + b"a\nb\nc\n" + plain[:-1]
    else:
        assert reply == b"250 OK\r\n"
        assert face.wait_for(1)[0].content == plain + b"a\rb\nc\n" + plain[:-1]


def test_data_followed_at_once_by_the_end_marker_gets_an_answer(face: Face) -> None:
    with Wire(face.port) as wire:
        wire.send(b"HELO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n.\r\nNOOP\r\n")
        replies = wire.replies(6)
    assert codes(replies) == [250, 250, 250, 354, 250, 250]
    (delivery,) = face.wait_for(1)
    assert delivery.content == b""


def test_dot_stuffed_lines_are_unstuffed_once(face: Face) -> None:
    with Wire(face.port) as wire:
        wire.cmd(b"HELO c")
        assert wire.transaction(b"..\r\n...x\r\n.y\r\n") == b"250 OK\r\n"
    content = face.wait_for(1)[0].content
    assert content.replace(b"\r\n", b"\n").rstrip(b"\n") == b".\n..x\ny"
