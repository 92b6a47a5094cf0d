"""The asyncio floor: `python -m asyncio_floor HOST:PORT` (bench/servers on the path).

Not an SMTP server: a bare ``asyncio.Protocol`` that answers each command
line with a canned reply (354 after DATA, 221 and close after QUIT, else
250) and skips message data up to ``<CR><LF>.<CR><LF>``, all inside
``data_received``: no parsing, no limits, no task, no hooks.  It measures
what the event loop, its transports and the kernel cost for the bench's
workloads on this host, i.e. the ceiling any asyncio server reaches here.
"""
from __future__ import annotations

import asyncio
import signal
import sys
from typing import Optional

# As smtpd_compat.modern.connection does at import: freeing one 1 MiB block
# lifts glibc's mmap threshold above asyncio's 256 KiB receive buffers, so
# the floor pays no mmap/munmap per receive that the modern face does not.
_block = bytes(1 << 20)
del _block

REPLIES = {b"DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n", b"EHLO": b"250-floor\r\n250 HELP\r\n",
           b"QUIT": b"221 Bye\r\n"}
OK = b"250 OK\r\n"


class Floor(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.pending = b""
        self.in_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 floor ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        buf = self.pending + data
        while True:
            if self.in_data:
                end = buf.find(b"\r\n.\r\n")
                if end < 0:
                    buf = buf[-4:]  # a marker split across reads
                    break
                buf, self.in_data = buf[end + 5:], False
                self.transport.write(OK)
                continue
            end = buf.find(b"\r\n")
            if end < 0:
                break
            verb, buf = buf[:4].upper(), buf[end + 2:]
            self.transport.write(REPLIES.get(verb, OK))
            if verb == b"DATA":
                self.in_data = True
                buf = b"\r\n" + buf  # the DATA line's CRLF starts the marker of an empty message
            elif verb == b"QUIT":
                self.transport.close()
                break
        self.pending = buf


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Floor, host, port)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop
    server.close()


if __name__ == "__main__":
    address, _, port_text = sys.argv[1].rpartition(":")
    asyncio.run(serve(address, int(port_text)))
