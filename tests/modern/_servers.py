"""Run an SMTP protocol factory on a private loop thread, for tests."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Callable, List, Optional, Sequence, Tuple


class LoopServer:
    """``asyncio`` server for ``factory(loop)`` on 127.0.0.1, in a thread."""

    def __init__(self, factory: Callable[[asyncio.AbstractEventLoop], asyncio.Protocol]) -> None:
        self.loop = asyncio.new_event_loop()
        self._server = self.loop.run_until_complete(
            self.loop.create_server(lambda: factory(self.loop), "127.0.0.1", 0)
        )
        self.port: int = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    def __enter__(self) -> "LoopServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_reply(sock: socket.socket, buf: bytearray) -> bytes:
    """One complete (possibly multi-line) SMTP reply, CRLFs included."""
    start = 0
    while True:
        end = buf.find(b"\r\n", start)
        while end >= 0:
            line = buf[start:end]
            start = end + 2
            if len(line) < 4 or line[3:4] != b"-":
                reply = bytes(buf[:start])
                del buf[:start]
                return reply
            end = buf.find(b"\r\n", start)
        data = sock.recv(65536)
        if not data:
            reply = bytes(buf)
            del buf[:]
            return reply
        buf += data


Step = Tuple[bytes, int]


def converse(port: int, steps: Sequence[Step], timeout: float = 5.0) -> List[bytes]:
    """Connect, read the greeting, then for each ``(data, n)`` send data and
    read ``n`` replies.  Returns every reply in order (greeting first)."""
    replies: List[bytes] = []
    buf = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        replies.append(read_reply(sock, buf))
        for data, count in steps:
            if data:
                sock.sendall(data)
            for _ in range(count):
                replies.append(read_reply(sock, buf))
    return replies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    out = bytearray()
    while True:
        data = sock.recv(65536)
        if not data:
            return bytes(out)
        out += data


