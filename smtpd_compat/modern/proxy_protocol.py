"""HAProxy PROXY protocol v1 (text) and v2 (binary) headers.

Mirrors the public names and observable behaviour of aiosmtpd 1.4.6's
``aiosmtpd.proxy_protocol``: same classes, same fields, same error strings,
same acceptance rules (quirks included, see the comments marked
"aiosmtpd:").  Reference: HAProxy's doc/proxy-protocol.txt (v2.3.0).

The parsing is sans-I/O.  :func:`parse_proxy_header` takes the bytes received
so far and answers either ``None`` ("need more bytes") or the final
``(ProxyData, consumed)``; an SMTP protocol that owns its receive buffer calls
it from ``data_received`` and hands ``buf[consumed:]`` to the SMTP engine.
A header is bounded (107 bytes for v1, 16 + 65535 for v2), and malformed
input is reported as soon as it is recognisable, so a caller never has to
buffer more than that.  :func:`get_proxy` is the aiosmtpd-compatible async
adapter over the same parser for stream readers.

Deliberate differences from aiosmtpd 1.4.6, all invisible to valid headers:

* ``ProxyData`` is a plain slotted class (no attrs); ``rest`` is always
  ``bytes``; v2 ``command``/``family``/``protocol`` are enum members when
  recognised (aiosmtpd stores the raw ints, which compare equal).
* ``ProxyTLV.tlv_loc`` gives SSL sub-TLVs their true offset from the start of
  the TLV block (aiosmtpd reports them relative to the enclosing SSL TLV,
  8 bytes short); an empty SSL TLV is ``MalformedTLV`` instead of an
  ``IndexError`` escaping from ``ProxyData.tlv``.
* ``ProxyData.__eq__`` ignores the lazily built ``tlv`` cache.
"""

from __future__ import annotations

import logging
import re
import struct
from collections import deque
from enum import IntEnum
from functools import partial
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import (
    Any,
    Callable,
    ClassVar,
    Deque,
    Dict,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    Union,
)

# aiosmtpd's __all__ re-exports struct, partial, IPv4Address and IPv6Address;
# kept so that star-imports see the same names.
__all__ = [
    "struct",
    "partial",
    "IPv4Address",
    "IPv6Address",
    "V2_SIGNATURE",
    "V2_CMD",
    "V2_VALID_CMDS",
    "V2_VALID_FAMS",
    "V2_VALID_PROS",
    "V2_PARSE_ADDR_FAMPRO",
    "AF",
    "PROTO",
    "MalformedTLV",
    "UnknownTypeTLV",
    "AsyncReader",
    "ProxyTLV",
    "ProxyData",
    "get_proxy",
    "parse_proxy_header",
]

log = logging.getLogger("mail.debug")

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V1_SIGNATURE = b"PROXY"
# Both signatures differ in their first byte, so 5 bytes always decide.
_SIGNATURE_PROBE = len(_V1_SIGNATURE)
# Longest v1 line the spec allows, CRLF included.
_V1_MAX_LENGTH = 107
_V2_FIXED_LENGTH = 16
_V2_FIXED = struct.Struct("!BBH")
_MAX_PORT = 65535


class V2_CMD(IntEnum):
    """The v2 command (low nibble of byte 13)."""

    LOCAL = 0
    PROXY = 1


class AF(IntEnum):
    """Address family; v1 ``UNKNOWN`` maps to ``UNSPEC``, ``UNIX`` is v2 only."""

    UNSPEC = 0
    INET = 1
    INET6 = 2
    UNIX = 3


class PROTO(IntEnum):
    """Transport protocol; v1 ``UNKNOWN`` maps to ``UNSPEC``, ``DGRAM`` is v2 only."""

    UNSPEC = 0
    STREAM = 1
    DGRAM = 2


V2_VALID_CMDS = {member.value for member in V2_CMD}
V2_VALID_FAMS = {member.value for member in AF}
V2_VALID_PROS = {member.value for member in PROTO}
# Family/protocol bytes whose header carries an address block.
V2_PARSE_ADDR_FAMPRO = {
    (family << 4) | protocol
    for family in (AF.INET, AF.INET6, AF.UNIX)
    for protocol in (PROTO.STREAM, PROTO.DGRAM)
}

