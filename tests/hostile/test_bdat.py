"""BDAT (RFC 3030) on both faces, opted in: the RFC's dialogs, then hostile
chunks.  Each probe gets a reply, its payload is never run as commands, and
nothing accepted is lost."""

from __future__ import annotations

import pytest

from smtpd_compat.engine import chunking

from ._faces import Face, Wire
from .conftest import MakeFace

ENVELOPE = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
# Commands hidden in a payload: run, they would deliver a second message.
SMUGGLED = b"\r\n.\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nevil\r\n.\r\n"


@pytest.fixture
def chunked(make_face: MakeFace) -> Face:
    return make_face(enable_CHUNKING=True, data_size_limit=1000)


def wire(face: Face) -> Wire:
    client = Wire(face.port)
    assert b"250-CHUNKING\r\n" in client.cmd(b"EHLO c")
    return client


def as_sent(face: Face, content: bytes) -> bytes:
    """What the face's program gets for ``content`` (the legacy face: as
    after DATA, lines joined by LF without the last CRLF)."""
    if face.name == "legacy":
        return (content[:-2] if content.endswith(b"\r\n") else content).replace(b"\r\n", b"\n")
    return content


def test_rfc3030_pipelined_chunks(chunked: Face) -> None:
    first = b"Subject: chunks\r\n\r\n" + SMUGGLED
    last = b".\r\nlast line\r\n"
    with wire(chunked) as client:
        client.send(ENVELOPE + b"BDAT %d\r\n" % len(first) + first + b"BDAT %d LAST\r\n" % len(last) + last)
        assert client.replies(4) == [b"250 OK\r\n", b"250 OK\r\n", b"250 2.0.0 %d octets received\r\n" % len(first),
                                     b"250 OK\r\n"]
        assert client.cmd(b"QUIT") == b"221 Bye\r\n"
    (delivery,) = chunked.wait_for(1)
    assert delivery.content == as_sent(chunked, first + last)


def test_bdat_0_last_and_empty_chunks(chunked: Face) -> None:
    with wire(chunked) as client:
        client.send(ENVELOPE + b"BDAT 0\r\nBDAT 2\r\nhiBDAT 0 LAST\r\n" + ENVELOPE + b"BDAT 0 LAST\r\n")
        assert client.replies(7)[2:] == [b"250 2.0.0 0 octets received\r\n", b"250 2.0.0 2 octets received\r\n",
                                         b"250 OK\r\n", b"250 OK\r\n", b"250 OK\r\n"]
        assert client.reply() == b"250 OK\r\n"
    assert [d.content for d in chunked.wait_for(2)] == [b"hi", b""]


@pytest.mark.parametrize("arg", [b"", b"-5", b"+5", b"5.0", b"0x5", b"five", b"\xc2\xb2", b"1" + b"0" * 20])
def test_a_size_that_cannot_be_read_closes_with_a_reply(chunked: Face, arg: bytes) -> None:
    with wire(chunked) as client:
        client.send(ENVELOPE + b"BDAT " + arg + b"\r\n" + SMUGGLED)
        assert client.replies(2) == [b"250 OK\r\n", b"250 OK\r\n"]
        assert client.rest() == chunking.SIZE_UNKNOWN.encode() + b"\r\n"
    assert chunked.deliveries == []


def test_out_of_sequence_and_bad_keyword_chunks_are_read_and_dropped(chunked: Face) -> None:
    probes = [
        (b"BDAT %d LAST\r\n" % len(SMUGGLED) + SMUGGLED, b"503 Error: need MAIL command\r\n"),
        (b"MAIL FROM:<a@x.test>\r\n", b"250 OK\r\n"),
        (b"BDAT %d\r\n" % len(SMUGGLED) + SMUGGLED, b"503 Error: need RCPT command\r\n"),
        (b"RCPT TO:<b@x.test>\r\n", b"250 OK\r\n"),
        (b"BDAT %d FIRST\r\n" % len(SMUGGLED) + SMUGGLED, b"501 5.5.4 Syntax: BDAT <size> [LAST]\r\n"),
        (b"BDAT 2\r\nokDATA\r\n", b"250 2.0.0 2 octets received\r\n"),
        (b"", b"503 5.5.1 Error: DATA not allowed after BDAT\r\n"),
        (b"BDAT 1 LAST\r\n!", b"250 OK\r\n"),
        (b"BDAT 3 LAST\r\nabc", b"503 Error: need MAIL command\r\n"),
    ]
    with wire(chunked) as client:
        client.send(b"".join(data for data, _ in probes))
        assert client.replies(len(probes)) == [reply for _, reply in probes]
        assert client.cmd(b"NOOP") == b"250 OK\r\n"
    assert [d.content for d in chunked.wait_for(1)] == [b"ok!"]


