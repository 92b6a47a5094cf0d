"""Streaming messages on the legacy face, as on the modern one.

An ``SMTPServer`` subclass that defines ``handle_DATA_CHUNK(server, session,
envelope, data)`` (through the bridge's views, as its other modern hooks)
gets each message piece by piece as it arrives: DATA dot-unstuffed (and
normalized under ``bare_newline = "normalize"``), BDAT chunks as sent, and
``None`` when the message is refused or cut off.  Then the end-of-message
call is its ``handle_DATA`` (``envelope.content`` left None) or, without
one, ``process_message(peer, mailfrom, rcpttos, None, ...)``.  The channel
keeps no ``received_lines`` for such a server, so its memory stays bounded
whatever the message size.  ``smtpd_compat.modern.spool.Spooler`` mixed in
before ``SMTPServer`` works as it does on the modern face.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from smtpd_compat.engine.framing import Unstuffer
from smtpd_compat.legacy import bridge

__all__ = ["MessageStream", "stream_of"]


class MessageStream:
    """One channel's message on its way to ``handle_DATA_CHUNK``."""

    def __init__(self, channel: Any, hook: Callable[..., Any]) -> None:
        self.channel = channel
        self.hook = hook
        self._unstuffer: Optional[Unstuffer] = None
        #: A piece was handed over and the message has not ended yet.
        self.open = False

    def data(self, chunk: bytes) -> None:
        """DATA content as the framer cut it (CRLFs whole, dots stuffed)."""
        if self._unstuffer is None:
            self._unstuffer = Unstuffer(normalize=self.channel.bare_newline == "normalize")
        self.piece(self._unstuffer.feed(chunk))

    def piece(self, data: bytes) -> None:
        """Content as it goes to the hook (a BDAT chunk's bytes as sent)."""
        if data:
            self.open = True
            self._call(data)

    def ended(self) -> None:
        """The message is complete; the end-of-message call follows."""
        self.new_message()

    def refused(self) -> None:
        """The message was refused (size, bare newline, a failed chunk)."""
        self.new_message()
        self._call(None)

    def cut(self) -> None:
        """The connection is closing: a message half handed over is dropped."""
        if self.open:
            self.refused()

    def new_message(self) -> None:
        self._unstuffer = None
        self.open = False

    def _call(self, data: Optional[bytes]) -> None:
        self.channel._hook_context().call(self.hook, data)


def stream_of(channel: Any) -> Optional[MessageStream]:
    """A stream for ``channel`` when its server defines ``handle_DATA_CHUNK``."""
    hook = bridge.find_hook(channel.smtp_server, "DATA_CHUNK")
    return None if hook is None else MessageStream(channel, hook)
