"""Faults and load: connection floods, clients vanishing mid-DATA, handlers
that raise, 500 concurrent transactions, and a Maildir that never shows a
partial message."""

from __future__ import annotations

import asyncio
import errno
import logging
import mailbox
import resource
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Iterator, List, Set, Tuple

import pytest

from smtpd_compat.modern.handlers import Mailbox

from ._faces import FACES, RAISE, Face, ModernFace, Wire


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Room for a few thousand sockets in this process (client and server ends)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096
    if soft >= wanted:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip("RLIMIT_NOFILE hard limit %d is too low" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_flood(port: int, count: int) -> List[socket.socket]:
    """``count`` connections that never finish a command (half send a partial one)."""
    flood = []
    for number in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        result = sock.connect_ex(("127.0.0.1", port))
        assert result in (0, errno.EINPROGRESS), result
        flood.append(sock)
    time.sleep(0.3)
    for number, sock in enumerate(flood):
        if number % 2:
            try:
                sock.send(b"EHLO flood.example")
            except OSError:
                pass  # not yet connected: it stays idle instead
    return flood


def test_a_flood_of_1000_connections_does_not_stop_a_fresh_client(face: Face, many_descriptors: None) -> None:
    flood = open_flood(face.port, 1000)
    try:
        with Wire(face.port, timeout=30) as wire:
            assert wire.cmd(b"HELO fresh.example").startswith(b"250")
            assert wire.transaction(b"made it\r\n") == b"250 OK\r\n"
            assert wire.cmd(b"QUIT").startswith(b"221")
    finally:
        for sock in flood:
            sock.close()
    (delivery,) = face.wait_for(1)
    assert delivery.content.rstrip(b"\r\n") == b"made it"


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_client_vanishing_mid_data_delivers_nothing_and_disturbs_no_one(face: Face, how: str) -> None:
    with Wire(face.port) as steady:
        steady.cmd(b"HELO steady.example")
        steady.cmd(b"MAIL FROM:<steady@x.test>")
        steady.cmd(b"RCPT TO:<b@x.test>")
        assert steady.cmd(b"DATA").startswith(b"354")
        steady.send(b"first half\r\n")
        vanishing = Wire(face.port)
        vanishing.cmd(b"HELO gone.example")
        vanishing.cmd(b"MAIL FROM:<gone@x.test>")
        vanishing.cmd(b"RCPT TO:<b@x.test>")
        assert vanishing.cmd(b"DATA").startswith(b"354")
        vanishing.send(b"Subject: never delivered\r\n\r\n" + b"x" * 100_000 + b"\r\n")
        if how == "reset":
            vanishing.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        vanishing.close()
        time.sleep(0.1)
        steady.send(b"second half\r\n.\r\n")
        assert steady.reply() == b"250 OK\r\n"
    with Wire(face.port) as later:
        assert later.cmd(b"NOOP") == b"250 OK\r\n"
    assert [delivery.mail_from for delivery in face.wait_for(1)] == ["steady@x.test"]
    time.sleep(0.1)
    assert len(face.deliveries) == 1


def test_a_handler_that_raises_gets_a_reply_and_a_log_line_and_the_server_serves_on(
    face: Face, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.ERROR, logger="mail.log"), Wire(face.port) as wire:
        wire.cmd(b"HELO c")
        reply = wire.transaction(RAISE + b"\r\n")
        assert reply[:1] in (b"4", b"5"), reply
        if face.name == "modern":
            assert reply == b"500 Error: (RuntimeError) the handler failed on purpose\r\n"
            assert wire.transaction(b"next one\r\n") == b"250 OK\r\n"  # same connection
        else:
            # As stdlib smtpd, the channel closes after an uncaught exception.
            assert reply == b"451 Requested action aborted: local error in processing\r\n"
            assert wire.rest() == b""
    if face.name == "modern":
        assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)
    else:
        assert "uncaptured python exception" in capsys.readouterr().out
    with Wire(face.port) as other:
        other.cmd(b"HELO c")
        assert other.transaction(b"after the failure\r\n") == b"250 OK\r\n"
    assert face.handler_calls == (3 if face.name == "modern" else 2)


# -- nothing lost ---------------------------------------------------------------------

CONCURRENT = 500


