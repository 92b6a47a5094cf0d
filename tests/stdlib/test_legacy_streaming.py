"""handle_DATA_CHUNK on an SMTPServer subclass: messages streamed piece by
piece with bounded channel memory, the stock Spooler mixed in."""

from __future__ import annotations

import hashlib
import smtplib
import socket
import time
from pathlib import Path
from typing import Any, List, Optional

import smtpd_compat as smtpd
from smtpd_compat.modern.spool import Spooler
from tests.stdlib._legacy_support import LoopThread

MiB = 1024 * 1024


class Streaming(smtpd.SMTPServer):
    """Hashes what it is handed and records what its channel holds meanwhile."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.digest = hashlib.sha256()
        self.size = 0
        self.pieces: List[Optional[int]] = []
        #: Most bytes the channel held at once: received_lines plus the framer's buffer.
        self.channel_peak = 0
        self.delivered: List[Any] = []

    def handle_DATA_CHUNK(self, server: Any, session: Any, envelope: Any, data: Optional[bytes]) -> None:
        channel = server.channel
        held = sum(len(line) for line in channel.received_lines) + channel._framer.buffered
        self.channel_peak = max(self.channel_peak, held)
        self.pieces.append(None if data is None else len(data))
        if data is not None:
            self.digest.update(data)
            self.size += len(data)

    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> None:
        self.delivered.append((mailfrom, rcpttos, data))


def _body(size: int) -> bytes:
    line = b".dot-stuffed line, then some text to make it long enough\r\n"
    return line * (size // len(line))


def test_a_50_mib_message_by_data_passes_with_bounded_channel_memory() -> None:
    body = _body(50 * MiB)
    with LoopThread(Streaming, None, data_size_limit=0) as legacy:
        with smtplib.SMTP("127.0.0.1", legacy.port, timeout=60) as client:
            client.sendmail("a@example.com", ["b@example.com"], body)
        server = legacy.server
    assert server.size == len(body) and server.digest.digest() == hashlib.sha256(body).digest()
    assert None not in server.pieces and len(server.pieces) > 50  # piece by piece, as it arrived
    assert max(size for size in server.pieces if size is not None) <= MiB
    assert server.channel_peak <= MiB, "the channel never holds the message"
    assert server.delivered == [("a@example.com", ["b@example.com"], None)]


def _bdat_dialog(port: int, chunks: List[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n")
        for index, chunk in enumerate(chunks):
            last = b" LAST" if index == len(chunks) - 1 else b""
            sock.sendall(b"BDAT %d%s\r\n" % (len(chunk), last) + chunk)
        sock.sendall(b"QUIT\r\n")
        out = b""
        while not out.endswith(b"221 Bye\r\n"):
            data = sock.recv(65536)
            if not data:
                break
            out += data
        return out


def test_bdat_chunks_go_to_the_hook_as_sent() -> None:
    chunks = [b"Subject: x\r\n\r\n.not unstuffed\r", b"\nsecond\r\n", 8 * MiB * b"y"]
    with LoopThread(Streaming, None, enable_CHUNKING=True, data_size_limit=0) as legacy:
        replies = _bdat_dialog(legacy.port, chunks)
        server = legacy.server
    assert replies.count(b" octets received\r\n") == len(chunks) - 1, replies
    assert replies.endswith(b"250 OK\r\n221 Bye\r\n"), replies
    assert server.digest.digest() == hashlib.sha256(b"".join(chunks)).digest()
    assert server.channel_peak <= MiB
    assert server.delivered == [("a@x.test", ["b@x.test"], None)]


class SpoolingServer(Spooler, smtpd.SMTPServer):
    def __init__(self, localaddr: Any, remoteaddr: Any, directory: Path, **kwargs: Any) -> None:
        Spooler.__init__(self, directory)
        smtpd.SMTPServer.__init__(self, localaddr, remoteaddr, **kwargs)


def test_the_stock_spooler_on_the_legacy_face(tmp_path: Path) -> None:
    with LoopThread(SpoolingServer, None, tmp_path, data_size_limit=1000, enable_CHUNKING=True) as legacy:
        with smtplib.SMTP("127.0.0.1", legacy.port, timeout=10) as client:
            client.sendmail("a@x.test", ["b@x.test"], b"Subject: one\r\n\r\n.dot\r\nend\r\n")
            client.mail("a@x.test")  # no SIZE=: found too large while it streams
            client.rcpt("b@x.test")
            assert client.data(b"x" * 2000)[0] == 552
        replies = _bdat_dialog(legacy.port, [b"Subject: two\r\n", b"\r\n..as sent\r\n"])
        assert replies.endswith(b"250 OK\r\n221 Bye\r\n"), replies
        paths = list(legacy.server.paths)
    assert [path.read_bytes() for path in paths] == [
        b"Subject: one\r\n\r\n.dot\r\nend\r\n",
        b"Subject: two\r\n\r\n..as sent\r\n",
    ]
    assert sorted(tmp_path.iterdir()) == sorted(paths), "the refused message left no file"


def test_a_message_cut_by_disconnect_ends_with_none() -> None:
    with LoopThread(Streaming, None) as legacy:
        with socket.create_connection(("127.0.0.1", legacy.port), timeout=10) as sock:
            sock.sendall(b"HELO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\npart of it\r\n")
            seen = b""
            while seen.count(b"\r\n") < 5:
                seen += sock.recv(4096)
            assert seen.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            deadline = time.monotonic() + 10
            while not legacy.server.pieces and time.monotonic() < deadline:
                time.sleep(0.01)  # until the server has read the first line
        deadline = time.monotonic() + 10
        while legacy.server.pieces[-1:] != [None] and time.monotonic() < deadline:
            time.sleep(0.01)
        pieces = legacy.server.pieces
        assert pieces[-1] is None and 0 < sum(pieces[:-1]) <= len(b"part of it\r\n"), pieces
        assert legacy.server.delivered == []
