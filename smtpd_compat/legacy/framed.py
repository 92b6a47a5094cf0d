"""An ``async_chat`` whose input is split by the engine's ``Framer``.

Stdlib smtpd found its lines with ``async_chat``'s terminator search.  Here
the project's one SMTP engine does that work, and its events are replayed
through the ``async_chat`` protocol that smtpd code (and subclasses of it)
is written against:

* ``CommandLine``     -> ``collect_incoming_data(line)``; ``found_terminator()``
* ``CommandTooLong``  -> the same with the line's first bytes (enough to
  reply "500 Error: line too long", which is what smtpd answers)
* ``DataChunk``       -> ``collect_incoming_data(chunk)``, holding back the
  last two bytes so that, at the end, exactly what smtpd collected has been
  handed over: the content without the final ``<CR><LF>.<CR><LF>``
* ``DataEnd``         -> ``found_terminator()``

Which framing applies follows ``get_terminator()``, checked before every
event exactly as ``async_chat`` re-reads it: ``b"\\r\\n"`` means command
lines, ``b"\\r\\n.\\r\\n"`` message content, and any other terminator (a
subclass reading a byte count, say) is served by ``async_chat``'s generic
algorithm until a framed terminator is set again.

``start_tls()`` puts a ``tls.TLSSession`` between the socket and all of
the above: received bytes are decrypted before they reach the framer, and
``send()`` encrypts what ``async_chat`` sends.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, List, Optional

from smtpd_compat import asynchat, asyncore
from smtpd_compat.asyncore import SocketMap
from smtpd_compat.engine.framing import ChunkEnd, CommandLine, CommandTooLong, DataChunk, DataEnd, Event, Framer

if TYPE_CHECKING:
    import ssl

    from smtpd_compat.legacy.tls import TLSSession
# ssl is imported only once a channel starts TLS (see start_tls).

__all__ = ["DATA_TERMINATOR", "LINE_TERMINATOR", "FramedChat"]

LINE_TERMINATOR = b"\r\n"
DATA_TERMINATOR = b"\r\n.\r\n"
# The last line's CRLF belongs to smtpd's terminator, not to the content.
_HELD_BACK = len(LINE_TERMINATOR)


class FramedChat(asynchat.async_chat):
    """``async_chat`` over ``Framer``; see the module docstring.

    Subclasses provide ``collect_incoming_data``/``found_terminator`` as for
    any ``async_chat``, plus the two limits the framer needs.
    """

    #: Seconds without a complete line (a command, or a message line) after
    #: which ``handle_idle_timeout()`` runs, checked whenever the asyncore
    #: loop wakes up; None or 0: never.
    idle_timeout: Optional[float] = 300.0

    # Class-level defaults: a subclass that re-implements __init__ by calling
    # async_chat.__init__ directly still gets working framing on first use.
    _framer: Optional[Framer] = None
    _stop_reading = False
    _tls: Optional[TLSSession] = None

    def __init__(self, sock: object = None, map: Optional[SocketMap] = None) -> None:
        self._start_framing()
        asynchat.async_chat.__init__(self, sock, map)  # type: ignore[arg-type]

    def _start_framing(self) -> Framer:
        framer = self._framer = Framer()
        # The framer's unparsed bytes are always the last `framer.buffered`
        # bytes fed to it; these two remember enough of them to hand the
        # rest to async_chat when a custom terminator takes over.
        self._carry = b""
        self._fresh = b""
        self._data_tail = b""
        self._last_input = time.monotonic()
        return framer

    # -- limits, provided by the subclass ---------------------------------------------

    def framer_command_limit(self) -> int:
        """Longest command line (bytes, CRLF excluded) to hand over whole."""
        raise NotImplementedError

    def framer_data_limit(self) -> Optional[int]:
        """Most message bytes the framer should pass on (None: no limit)."""
        raise NotImplementedError

    # -- input ------------------------------------------------------------------------

    def handle_read(self) -> None:
        try:
            data = self.recv(self.ac_in_buffer_size)
        except BlockingIOError:
            return
        except OSError:
            self.handle_error()
            return
        if not data:
            return
        tls = self._tls
        if tls is not None:
            data = self._decrypt(tls, data)
        if data:
            self._take_input(data)
        if tls is not None and tls.peer_closed and self.connected:
            self.handle_close()  # a TLS close_notify ends the input like EOF

    def _take_input(self, data: bytes) -> None:
        if self._framer is None:
            self._start_framing()
        if self._framed_terminator():
            # The idle clock restarts per line, not per read (see _dispatch),
            # so a client trickling one byte at a time still times out.
            framer = self._framer
            assert framer is not None  # started above
            if (framer.in_data and b"\n" in data) or framer.in_chunk:  # a BDAT chunk has no lines
                self._last_input = time.monotonic()
            self._feed_framer(data)
        else:
            self._last_input = time.monotonic()  # a subclass's own records
            self.ac_in_buffer = self.ac_in_buffer + data
        self._process_input()

    def _framed_terminator(self) -> bool:
        terminator = self.get_terminator()
        return bool(terminator == LINE_TERMINATOR or terminator == DATA_TERMINATOR)

    def _feed_framer(self, data: bytes) -> None:
        self._carry = self._framer_leftover()
        self._fresh = data
        self._framer.feed(data)  # type: ignore[union-attr]  # started by the caller

    def _framer_leftover(self) -> bytes:
        """The bytes the framer holds unparsed (a suffix of carry + fresh)."""
        held = self._framer.buffered  # type: ignore[union-attr]
        if not held:
            return b""
        fresh = self._fresh
        if held <= len(fresh):
            return fresh[len(fresh) - held:]
        return self._carry[len(self._carry) - (held - len(fresh)):] + fresh

    def _drop_framer_input(self) -> None:
        self._framer.discard_buffered()  # type: ignore[union-attr]
        self._carry = self._fresh = b""

    def _process_input(self) -> None:
        """Hand over every complete record, re-reading the terminator each time."""
        framer = self._framer
        assert framer is not None
        while not self._stop_reading and self.connected:
            terminator = self.get_terminator()
            if terminator == LINE_TERMINATOR or terminator == DATA_TERMINATOR:
                if self.ac_in_buffer:  # left by a custom terminator: framed again
                    pending, self.ac_in_buffer = self.ac_in_buffer, b""
                    self._feed_framer(pending)
                if terminator == DATA_TERMINATOR and not framer.in_data:
                    self._data_tail = b""
                    framer.start_data(size_limit=self.framer_data_limit(), line_limit=None)
                framer.command_limit = self.framer_command_limit()
                event = framer.next_event()
                if event is None:
                    return
                self._dispatch(event)
                continue
            if framer.buffered:
                self.ac_in_buffer = self._framer_leftover() + self.ac_in_buffer
                self._drop_framer_input()
            if not self.ac_in_buffer:
                return
            # async_chat's own record splitting, one record per pass.
            if not terminator:
                self._consume_all()
            elif isinstance(terminator, int):
                self._consume_counted(terminator)
            elif not self._consume_delimited(terminator):
                return

    def _dispatch(self, event: Event) -> None:
        if not isinstance(event, DataChunk):
            self._last_input = time.monotonic()  # a command line, or the message, ended
        if isinstance(event, DataChunk):
            if self._framer.in_chunk:  # type: ignore[union-attr]  # it made the event
                self.chunk_data(event.data)
            else:
                self._collect_content(event.data)
        elif isinstance(event, CommandLine):
            if event.line:  # async_chat never reports an empty record as data
                self.collect_incoming_data(event.line)
            self.found_terminator()
        elif isinstance(event, CommandTooLong):
            self.collect_incoming_data(event.prefix)
            self.found_terminator()
        elif isinstance(event, ChunkEnd):
            self.chunk_ended(event)
        else:  # DataEnd: the held-back bytes were the last line's CRLF
            self._data_tail = b""
            self.data_ended(event)

    def start_chunk(self, size: int, discard: bool) -> None:
        """Read the next ``size`` bytes as one BDAT chunk (RFC 3030): they go
        to ``chunk_data`` (unless ``discard``), then ``chunk_ended`` runs."""
        if self._framer is None:
            self._start_framing()
        self._framer.start_chunk(size, discard)  # type: ignore[union-attr]  # just started

    def chunk_data(self, data: bytes) -> None:
        """Bytes of a BDAT chunk, as they arrive (a counted record, as
        ``set_terminator(size)`` gives in asynchat)."""
        self.collect_incoming_data(data)

    def chunk_ended(self, end: ChunkEnd) -> None:
        """A BDAT chunk was read to its end."""
        self.found_terminator()

    def data_ended(self, end: DataEnd) -> None:
        """The message is complete; a subclass may vet it before
        ``found_terminator()`` processes it."""
        self.found_terminator()

    def _collect_content(self, data: bytes) -> None:
        tail = self._data_tail
        if len(data) >= _HELD_BACK:
            if tail:
                self.collect_incoming_data(tail)
            if len(data) > _HELD_BACK:
                self.collect_incoming_data(data[:-_HELD_BACK])
            self._data_tail = data[-_HELD_BACK:]
            return
        joined = tail + data
        if len(joined) > _HELD_BACK:
            self.collect_incoming_data(joined[:-_HELD_BACK])
        self._data_tail = joined[-_HELD_BACK:]

    def discard_buffers(self) -> None:
        asynchat.async_chat.discard_buffers(self)
        if self._framer is not None:
            self._drop_framer_input()
            self._data_tail = b""

    # -- TLS ---------------------------------------------------------------------------

    def start_tls(self, context: ssl.SSLContext) -> None:
        """Speak TLS from here on, as the server side.

        Output queued so far still goes out in the clear, first.  Input not
        handled yet is dropped: it was sent in the clear, so it must not be
        taken as if it came over TLS (CVE-2024-34083).  Once the handshake
        is done, ``handle_tls_established()`` runs; if it fails,
        ``handle_tls_failed()``.
        """
        from smtpd_compat.legacy.tls import TLSSession

        if self._framer is not None:
            self._drop_framer_input()
        self.ac_in_buffer = b""
        self._tls = TLSSession(context, self._take_queued_output())
        self._send_tls_output()

    @property
    def ssl_object(self) -> Optional[ssl.SSLObject]:
        """The connection's ``ssl.SSLObject`` once TLS is up, else None."""
        tls = self._tls
        return tls.ssl_object if tls is not None and tls.established else None

    def handle_tls_established(self) -> None:
        """The TLS handshake completed."""

    def handle_tls_failed(self, error: Exception) -> None:
        """The TLS handshake (or a TLS record) failed: only this channel closes."""
        self.close()

    def _take_queued_output(self) -> bytes:
        """Empty the output queue up to a close marker, producers included."""
        fifo = self.producer_fifo
        taken: List[bytes] = []
        while fifo and fifo[0] is not None:
            first = fifo.popleft()
            if isinstance(first, (bytes, bytearray, memoryview)):
                taken.append(bytes(first))
                continue
            produced = first.more()
            while produced:
                taken.append(bytes(produced))
                produced = first.more()
        return b"".join(taken)

    def _decrypt(self, tls: TLSSession, data: bytes) -> bytes:
        was_established = tls.established
        plaintext = tls.receive(data)
        self._send_tls_output()
        if tls.failure is not None:
            self.handle_tls_failed(tls.failure)
            return b""
        if tls.established and not was_established:
            self.handle_tls_established()
        return plaintext

    def _send_tls_output(self) -> bool:
        """Send the TLS bytes the socket takes now; True once none wait."""
        tls = self._tls
        assert tls is not None
        while tls.pending and self.connected:
            sent = asyncore.dispatcher.send(self, tls.output(self.ac_out_buffer_size))
            if not sent:
                break
            tls.sent(sent)
        return not tls.pending

    def send(self, data: Any) -> int:
        tls = self._tls
        if tls is None:
            return asyncore.dispatcher.send(self, data)
        if not self._send_tls_output() and tls.pending >= self.ac_out_buffer_size:
            return 0  # the peer is behind: the rest stays queued, unencrypted
        tls.write(bytes(data))
        self._send_tls_output()
        return len(data)

    def writable(self) -> bool:
        tls = self._tls
        return bool(tls is not None and tls.pending) or asynchat.async_chat.writable(self)

    def initiate_send(self) -> None:
        # Encrypted bytes go out before anything else queued: the close
        # marker after a 221 must not close the socket ahead of them.
        if self._tls is not None and not self._send_tls_output():
            return
        asynchat.async_chat.initiate_send(self)

    def close(self) -> None:
        tls, self._tls = self._tls, None
        if tls is not None and self.connected:
            tls.shutdown()
            try:  # a courtesy close_notify; the socket is non-blocking, so no waiting
                self.socket.send(tls.output(self.ac_out_buffer_size))
            except OSError:
                pass
        asynchat.async_chat.close(self)

    # -- closing and idleness ---------------------------------------------------------

    def close_when_done(self) -> None:
        # Input that follows (pipelined after QUIT) is not acted upon.
        self._stop_reading = True
        asynchat.async_chat.close_when_done(self)

    def readable(self) -> bool:
        if self._framer is None:
            self._start_framing()
        timeout = self.idle_timeout
        if (
            timeout
            and self.connected
            and not self._stop_reading
            and time.monotonic() - self._last_input > timeout
        ):
            self.handle_idle_timeout()
        return True

    def handle_idle_timeout(self) -> None:
        """The client sent nothing for ``idle_timeout`` seconds."""
        self.close_when_done()