async def one_transaction(port: int, number: int, connecting: asyncio.Semaphore) -> Tuple[int, bytes]:
    """A whole SMTP session; (number, the reply to the final dot).

    Connections are opened a few dozen at a time: 500 SYNs at once overflow
    the listen queue (backlog 100-128), and the kernel then delays some
    handshakes by seconds of SYN-ACK retransmits, whatever the server does.
    Once greeted, all sessions run at the same time.
    """

    async def reply() -> bytes:
        while True:
            line = await asyncio.wait_for(reader.readline(), 30)
            assert line.endswith(b"\r\n"), line
            if line[3:4] != b"-":
                return line

    async with connecting:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reply()
    try:
        for command in (b"EHLO c%d.example" % number, b"MAIL FROM:<s%d@x.test>" % number,
                        b"RCPT TO:<r%d@x.test>" % number, b"DATA"):
            writer.write(command + b"\r\n")
            code = (await reply())[:3]
            assert code in (b"250", b"354"), (number, command, code)
        writer.write(b"Subject: %d\r\n\r\nbody of message %d\r\n.\r\n" % (number, number))
        final = await reply()
        writer.write(b"QUIT\r\n")
        await reply()
        return number, final
    finally:
        writer.close()


async def all_transactions(port: int) -> List[Tuple[int, bytes]]:
    connecting = asyncio.Semaphore(50)
    return list(await asyncio.gather(*(one_transaction(port, n, connecting) for n in range(CONCURRENT))))


@pytest.mark.parametrize("face_name", ["modern", "legacy", "controller"])
def test_500_concurrent_transactions_each_delivered_exactly_once(face_name: str, many_descriptors: None) -> None:
    face = FACES[face_name]()
    try:
        results = asyncio.run(all_transactions(face.port))
        accepted = {number for number, reply in results if reply == b"250 OK\r\n"}
        deliveries = face.wait_for(len(accepted))
        time.sleep(0.05)
        deliveries = list(face.deliveries)
    finally:
        face.close()
    assert accepted == set(range(CONCURRENT)), "refused: %s" % sorted(set(range(CONCURRENT)) - accepted)
    delivered = [int(d.mail_from[1:].split("@")[0]) for d in deliveries]
    assert sorted(delivered) == sorted(accepted), "lost or duplicated messages"
    for delivery in deliveries:
        number = int(delivery.mail_from[1:].split("@")[0])
        assert delivery.rcpt_tos == ("r%d@x.test" % number,)
        assert b"body of message %d" % number in delivery.content


def test_mailbox_never_exposes_a_partial_message(tmp_path: Path) -> None:
    """``mailbox.Maildir.add`` writes in tmp/ and links into new/ when
    complete: a reader polling new/ sees whole messages or nothing."""
    maildir = tmp_path / "Maildir"
    face = ModernFace(handler=Mailbox(str(maildir)))
    body = b"".join(b"line %06d of a long message\r\n" % n for n in range(40_000))  # ~1.3 MB
    seen: Set[str] = set()
    partial: List[str] = []
    stop = threading.Event()

    def watch() -> None:
        new = maildir / "new"
        while not stop.is_set():
            for path in list(new.iterdir()) if new.exists() else []:
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue
                if not data.rstrip().endswith(b"END-OF-MESSAGE"):
                    partial.append(path.name)
                seen.add(path.name)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with Wire(face.port) as wire, Wire(face.port) as vanishing:
            wire.cmd(b"HELO c")
            for number in range(8):
                message = b"Subject: %d\r\n\r\n" % number + body + b"END-OF-MESSAGE\r\n"
                assert wire.transaction(message) == b"250 OK\r\n"
            vanishing.cmd(b"HELO c")
            vanishing.cmd(b"MAIL FROM:<a@x.test>")
            vanishing.cmd(b"RCPT TO:<b@x.test>")
            vanishing.cmd(b"DATA")
            vanishing.send(b"Subject: cut\r\n\r\n" + body)
        time.sleep(0.2)
    finally:
        stop.set()
        watcher.join(10)
        face.close()
    assert partial == []
    assert len(seen) == 8
    box = mailbox.Maildir(str(maildir), create=False)
    assert sorted(message["Subject"] for message in box) == [str(n) for n in range(8)]
    assert list((maildir / "tmp").iterdir()) == []