_V2_ADDRESS_BLOCKS = {
    AF.INET: struct.Struct("!4s4sHH"),
    AF.INET6: struct.Struct("!16s16sHH"),
    AF.UNIX: struct.Struct("108s108s"),
}

EndpointAddress = Union[IPv4Address, IPv6Address, str, bytes]
BytesLike = Union[bytes, bytearray]

_NOT_FOUND = object()


class MalformedTLV(RuntimeError):
    """A TLV vector is shorter than its declared length."""


class UnknownTypeTLV(KeyError):
    """Strict TLV parsing met a type missing from ``ProxyTLV.PP2_TYPENAME``."""


class AsyncReader(Protocol):
    """What :func:`get_proxy` needs from a reader (asyncio.StreamReader fits)."""

    async def read(self, n: int = ...) -> bytes: ...

    async def readexactly(self, n: int) -> bytes: ...

    async def readuntil(self, separator: bytes = ...) -> bytes: ...


def _same_attribs(
    lookup: Callable[[str], Any], expected: Mapping[str, Any], raises: bool
) -> bool:
    """Shared body of ``ProxyData.same_attribs`` and ``ProxyTLV.same_attribs``."""
    for name, value in expected.items():
        actual = lookup(name)
        if actual is _NOT_FOUND:
            if raises:
                raise KeyError(f"notfound:{name}")
            return False
        if actual != value:
            if raises:
                raise ValueError(f"mismatch:{name} actual={actual!r} expect={value!r}")
            return False
    return True


