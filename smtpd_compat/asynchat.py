"""Line/record-oriented channels over :mod:`smtpd_compat.asyncore`, with the public
surface and behaviour of Python 3.11's ``asynchat`` (removed from the stdlib in 3.12).

A subclass of :class:`async_chat` sets a terminator (bytes, a byte count, or None) and
receives input through ``collect_incoming_data()`` / ``found_terminator()``; output is
queued with ``push()`` / ``push_with_producer()``.  Importing it emits no warning.
"""
from __future__ import annotations

import socket
from collections import deque
from typing import Any, Deque, List, Optional, Union

from smtpd_compat import asyncore

Terminator = Union[bytes, int, None]


class async_chat(asyncore.dispatcher):
    """Abstract: subclasses provide ``collect_incoming_data()`` and ``found_terminator()``."""

    ac_in_buffer_size = 65536
    ac_out_buffer_size = 65536

    # Off by default: str where bytes are expected is usually a bug that should not pass silently.
    use_encoding = 0
    encoding = "latin-1"

    terminator: Any

    def __init__(self, sock: Optional[socket.socket] = None, map: Optional[asyncore.SocketMap] = None) -> None:
        self.ac_in_buffer = b""
        self.incoming: List[bytes] = []
        # Items are bytes-like chunks, producers (objects with more()), or None meaning "close here".
        self.producer_fifo: Deque[Any] = deque()
        asyncore.dispatcher.__init__(self, sock, map)

    # -- input -----------------------------------------------------------------------

    def collect_incoming_data(self, data: bytes) -> None:
        raise NotImplementedError("must be implemented in subclass")

    def _collect_incoming_data(self, data: bytes) -> None:
        self.incoming.append(data)

    def _get_data(self) -> bytes:
        collected = b"".join(self.incoming)
        self.incoming.clear()
        return collected

    def found_terminator(self) -> None:
        raise NotImplementedError("must be implemented in subclass")

    def set_terminator(self, term: Union[str, Terminator]) -> None:
        """Set the input delimiter: a byte string, a count of bytes to read, or None (no delimiting)."""
        if isinstance(term, str) and self.use_encoding:
            term = term.encode(self.encoding)
        elif isinstance(term, int) and term < 0:
            raise ValueError("the number of received bytes must be positive")
        self.terminator = term

    def get_terminator(self) -> Any:
        return self.terminator

    def handle_read(self) -> None:
        try:
            data: Any = self.recv(self.ac_in_buffer_size)
        except BlockingIOError:
            return
        except OSError:
            self.handle_error()
            return
        if isinstance(data, str) and self.use_encoding:
            data = data.encode(self.encoding)
        self.ac_in_buffer = self.ac_in_buffer + data
        # One read may hold several records; found_terminator() may change the terminator
        # between them, so it is fetched again for every record.
        while self.ac_in_buffer:
            terminator = self.get_terminator()
            if not terminator:
                self._consume_all()
            elif isinstance(terminator, int):
                self._consume_counted(terminator)
            elif not self._consume_delimited(terminator):
                break

    def _consume_all(self) -> None:
        self.collect_incoming_data(self.ac_in_buffer)
        self.ac_in_buffer = b""

    def _consume_counted(self, wanted: int) -> None:
        buffered = len(self.ac_in_buffer)
        if buffered < wanted:
            self.collect_incoming_data(self.ac_in_buffer)
            self.ac_in_buffer = b""
            self.terminator = wanted - buffered
            return
        self.collect_incoming_data(self.ac_in_buffer[:wanted])
        self.ac_in_buffer = self.ac_in_buffer[wanted:]
        self.terminator = 0
        self.found_terminator()

    def _consume_delimited(self, terminator: bytes) -> bool:
        """Hand over input up to ``terminator``; False when more input is needed first."""
        found_at = self.ac_in_buffer.find(terminator)
        if found_at != -1:
            if found_at > 0:  # an empty record is not reported as data
                self.collect_incoming_data(self.ac_in_buffer[:found_at])
            self.ac_in_buffer = self.ac_in_buffer[found_at + len(terminator):]
            self.found_terminator()
            return True
        # Keep back a tail that may be the start of a terminator split across reads.
        partial = find_prefix_at_end(self.ac_in_buffer, terminator)
        if partial:
            if partial != len(self.ac_in_buffer):
                self.collect_incoming_data(self.ac_in_buffer[:-partial])
                self.ac_in_buffer = self.ac_in_buffer[-partial:]
            return False
        self._consume_all()
        return True

    # -- output ----------------------------------------------------------------------

    def handle_write(self) -> None:
        self.initiate_send()

    def handle_close(self) -> None:
        self.close()

    def push(self, data: Union[bytes, bytearray, memoryview]) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data argument must be byte-ish (%r)" % type(data))
        chunk = self.ac_out_buffer_size
        if len(data) > chunk:
            self.producer_fifo.extend(data[start:start + chunk] for start in range(0, len(data), chunk))
        else:
            self.producer_fifo.append(data)
        self.initiate_send()

    def push_with_producer(self, producer: Any) -> None:
        self.producer_fifo.append(producer)
        self.initiate_send()

    def readable(self) -> bool:
        # Always readable: limiting on ac_in_buffer would contradict set_terminator()'s promise.
        return True

    def writable(self) -> bool:
        return bool(self.producer_fifo) or not self.connected

    def close_when_done(self) -> None:
        """Close the channel once everything queued so far has been sent."""
        self.producer_fifo.append(None)

    def initiate_send(self) -> None:
        """Send from the head of the queue: at most one send() per call."""
        fifo = self.producer_fifo
        while fifo and self.connected:
            first = fifo[0]
            if not first:  # an empty chunk, or the close-when-done marker
                del fifo[0]
                if first is None:
                    self.handle_close()
                    return
            limit = self.ac_out_buffer_size
            try:
                data = first[:limit]
            except TypeError:  # not sliceable: a producer, drained into the queue
                produced = first.more()
                if produced:
                    fifo.appendleft(produced)
                else:
                    del fifo[0]
                continue
            if isinstance(data, str) and self.use_encoding:
                data = data.encode(self.encoding)
            try:
                sent = self.send(data)
            except OSError:
                self.handle_error()
                return
            if sent:
                if sent < len(data) or limit < len(first):
                    fifo[0] = first[sent:]
                else:
                    del fifo[0]
            return

    def discard_buffers(self) -> None:
        """Drop all buffered input and queued output (for emergencies)."""
        self.ac_in_buffer = b""
        self.incoming.clear()
        self.producer_fifo.clear()


class simple_producer:
    """Hands out ``data`` in pieces of at most ``buffer_size`` bytes."""

    def __init__(self, data: bytes, buffer_size: int = 512) -> None:
        self.data = data
        self.buffer_size = buffer_size

    def more(self) -> bytes:
        piece, self.data = self.data[:self.buffer_size], self.data[self.buffer_size:]
        return piece


def find_prefix_at_end(haystack: bytes, needle: bytes) -> int:
    """Length of the longest proper prefix of ``needle`` that ``haystack`` ends with
    (``needle`` itself is assumed not to be found in ``haystack``)."""
    for size in range(len(needle) - 1, 0, -1):
        if haystack.endswith(needle[:size]):
            return size
    return 0
