"""Streaming DATA and BDAT to ``handle_DATA_CHUNK``, and the stock ``Spooler``."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpd_compat.engine.framing import Unstuffer, unstuff
from smtpd_compat.modern.spool import Spooler

from ._smtp_support import Client, serve


class Pieces:
    def __init__(self) -> None:
        self.pieces: List[Optional[bytes]] = []
        self.messages: List[Any] = []

    async def handle_DATA_CHUNK(self, server: Any, session: Any, envelope: Any, data: Optional[bytes]) -> None:
        self.pieces.append(data)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.content, envelope.original_content, b"".join(self.pieces)))  # type: ignore[arg-type]
        self.pieces.clear()
        return "250 2.0.0 spooled"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b".", b"..", b"x", b"\r\n.", b"\n", b"\r"]), max_size=40),
       st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_unstuffer_agrees_with_unstuff(parts: List[bytes], cuts: List[int]) -> None:
    content = b"".join(parts) + b"\r\n"
    points = sorted({c % (len(content) + 1) for c in cuts})
    # Cut where the framer may: never between a CR and its LF.
    points = [p for p in points if not (0 < p < len(content) and content[p - 1:p + 1] == b"\r\n")]
    unstuffer = Unstuffer()
    pieces = [content[a:b] for a, b in zip([0] + points, points + [len(content)])]
    assert b"".join(unstuffer.feed(piece) for piece in pieces) == unstuff(content)


def test_data_and_bdat_stream_and_hold_nothing() -> None:
    handler = Pieces()
    body = b"Subject: s\r\n\r\n" + b"".join(b".line %d\r\n" % i for i in range(3000))
    stuffed = body.replace(b"\r\n.", b"\r\n..")
    with serve(handler, enable_CHUNKING=True, data_size_limit=None) as server, Client(server.port) as client:
        client.cmd("EHLO c")
        client.cmd("MAIL FROM:<a@x.test>")
        client.cmd("RCPT TO:<b@x.test>")
        client.cmd("DATA")
        client.send(stuffed + b".\r\n")
        assert client.reply() == b"250 2.0.0 spooled\r\n"
        client.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 5\r\n.a\r\n.BDAT 3 LAST\r\nb\r\n")
        assert [client.reply() for _ in range(4)][2:] == [b"250 2.0.0 5 octets received\r\n",
                                                           b"250 2.0.0 spooled\r\n"]
    assert handler.messages == [(None, None, body), (None, None, b".a\r\n.b\r\n")]
    assert len([piece for piece in handler.pieces if piece is not None]) == 0


def test_refused_and_cut_messages_end_with_none() -> None:
    handler = Pieces()
    with serve(handler, data_size_limit=100, enable_CHUNKING=True) as server:
        with Client(server.port) as client:
            client.cmd("EHLO c")
            client.cmd("MAIL FROM:<a@x.test>")
            client.cmd("RCPT TO:<b@x.test>")
            client.cmd("DATA")
            client.send(b"x" * 98 + b"\r\n" + b"y" * 200 + b"\r\n.\r\n")
            assert client.reply() == b"552 Error: Too much mail data\r\n"
            assert handler.pieces[-1] is None and not handler.messages
            client.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 60\r\n" + b"z" * 60
                        + b"BDAT 60 LAST\r\n" + b"z" * 60)
            assert [client.reply() for _ in range(4)][3] == b"552 Error: Too much mail data\r\n"
            assert handler.pieces[-1] is None
            client.cmd("MAIL FROM:<a@x.test>")
            client.cmd("RCPT TO:<b@x.test>")
            client.cmd("DATA")
            client.send(b"cut short\r\n")
        handler.pieces.clear()
    assert not handler.messages


def test_spooler_keeps_accepted_messages_only(tmp_path: Path) -> None:
    spooler = Spooler(tmp_path / "spool")
    with serve(spooler, enable_CHUNKING=True, data_size_limit=1000) as server, Client(server.port) as client:
        client.cmd("EHLO c")
        client.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 4\r\nkeep")
        client.send(b"BDAT 6 LAST\r\n ..me\n")
        assert [client.reply() for _ in range(4)][3] == b"250 OK\r\n"
        client.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 3\r\nabcRSET\r\n")
        assert [client.reply() for _ in range(4)][3] == b"250 OK\r\n"
        client.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n" + (b"w" * 100 + b"\r\n") * 12 + b".\r\n")
        assert [client.reply() for _ in range(4)][3] == b"552 Error: Too much mail data\r\n"
        assert client.cmd("QUIT") == b"221 Bye\r\n"
    gc.collect()
    (path,) = spooler.paths
    assert path.read_bytes() == b"keep ..me\n"
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == [path.name], "no partial file left"
