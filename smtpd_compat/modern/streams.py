"""aiosmtpd's stream surface, for code written against its internals.

aiosmtpd 1.4.6's ``SMTP`` was an ``asyncio.StreamReaderProtocol`` and kept a
``StreamReader`` as ``_reader`` and a ``StreamWriter`` as ``_writer``.
Packages built on it reach into them: a subclass that re-implements STARTTLS
with ``loop.start_tls()`` (smtpdfix's, for one) sets ``_reader._transport``,
``_writer._transport`` and ``_tls_protocol`` once the handshake is done; a
copied ``push()`` writes through ``_writer``.  Our protocol parses from one
receive buffer and has no streams: these views map what such code touches
onto the ``ConnectionAdapter``.  They are made only when first used.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Optional

from .connection import StreamWriterView as StreamWriterView

if TYPE_CHECKING:
    from .connection import ConnectionAdapter

__all__ = ["AiosmtpdStreams", "StreamReaderView", "StreamWriterView"]


class _BufferView:
    """``_reader._buffer``: aiosmtpd's STARTTLS cleared it to drop plaintext
    the client pipelined (CVE-2024-34083); here that is the framer's input."""

    def __init__(self, adapter: "ConnectionAdapter") -> None:
        self._adapter = adapter

    def clear(self) -> None:
        self._adapter._drop_input()


class StreamReaderView:
    """What code written for aiosmtpd uses of its ``_reader``."""

    def __init__(self, adapter: "ConnectionAdapter") -> None:
        self._adapter = adapter
        self._buffer = _BufferView(adapter)

    @property
    def _transport(self) -> Optional[asyncio.BaseTransport]:
        return self._adapter.transport

    @_transport.setter
    def _transport(self, transport: asyncio.BaseTransport) -> None:
        self._adapter._adopt_transport(transport)

    async def readline(self) -> bytes:
        """One line with its ``\\r\\n``; ``b""`` at end of input."""
        line = await self._adapter._readline()
        return b"" if line is None else line + b"\r\n"


class AiosmtpdStreams:
    """Mixed into ``SMTP``: ``_reader``, ``_tls_protocol``,
    ``_original_transport`` and the TLS switch made by a subclass."""

    #: aiosmtpd kept the plaintext transport here during STARTTLS.
    _original_transport: Optional[asyncio.BaseTransport] = None
    _tls_protocol_set: Optional[object] = None
    _plaintext_dropped = False

    if TYPE_CHECKING:
        _transport: Optional[asyncio.BaseTransport]
        transport: Optional[asyncio.BaseTransport]
        _tls_started: bool

        def _tls_established(self, transport: asyncio.BaseTransport) -> None: ...
        def _drop_input(self) -> None: ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overrides_starttls = "smtp_STARTTLS" in vars(cls) and any(
            hasattr(base, "smtp_STARTTLS") for base in cls.__bases__
        )
        if overrides_starttls and "data_received" not in vars(cls):
            # Only such classes pay for the check, not the default path.
            cls.data_received = AiosmtpdStreams._data_received_dropping_plaintext  # type: ignore[attr-defined]

    def _data_received_dropping_plaintext(self, data: bytes) -> None:
        """``data_received`` for a subclass with its own STARTTLS.

        Once ``loop.start_tls()`` has taken the connection over, input comes
        through the TLS layer, not the transport we hold: whatever the
        client pipelined in the clear behind STARTTLS is still buffered then,
        and must never run as if it came over TLS (CVE-2024-34083).  Input
        sent with the handshake's last flight arrives here before the
        subclass hands us the TLS transport, so the drop happens now.
        """
        transport = self._transport
        receiver: object = None if transport is None else transport.get_protocol()
        if receiver is not self and transport is not None:
            self._drop_plaintext()
        super(AiosmtpdStreams, self).data_received(data)  # type: ignore[misc]

    def _drop_plaintext(self) -> None:
        """Discard the input buffered before TLS, once per connection."""
        if not self._plaintext_dropped:
            self._plaintext_dropped = True
            self._drop_input()

    @property
    def _reader(self) -> StreamReaderView:
        reader: Optional[StreamReaderView] = self.__dict__.get("_reader_view")
        if reader is None:
            reader = self.__dict__["_reader_view"] = StreamReaderView(self)  # type: ignore[arg-type]
        return reader

    @property
    def _tls_protocol(self) -> Optional[object]:
        """Truthy once TLS is up: aiosmtpd's tests and subclasses ask."""
        if self._tls_protocol_set is not None:
            return self._tls_protocol_set
        return self.transport if self._tls_started else None

    @_tls_protocol.setter
    def _tls_protocol(self, protocol: Optional[object]) -> None:
        # aiosmtpd took a set _tls_protocol to mean "TLS is up" (EHLO, AUTH,
        # require_starttls).
        self._tls_protocol_set = protocol
        if protocol is not None:
            self._tls_started = True

    def _adopt_transport(self, transport: asyncio.BaseTransport) -> None:
        """A subclass handed the connection a new transport: TLS over a
        plaintext one means its STARTTLS succeeded, which resets the
        session (RFC 3207 4.2)."""
        current = self.transport
        if transport is current:
            return
        if (
            current is not None
            and current.get_extra_info("ssl_object") is None
            and transport.get_extra_info("ssl_object") is not None
        ):
            # Unless TLS input came first (see data_received above), all
            # that is buffered came in the clear.
            self._drop_plaintext()
            self._tls_established(transport)
        else:
            self.transport = transport
