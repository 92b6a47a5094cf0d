"""Minimal SMTP client pieces the driver needs: reply parsing and one full transaction.

The throughput workloads are driven by Postfix's smtp-source; this module only
serves the readiness check, the idle workload's handshakes and its "fresh
client" check, so it stays deliberately small and blocking-with-deadline.
"""
from __future__ import annotations

import socket
import time
from typing import Optional, Tuple

HOST = "127.0.0.1"
CLIENT_NAME = b"bench.example"
SENDER = b"bench@example.com"
RECIPIENT = b"sink@example.com"


class ProbeError(Exception):
    """The server answered wrongly, closed, or was too slow."""


def parse_reply(buf: bytes) -> Tuple[Optional[int], bytes]:
    """Split one complete (possibly multi-line) reply off buf.

    Returns (code, rest) or (None, buf) while the final line is still missing.
    """
    rest = buf
    while b"\r\n" in rest:
        line, rest = rest.split(b"\r\n", 1)
        if len(line) < 3 or not line[:3].isdigit():
            raise ProbeError("not an SMTP reply line: %r" % line[:80])
        separator = line[3:4]
        if separator in (b"", b" "):
            return int(line[:3]), rest
        if separator != b"-":
            raise ProbeError("bad reply separator: %r" % line[:80])
    return None, buf


def read_reply(sock: socket.socket, buf: bytes, deadline: float) -> Tuple[int, bytes]:
    """Block (until deadline, a time.monotonic() value) for one reply."""
    while True:
        code, rest = parse_reply(buf)
        if code is not None:
            return code, rest
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProbeError("timed out waiting for a reply")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ProbeError("server closed the connection")
        buf += chunk


def greets(port: int, timeout: float) -> bool:
    """True if the port accepts a connection and sends a 220 greeting."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            code, _ = read_reply(sock, b"", deadline)
            try:
                sock.sendall(b"QUIT\r\n")
                read_reply(sock, b"", deadline)
            except (OSError, ProbeError):
                pass  # the greeting is what readiness means; QUIT is politeness
            return code == 220
    except (OSError, ProbeError):
        return False


def message_body(length: int) -> bytes:
    """About `length` bytes of headers plus 80-byte lines, dot-stuffing free."""
    head = b"From: <%s>\r\nTo: <%s>\r\nSubject: bench\r\n\r\n" % (SENDER, RECIPIENT)
    return head + (b"x" * 78 + b"\r\n") * max(1, length // 80)


def full_transaction(port: int, timeout: float, body_length: int = 1000) -> float:
    """connect, 220, EHLO, MAIL, RCPT, DATA, QUIT; returns elapsed seconds."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    steps = (
        (b"", 220),
        (b"EHLO " + CLIENT_NAME + b"\r\n", 250),
        (b"MAIL FROM:<" + SENDER + b">\r\n", 250),
        (b"RCPT TO:<" + RECIPIENT + b">\r\n", 250),
        (b"DATA\r\n", 354),
        (message_body(body_length) + b".\r\n", 250),
        (b"QUIT\r\n", 221),
    )
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        for command, expected in steps:
            if command:
                sock.sendall(command)
            code, buf = read_reply(sock, buf, deadline)
            if code != expected:
                raise ProbeError("got %d after %r, expected %d" % (code, command[:20], expected))
    return time.perf_counter() - started