class ProxyTLV(Dict[str, Any]):
    """The TLV vectors of a v2 header, keyed by type name.

    Known types are named after ``PP2_TYPENAME``, others ``"xNN"`` (hex).
    An SSL vector is flattened: ``SSL_CLIENT``, ``SSL_VERIFY``, its sub-TLVs
    under their own names, and ``SSL`` itself is True when they all parsed.
    Attribute access (``tlv.AUTHORITY``) returns the value or None.
    ``tlv_loc`` maps each name to its offset from the start of the TLV block.
    """

    __slots__ = ("tlv_loc",)

    PP2_TYPENAME: ClassVar[Dict[int, str]] = {
        0x01: "ALPN",
        0x02: "AUTHORITY",
        0x03: "CRC32C",
        0x04: "NOOP",
        0x05: "UNIQUE_ID",
        0x20: "SSL",
        0x21: "SSL_VERSION",
        0x22: "SSL_CN",
        0x23: "SSL_CIPHER",
        0x24: "SSL_SIG_ALG",
        0x25: "SSL_KEY_ALG",
        0x30: "NETNS",
    }

    def __init__(self, *args: Any, _tlv_loc: Dict[str, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tlv_loc = _tlv_loc

    def __getattr__(self, item: str) -> Any:
        # Dunder probes (copy, pickle, duck typing) must not be answered with None.
        if item.startswith("__") and item.endswith("__"):
            raise AttributeError(item)
        return self.get(item)

    def same_attribs(self, _raises: bool = False, **kwargs: Any) -> bool:
        """True if every keyword names a present TLV with that value.

        With ``_raises``, a missing name raises ``KeyError("notfound:NAME")``
        and a different value ``ValueError("mismatch:NAME actual=.. expect=..")``.
        """
        return _same_attribs(lambda name: self.get(name, _NOT_FOUND), kwargs, _raises)

    @classmethod
    def parse(
        cls, data: BytesLike, partial_ok: bool = True, strict: bool = False
    ) -> Tuple[Dict[str, Any], Dict[str, int]]:
        """Decode TLV vectors into ``(values_by_name, offsets_by_name)``.

        ``partial_ok`` keeps what was decoded before a malformed vector instead
        of raising ``MalformedTLV``; ``strict`` raises ``UnknownTypeTLV`` for
        unnamed types.
        """
        values: Dict[str, Any] = {}
        offsets: Dict[str, int] = {}
        try:
            cls._parse_into(data, 0, partial_ok, strict, values, offsets)
        except MalformedTLV:
            if not partial_ok:
                raise
        return values, offsets

    @classmethod
    def _parse_into(
        cls,
        chunk: BytesLike,
        base: int,
        partial_ok: bool,
        strict: bool,
        values: Dict[str, Any],
        offsets: Dict[str, int],
    ) -> None:
        pos = 0
        while pos < len(chunk):
            type_num = chunk[pos]
            # aiosmtpd: a vector cut inside its 2-byte length reads the
            # length from what is there (a lone trailing type byte is an
            # empty vector).
            length = int.from_bytes(chunk[pos + 1 : pos + 3], "big")
            value = chunk[pos + 3 : pos + 3 + length]
            if len(value) < length:
                raise MalformedTLV(f"TLV 0x{type_num:02X} is malformed!")
            name = cls.PP2_TYPENAME.get(type_num)
            if name is None:
                name = f"x{type_num:02X}"
                if strict:
                    raise UnknownTypeTLV(name)
            offsets[name] = base + pos
            if name != "SSL":
                values[name] = value
            else:
                # pp2_tlv_ssl: client (1 byte), verify (4 bytes), sub-TLVs.
                if not value:  # aiosmtpd lets an IndexError escape here
                    raise MalformedTLV(f"TLV 0x{type_num:02X} is malformed!")
                values["SSL_CLIENT"] = value[0]
                values["SSL_VERIFY"] = int.from_bytes(value[1:5], "big")
                try:
                    cls._parse_into(
                        value[5:], base + pos + 8, partial_ok, strict, values, offsets
                    )
                except MalformedTLV:
                    values["SSL"] = False
                    if not partial_ok:
                        raise
                    # aiosmtpd: nothing after a broken SSL block is decoded.
                    return
                values["SSL"] = True
            pos += 3 + length

    @classmethod
    def from_raw(cls, raw: BytesLike, strict: bool = False) -> Optional[ProxyTLV]:
        """Decode a whole TLV block; None if empty, ``MalformedTLV`` if broken."""
        if len(raw) == 0:
            return None
        values, offsets = cls.parse(raw, partial_ok=False, strict=strict)
        return cls(values, _tlv_loc=offsets)

    @classmethod
    def name_to_num(cls, name: str) -> Optional[int]:
        """The numeric TLV type for a name of ``PP2_TYPENAME``, else None."""
        for number, known in cls.PP2_TYPENAME.items():
            if known == name:
                return number
        return None


class ProxyData:
    """A parsed PROXY header; falsy unless it is valid.

    ``version`` is 1, 2, or None when parsing failed outright.  ``family``
    and ``protocol`` are ``AF``/``PROTO`` values, ``command`` a ``V2_CMD``
    (v2 only).  Addresses are ``IPv4Address``/``IPv6Address``, or the raw
    108-byte ``bytes`` for ``AF.UNIX``.  ``rest`` holds what follows: the
    text after ``UNKNOWN`` (v1), the whole payload for unspecified v2
    family/protocol, else the undecoded TLVs (see ``tlv``).  ``whole_raw``
    is the header as received, ``tlv_start`` the offset of the TLVs in it.
    """

    __slots__ = (
        "version",
        "command",
        "family",
        "protocol",
        "src_addr",
        "dst_addr",
        "src_port",
        "dst_port",
        "rest",
        "whole_raw",
        "tlv_start",
        "error",
        "_tlv",
    )
    _COMPARED = __slots__[:-1]

    def __init__(self, *, version: Optional[int]) -> None:
        self.version = version
        # Unrecognised v2 values are kept as raw ints next to the error.
        self.command: Optional[int] = None
        self.family: Optional[int] = None
        self.protocol: Optional[int] = None
        self.src_addr: Optional[EndpointAddress] = None
        self.dst_addr: Optional[EndpointAddress] = None
        self.src_port: Optional[int] = None
        self.dst_port: Optional[int] = None
        self.rest: bytes = b""
        self.whole_raw = bytearray()
        self.tlv_start: Optional[int] = None
        self.error = ""
        self._tlv: Optional[ProxyTLV] = None

    @property
    def valid(self) -> bool:
        return not (self.error or self.version is None or self.protocol is None)

    @property
    def tlv(self) -> Optional[ProxyTLV]:
        """``rest`` decoded as TLVs; None when empty or malformed."""
        if self._tlv is None:
            try:
                self._tlv = ProxyTLV.from_raw(self.rest)
            except MalformedTLV:
                pass
        return self._tlv

    def with_error(self, error_msg: str, log_prefix: bool = True) -> ProxyData:
        """Record ``error_msg``, log it as a ``mail.debug`` warning, return self."""
        log.warning(f"PROXY error: {error_msg}" if log_prefix else error_msg)
        self.error = error_msg
        return self

    def same_attribs(self, _raises: bool = False, **kwargs: Any) -> bool:
        """True if every keyword names an attribute holding that value.

        With ``_raises``, a missing name raises ``KeyError("notfound:NAME")``
        and a different value ``ValueError("mismatch:NAME actual=.. expect=..")``.
        """
        return _same_attribs(
            lambda name: getattr(self, name, _NOT_FOUND), kwargs, _raises
        )

    def __bool__(self) -> bool:
        return self.valid

    def _fields(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._COMPARED)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProxyData) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}" for name, value in zip(self._COMPARED, self._fields())
        )
        return f"{self.__class__.__name__}({shown})"


