"""Pipelined input (RFC 2920) and half-closed connections on the modern
SMTP server: every command is answered, in order, whatever the batching."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any, List

from ._smtp_support import HOST, Client, Recorder, serve

OK = b"250 OK\r\n"
GO_AHEAD = b"354 End data with <CR><LF>.<CR><LF>\r\n"
EHLO_REPLY = f"250-{HOST}\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250 HELP\r\n".encode()


def transaction(n: int) -> bytes:
    return (
        b"MAIL FROM:<s%d@x.test>\r\nRCPT TO:<r%d@x.test>\r\nRCPT TO:<nobody@x.test>\r\nDATA\r\n"
        b"Subject: %d\r\n\r\n.dotted %d\r\n.\r\n" % (n, n, n, n)
    )


class Picky(Recorder):
    """Refuses one recipient and takes its time over every message."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        if address.startswith("nobody"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.001)
        await super().handle_DATA(server, session, envelope)
        return f"250 queued {len(self.delivered)}"


def test_a_pipelined_burst_is_answered_in_order() -> None:
    handler = Picky()
    count = 200
    burst = b"EHLO c\r\n" + b"".join(transaction(n) for n in range(count)) + b"NOOP\r\nQUIT\r\n"
    expected = EHLO_REPLY + b"".join(
        OK + OK + b"550 5.1.1 no such user\r\n" + GO_AHEAD + b"250 queued %d\r\n" % (n + 1) for n in range(count)
    ) + OK + b"221 Bye\r\n"
    with serve(handler) as server, Client(server.port) as client:
        client.send(burst)  # everything at once, DATA content included
        assert client.greeting + client.rest() == f"220 {HOST} Python SMTP 1.4.6\r\n".encode() + expected
    assert [(d.mail_from, d.rcpt_tos, d.content) for d in handler.delivered] == [
        (f"s{n}@x.test", [f"r{n}@x.test"], b"Subject: %d\r\n\r\ndotted %d\r\n" % (n, n)) for n in range(count)
    ]


def test_a_pipelined_batch_is_answered_without_waiting_for_more_input() -> None:
    """Replies to a batch are flushed once the input is used up (no reply
    waits for the client to send more)."""
    with serve(Recorder()) as server, Client(server.port) as client:
        client.send(b"NOOP\r\n" * 50)
        for _ in range(50):
            assert client.reply() == OK


def test_replies_split_across_reads_still_match() -> None:
    """The same dialog fed one byte per send gives the same bytes."""
    dialog = b"EHLO c\r\n" + transaction(1) + b"QUIT\r\n"
    outputs = []
    for pieces in ([dialog], [dialog[i:i + 1] for i in range(len(dialog))]):
        handler = Picky()
        with serve(handler) as server, Client(server.port) as client:
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for piece in pieces:
                client.send(piece)
            outputs.append(client.rest())
        assert len(handler.delivered) == 1
    assert outputs[0] == outputs[1]
    assert outputs[0].endswith(b"250 queued 1\r\n221 Bye\r\n")


def half_close(client: Client, data: bytes) -> bytes:
    client.send(data)
    client.sock.shutdown(socket.SHUT_WR)
    return client.rest()


def test_half_close_after_pipelined_data_and_quit_gets_every_reply() -> None:
    """aiosmtpd cancels its session on EOF, so what was pipelined before a
    half-close may go unanswered and undelivered; we answer all of it."""
    handler = Recorder()
    with serve(handler) as server, Client(server.port) as client:
        replies = half_close(
            client, b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nbody\r\n.\r\nQUIT\r\n"
        )
    assert replies == EHLO_REPLY + OK + OK + GO_AHEAD + OK + b"221 Bye\r\n"
    assert handler.delivered[0].content == b"body\r\n"


def test_half_close_without_quit_answers_then_closes() -> None:
    handler = Recorder()
    with serve(handler) as server, Client(server.port) as client:
        replies = half_close(client, b"HELO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nbody\r\n.\r\n")
    assert replies == f"250 {HOST}\r\n".encode() + OK + OK + GO_AHEAD + OK
    assert len(handler.delivered) == 1


def test_eof_inside_data_delivers_nothing() -> None:
    handler = Recorder()
    with serve(handler) as server, Client(server.port) as client:
        replies = half_close(client, b"HELO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nno end\r\n")
    assert replies == f"250 {HOST}\r\n".encode() + OK + OK + GO_AHEAD
    assert handler.delivered == []


def test_eof_inside_a_command_line_closes_quietly() -> None:
    with serve(Recorder()) as server, Client(server.port) as client:
        assert half_close(client, b"NOOP\r\nNOO") == OK


def test_nothing_pipelined_after_quit_runs() -> None:
    class Counting(Recorder):
        noops = 0

        async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: Any) -> str:
            self.noops += 1
            return "250 OK"

    handler = Counting()
    with serve(handler) as server, Client(server.port) as client:
        client.send(b"HELO c\r\nQUIT\r\nNOOP\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nlate\r\n.\r\n")
        assert client.rest() == f"250 {HOST}\r\n221 Bye\r\n".encode()
    assert (handler.noops, handler.delivered) == (0, [])


def test_reset_inside_data_delivers_nothing_and_the_server_goes_on() -> None:
    handler = Recorder()
    with serve(handler) as server:
        with Client(server.port) as client:
            client.send(b"HELO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n")
            for _ in range(4):
                client.reply()
            client.send(b"half a message\r\n")
            # SO_LINGER 0: close() sends RST instead of FIN.
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with Client(server.port) as client:
            assert client.cmd("NOOP") == OK
    assert handler.delivered == []