def test_over_the_size_limit_across_chunks(chunked: Face) -> None:
    with wire(chunked) as client:
        client.send(ENVELOPE + b"BDAT 600\r\n" + b"a" * 600 + b"BDAT 401\r\n" + b"b" * 401
                    + b"BDAT 5\r\nNOOP\r" + b"BDAT 2 LAST\r\n\r\n")
        assert client.replies(6)[2:] == [b"250 2.0.0 600 octets received\r\n"] + [
            b"552 Error: Too much mail data\r\n"] * 3
        assert client.cmd(b"MAIL FROM:<a@x.test>") == b"250 OK\r\n", "LAST ended the failed transaction"
        client.send(b"RCPT TO:<b@x.test>\r\nBDAT 1000 LAST\r\n" + b"c" * 1000)
        assert client.replies(2) == [b"250 OK\r\n", b"250 OK\r\n"]
    assert [d.content for d in chunked.wait_for(1)] == [b"c" * 1000]


def test_a_huge_chunk_is_read_and_dropped_until_the_client_leaves(chunked: Face) -> None:
    with wire(chunked) as client:
        client.send(ENVELOPE + b"BDAT 99999999999999999999 LAST\r\n")
        assert client.replies(2) == [b"250 OK\r\n", b"250 OK\r\n"]
        for _ in range(16):
            client.send(SMUGGLED * 1000)
    with wire(chunked) as client:
        assert client.cmd(b"NOOP") == b"250 OK\r\n", "the server is still serving"
    assert chunked.deliveries == []


def test_a_chunk_cut_by_disconnect_delivers_nothing(chunked: Face) -> None:
    with wire(chunked) as client:
        client.send(ENVELOPE + b"BDAT 10 LAST\r\nQUIT\r\n")
        assert client.replies(2) == [b"250 OK\r\n", b"250 OK\r\n"]
    with wire(chunked) as client:
        client.send(ENVELOPE + b"BDAT 4 LAST\r\nfine")
        assert client.replies(3)[2] == b"250 OK\r\n"
    assert [d.content for d in chunked.wait_for(1)] == [b"fine"]


def test_bdat_is_unknown_unless_opted_in(face: Face) -> None:
    with Wire(face.port) as client:
        assert b"CHUNKING" not in client.cmd(b"EHLO c")
        assert client.cmd(b"BDAT 4 LAST") == b'500 Error: command "BDAT" not recognized\r\n'


def test_a_refused_bdat_line_still_has_its_chunk_read(make_face: MakeFace) -> None:
    face = make_face(enable_CHUNKING=True)
    with Wire(face.port) as client:
        client.send(b"BDAT %d\r\n" % len(SMUGGLED) + SMUGGLED + b"BDAT 6 \x00\r\n" + b"NOOP\r\n")
        assert client.replies(2) == [b"503 Error: send HELO first\r\n", b"500 Error: bad syntax\r\n"]
        client.send(b"EHLO c\r\nBDAT " + b"9" * 600 + b"\r\nNOOP\r\n")
        assert client.reply().startswith(b"250-")
        assert client.rest() == chunking.SIZE_UNKNOWN.encode() + b"\r\n"
    assert face.deliveries == []


@pytest.mark.parametrize("policy", ["reject", "normalize"])
def test_bare_newline_policy_covers_bdat_but_not_binarymime(make_face: MakeFace, policy: str) -> None:
    face = make_face(enable_CHUNKING=True, enable_BINARYMIME=True, bare_newline=policy)
    with wire(face) as client:
        client.send(ENVELOPE + b"BDAT 5 LAST\r\na\nb\r\n" + b"MAIL FROM:<a@x.test> BODY=BINARYMIME\r\n"
                    b"RCPT TO:<b@x.test>\r\nBDAT 3 LAST\r\nc\nd")
        replies = client.replies(6)
    expected = b"550 5.5.2 Error: bare <CR> or <LF> received\r\n" if policy == "reject" else b"250 OK\r\n"
    assert replies[2] == expected and replies[5] == b"250 OK\r\n"
    contents = [d.content for d in face.wait_for(1 if policy == "reject" else 2)]
    normalized = [as_sent(face, b"a\r\nb\r\n")] if policy == "normalize" else []
    assert contents == normalized + [b"c\nd"]