# ---- sans-I/O parsing -------------------------------------------------------


def parse_proxy_header(
    buf: BytesLike,
) -> Optional[Tuple[ProxyData, int]]:
    """Parse the PROXY header at the start of ``buf`` (the bytes received so far).

    Returns None while more bytes are needed, else ``(proxy_data, consumed)``.
    For a valid header ``consumed`` is its exact length and ``buf[consumed:]``
    belongs to the next protocol.  For an invalid one (``not proxy_data``) it
    counts the bytes examined; the caller should close the connection.
    Errors are reported as soon as they are certain, before the rest arrives
    (aiosmtpd waits for the whole line or block); a v1 line with no LF in
    its first 108 bytes is "too long" at once, ``whole_raw`` holding what
    arrived.
    """
    probe = bytes(buf[:_SIGNATURE_PROBE])
    if probe == _V1_SIGNATURE:
        return _parse_v1(buf)
    if probe == V2_SIGNATURE[:_SIGNATURE_PROBE]:
        return _parse_v2(buf)
    if len(probe) < _SIGNATURE_PROBE and (
        _V1_SIGNATURE.startswith(probe) or V2_SIGNATURE.startswith(probe)
    ):
        return None
    return _unrecognized_signature(), len(probe)


def _unrecognized_signature() -> ProxyData:
    return ProxyData(version=None).with_error("PROXY unrecognized signature")


def _exception_data(detail: str) -> ProxyData:
    # aiosmtpd reports any exception during parsing in this form, unprefixed.
    return ProxyData(version=None).with_error(f"PROXY exception: {detail}", False)


def _parse_v1(buf: BytesLike) -> Optional[Tuple[ProxyData, int]]:
    end = buf.find(b"\n")
    if end >= 0:
        return _parse_v1_line(bytes(buf[: end + 1])), end + 1
    if len(buf) <= _V1_MAX_LENGTH:
        return None
    # No LF within the limit: the line is already too long, whatever follows.
    return _parse_v1_line(bytes(buf)), len(buf)


class _FieldMissing(Exception):
    """A v1 line ended before a required field."""


# aiosmtpd runs out of fields with deque.popleft(); the IndexError text
# becomes the error string users see, so it is reproduced verbatim.
_FIELD_MISSING_DETAIL = "pop from an empty deque"
_V1_ADDRESS_CHARS = re.compile(r"[0-9a-fA-F.:]+")
_NONZERO_DIGITS = frozenset("123456789")


