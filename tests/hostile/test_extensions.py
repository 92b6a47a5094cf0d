"""PIPELINING, ENHANCEDSTATUSCODES and DSN opted in, on both faces: what
EHLO says, and every bad parameter answered without losing the session."""

from __future__ import annotations

import pytest

from ._faces import Face, Wire
from .conftest import MakeFace


@pytest.fixture
def extended(make_face: MakeFace) -> Face:
    return make_face(enable_PIPELINING=True, enable_ENHANCEDSTATUSCODES=True, enable_DSN=True)


def test_ehlo_names_them(extended: Face) -> None:
    with Wire(extended.port) as wire:
        reply = wire.cmd(b"EHLO c")
        assert b"250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n" in reply
        assert b"CHUNKING" not in reply


@pytest.mark.parametrize(
    "command",
    [b"MAIL FROM:<a@x.test> RET=ALL", b"MAIL FROM:<a@x.test> ENVID=a+2b", b"MAIL FROM:<a@x.test> ENVID=" + b"x" * 101,
     b"MAIL FROM:<a@x.test> ENVID=a+00", b"MAIL FROM:<a@x.test> RET"],
)
def test_bad_dsn_on_mail(extended: Face, command: bytes) -> None:
    with Wire(extended.port) as wire:
        wire.cmd(b"EHLO c")
        assert wire.cmd(command).startswith(b"501 5.5.4 Error: bad ")
        assert wire.cmd(b"MAIL FROM:<a@x.test> RET=FULL ENVID=ok+2B1") == b"250 2.1.0 OK\r\n"
        for bad in (b"NOTIFY=NEVER,DELAY", b"NOTIFY=", b"ORCPT=rfc822", b"ORCPT=x;a=b"):
            assert wire.cmd(b"RCPT TO:<b@x.test> " + bad).startswith(b"501 5.5.4 "), bad
        assert wire.cmd(b"RCPT TO:<b@x.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+40x.test") == b"250 2.1.5 OK\r\n"
        assert wire.cmd(b"RSET") == b"250 2.0.0 OK\r\n"


def test_pipelined_replies_keep_their_order(extended: Face) -> None:
    with Wire(extended.port) as wire:
        wire.cmd(b"EHLO c")
        wire.send(b"MAIL FROM:<a@x.test> RET=HDRS\r\nRCPT TO:<b@x.test> NOTIFY=NEVER\r\nRCPT TO:<\r\nDATA\r\nhi\r\n.\r\n"
                  b"NOOP\r\nQUIT\r\n")
        assert wire.replies(7) == [
            b"250 2.1.0 OK\r\n", b"250 2.1.5 OK\r\n", b"553 5.1.3 Error: malformed address\r\n"
            if extended.name == "modern" else b"501 5.5.4 Syntax: RCPT TO: <address> [SP <mail-parameters>]\r\n",
            b"354 End data with <CR><LF>.<CR><LF>\r\n", b"250 2.0.0 OK\r\n", b"250 2.0.0 OK\r\n", b"221 2.0.0 Bye\r\n"]
    assert [d.content.rstrip(b"\r\n") for d in extended.wait_for(1)] == [b"hi"]
