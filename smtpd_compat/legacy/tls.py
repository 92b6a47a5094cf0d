"""Server-side TLS without a socket, for the asyncore channel.

``TLSSession`` wraps an ``ssl.SSLObject`` between two memory BIOs: the
channel hands it the bytes it received and gets plaintext back, and
it queues plaintext to send and takes ciphertext from it.  The socket stays
the channel's: non-blocking reads and writes and the asyncore loop work as
before, and nothing here ever waits.
"""

from __future__ import annotations

import ssl
from typing import Any, Dict, List, Optional

__all__ = ["TLSSession", "ssl_info"]

# As much plaintext as one TLS record carries.
_READ_SIZE = 16384


class TLSSession:
    """One server-side TLS connection, sans-I/O.

    ``cleartext_first`` is sent ahead of the handshake, unencrypted: the
    ``220 Ready to start TLS`` reply, and anything queued before it.
    """

    def __init__(self, context: ssl.SSLContext, cleartext_first: bytes = b"") -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.established = False
        self.peer_closed = False
        self.failure: Optional[ssl.SSLError] = None
        self._to_send = bytearray(cleartext_first)
        # Plaintext queued before the handshake completed (SMTPS: the greeting).
        self._early = bytearray()

    # -- input --------------------------------------------------------------------------

    def receive(self, data: bytes) -> bytes:
        """Take ``data`` from the peer; return the plaintext it completed.

        When the handshake or a record fails, ``failure`` is set and nothing
        more is read.  Once the peer closed TLS, ``peer_closed`` is true.
        """
        if self.failure is not None:
            return b""
        self._incoming.write(data)
        try:
            if not self.established:
                try:
                    self.ssl_object.do_handshake()
                except ssl.SSLWantReadError:
                    return b""
                self.established = True
                if self._early:
                    early, self._early = bytes(self._early), bytearray()
                    self.write(early)
            return self._read_all()
        except ssl.SSLError as error:
            self.failure = error
            return b""
        finally:
            self._collect_output()

    def _read_all(self) -> bytes:
        chunks: List[bytes] = []
        while True:
            try:
                chunk = self.ssl_object.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify: the data before it still counts
                self.peer_closed = True
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    # -- output -------------------------------------------------------------------------

    def write(self, plaintext: bytes) -> None:
        """Queue ``plaintext`` for the peer (held back until the handshake is done)."""
        if not self.established:
            self._early += plaintext
            return
        view = memoryview(plaintext)
        while view:
            # A memory BIO never fills up, so each write takes all it is given.
            view = view[self.ssl_object.write(view):]
        self._collect_output()

    def shutdown(self) -> None:
        """Queue a close_notify alert, if the session ever got that far."""
        if not self.established:
            return
        try:
            self.ssl_object.unwrap()
        except ssl.SSLError:
            pass  # the peer's own close_notify is not waited for
        self._collect_output()

    def _collect_output(self) -> None:
        if self._outgoing.pending:
            self._to_send += self._outgoing.read()

    @property
    def pending(self) -> int:
        """Bytes waiting to go to the socket."""
        return len(self._to_send)

    def output(self, limit: int) -> bytes:
        """Up to ``limit`` of the bytes waiting to go to the socket."""
        return bytes(self._to_send[:limit])

    def sent(self, count: int) -> None:
        """The first ``count`` waiting bytes went out."""
        del self._to_send[:count]


def ssl_info(ssl_object: ssl.SSLObject) -> Dict[str, Any]:
    """The facts the modern face puts in ``session.ssl``, from the SSL object."""
    return {
        "sslcontext": ssl_object.context,
        "ssl_object": ssl_object,
        "peercert": ssl_object.getpeercert(),
        "cipher": ssl_object.cipher(),
        "compression": ssl_object.compression(),
    }