def _parse_v1_line(line: bytes) -> ProxyData:
    """Parse one v1 line: ``PROXY`` up to its LF, or what a reader returned."""
    try:
        return _parse_v1_fields(line)
    except _FieldMissing:
        return _exception_data(_FIELD_MISSING_DETAIL)


def _take(fields: Deque[bytes]) -> str:
    if not fields:
        raise _FieldMissing
    return fields.popleft().decode("latin-1")


def _v1_address(text: str) -> Union[IPv4Address, IPv6Address]:
    if not _V1_ADDRESS_CHARS.fullmatch(text):
        raise ValueError(text)
    return ip_address(text)


def _v1_port(text: str) -> int:
    # aiosmtpd: no leading zero, then whatever int() accepts (so "1_000"
    # passes); the range is checked separately.
    if text != "0" and text[:1] not in _NONZERO_DIGITS:
        raise ValueError(text)
    return int(text)


def _parse_v1_fields(line: bytes) -> ProxyData:
    result = ProxyData(version=1)
    result.whole_raw = bytearray(line)
    if len(line) > _V1_MAX_LENGTH:
        return result.with_error("PROXYv1 header too long")
    if not line.endswith(b"\r\n"):
        return result.with_error("PROXYv1 malformed")
    body = line[len(_V1_SIGNATURE) : -2]
    # Split on each SP so that doubled spaces yield empty, invalid fields.
    fields = deque(body.split(b" "))
    if fields.popleft():
        return result.with_error("PROXYv1 wrong signature")
    if not fields:
        raise _FieldMissing
    proto = fields.popleft()
    if proto == b"UNKNOWN":
        result.family = AF.UNSPEC
        result.protocol = PROTO.UNSPEC
        result.rest = body[len(b" UNKNOWN") :]
        return result

    # aiosmtpd: only the last character picks the family and only the "TCP"
    # prefix is checked, so e.g. b"TCPX4" is accepted as TCP4.
    if proto.endswith(b"4"):
        result.family = AF.INET
    elif proto.endswith(b"6"):
        result.family = AF.INET6
    else:
        return result.with_error("PROXYv1 unrecognized family")
    if not proto.startswith(b"TCP"):
        return result.with_error("PROXYv1 unrecognized protocol")
    result.protocol = PROTO.STREAM

    try:
        src_addr = _v1_address(_take(fields))
        dst_addr = _v1_address(_take(fields))
    except ValueError:
        return result.with_error("PROXYv1 address malformed")
    wanted_version = 4 if result.family == AF.INET else 6
    if not src_addr.version == dst_addr.version == wanted_version:
        return result.with_error(f"PROXYv1 address not IPv{wanted_version}")
    result.src_addr = src_addr
    result.dst_addr = dst_addr

    try:
        result.src_port = _v1_port(_take(fields))
        result.dst_port = _v1_port(_take(fields))
    except ValueError:
        return result.with_error("PROXYv1 port malformed")
    if result.src_port > _MAX_PORT:
        return result.with_error("PROXYv1 src port out of bounds")
    if result.dst_port > _MAX_PORT:
        return result.with_error("PROXYv1 dst port out of bounds")

    if fields:
        return result.with_error("PROXYv1 unrecognized extraneous data")
    return result


def _v2_length(buf: BytesLike) -> int:
    """Total header length once its 16 fixed bytes are in ``buf``."""
    tail_length: int = _V2_FIXED.unpack_from(buf, len(V2_SIGNATURE))[2]
    return _V2_FIXED_LENGTH + tail_length


