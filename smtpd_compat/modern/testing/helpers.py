"""``aiosmtpd.testing.helpers``: small tools for tests that talk to a server."""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time
from smtplib import SMTP as SMTP_Client
from typing import List

from ..smtp import SMTP, Envelope, Session

__all__ = [
    "ASYNCIO_CATCHUP_DELAY",
    "ReceivingHandler",
    "catchup_delay",
    "reset_connection",
    "send_recv",
]

#: Seconds to let the event loop (in the Controller's thread) settle;
#: overridable from the environment for slow machines, as in aiosmtpd.
ASYNCIO_CATCHUP_DELAY = float(os.environ.get("ASYNCIO_CATCHUP_DELAY", 0.1))


def reset_connection(client: SMTP_Client) -> None:
    """Close ``client``'s socket with a TCP RST (``SO_LINGER`` on, 0 s)."""
    assert client.sock is not None
    # struct linger is two ints on POSIX, two shorts on Windows.
    linger = struct.pack("hh" if sys.platform == "win32" else "ii", 1, 0)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    client.close()


class ReceivingHandler:
    """Keeps every delivered envelope in ``box``."""

    def __init__(self) -> None:
        self.box: List[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.box.append(envelope)
        return "250 OK"


def catchup_delay(delay: float = ASYNCIO_CATCHUP_DELAY) -> None:
    """Block for ``delay`` seconds so the server's loop can catch up."""
    time.sleep(delay)


def send_recv(sock: socket.socket, data: bytes, end: bytes = b"\r\n", timeout: float = 0.1) -> bytes:
    """Send ``data + end``, then collect whatever arrives until ``timeout``
    seconds pass with nothing new."""
    sock.send(data + end)
    received: List[bytes] = []
    while select.select([sock], [], [], timeout)[0]:
        chunk = sock.recv(1024)
        received.append(chunk)
        if not chunk:  # closed by the server: nothing more will come
            break
    return b"".join(received)