def _parse_v2(buf: BytesLike) -> Optional[Tuple[ProxyData, int]]:
    result = ProxyData(version=2)
    # As in aiosmtpd, whole_raw stays empty until the whole header is in.
    signature = bytes(buf[: len(V2_SIGNATURE)])
    if not V2_SIGNATURE.startswith(signature):
        return result.with_error("PROXYv2 wrong signature"), len(signature)
    if len(buf) < _V2_FIXED_LENGTH:
        return None

    ver_cmd, fam_proto, _ = _V2_FIXED.unpack_from(buf, len(V2_SIGNATURE))
    if ver_cmd & 0xF0 != 0x20:
        return result.with_error("PROXYv2 illegal version"), _V2_FIXED_LENGTH
    result.command = ver_cmd & 0x0F
    if result.command not in V2_VALID_CMDS:
        return result.with_error("PROXYv2 unsupported command"), _V2_FIXED_LENGTH
    result.command = V2_CMD(result.command)
    result.family = fam_proto >> 4
    if result.family not in V2_VALID_FAMS:
        return result.with_error("PROXYv2 unsupported family"), _V2_FIXED_LENGTH
    family = result.family = AF(result.family)
    result.protocol = fam_proto & 0x0F
    if result.protocol not in V2_VALID_PROS:
        return result.with_error("PROXYv2 unsupported protocol"), _V2_FIXED_LENGTH
    result.protocol = PROTO(result.protocol)

    total = _v2_length(buf)
    if len(buf) < total:
        return None
    result.whole_raw = bytearray(buf[:total])
    tail = bytes(buf[_V2_FIXED_LENGTH:total])
    if fam_proto not in V2_PARSE_ADDR_FAMPRO:
        result.rest = tail
        return result, total

    block = _V2_ADDRESS_BLOCKS[family]
    if len(tail) < block.size:
        return result.with_error("PROXYv2 truncated address"), total
    addresses = block.unpack_from(tail)
    if family == AF.UNIX:
        result.src_addr, result.dst_addr = addresses
    else:
        make_address = IPv4Address if family == AF.INET else IPv6Address
        result.src_addr = make_address(addresses[0])
        result.dst_addr = make_address(addresses[1])
        result.src_port, result.dst_port = addresses[2:]
    result.rest = tail[block.size :]
    if result.rest:
        result.tlv_start = _V2_FIXED_LENGTH + block.size
    return result, total


# ---- async adapter (aiosmtpd API) -------------------------------------------


async def get_proxy(reader_func: AsyncReader) -> ProxyData:
    """Read one PROXY header from ``reader_func`` and parse it.

    Reads exactly the header, never beyond it.  As in aiosmtpd, the first
    ``readexactly(5)`` may raise (e.g. ``IncompleteReadError`` on EOF); any
    later exception, such as the connection closing mid-header, is returned
    as ``ProxyData(version=None)`` with error ``"PROXY exception: ..."``.
    """
    log.debug("Waiting for PROXY signature")
    head = await reader_func.readexactly(_SIGNATURE_PROBE)
    try:
        if head == _V1_SIGNATURE:
            log.debug("PROXY version 1")
            line = head + await reader_func.readuntil(b"\n")
            return _parse_v1_line(bytes(line))
        if head == V2_SIGNATURE[:_SIGNATURE_PROBE]:
            log.debug("PROXY version 2")
            return await _read_v2(reader_func, bytearray(head))
        return _unrecognized_signature()
    except Exception as exc:
        return _exception_data(str(exc))


async def _read_v2(reader: AsyncReader, buf: bytearray) -> ProxyData:
    # Same steps and "Connection lost" messages as aiosmtpd.
    while True:
        parsed = parse_proxy_header(buf)
        if parsed is not None:
            return parsed[0]
        if len(buf) < len(V2_SIGNATURE):
            wanted, step = len(V2_SIGNATURE), "signature"
        elif len(buf) < _V2_FIXED_LENGTH:
            wanted, step = _V2_FIXED_LENGTH, "header"
        else:
            wanted, step = _v2_length(buf), "tail part"
        await _read_into(reader, buf, wanted - len(buf), step)


async def _read_into(reader: AsyncReader, buf: bytearray, count: int, step: str) -> None:
    left = count
    while left > 0:
        piece = await reader.read(left)
        left -= len(piece)
        if not piece or left < 0:
            raise ConnectionError(f"Connection lost while waiting for {step}")
        buf += piece
