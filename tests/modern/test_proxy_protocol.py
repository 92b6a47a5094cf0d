"""PROXY protocol v1/v2 parsing: sans-I/O core, async adapter, aiosmtpd parity."""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle
import random
import shutil
import struct
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Dict, List, Optional, Tuple

import pytest

from smtpd_compat.modern import proxy_protocol as pp
from smtpd_compat.modern.proxy_protocol import (
    AF,
    PROTO,
    V2_CMD,
    V2_SIGNATURE,
    MalformedTLV,
    ProxyData,
    ProxyTLV,
    UnknownTypeTLV,
    get_proxy,
    parse_proxy_header,
)

TRAILER = b"EHLO client.example\r\n"
EXCEPTION_MISSING = "PROXY exception: pop from an empty deque"
EXTRANEOUS = "PROXYv1 unrecognized extraneous data"
FULL_V6 = b":".join([b"ffff"] * 8)


# ---- header builders ----------------------------------------------------------


def v2_header(
    body: bytes = b"",
    *,
    cmd: int = V2_CMD.PROXY,
    family: int = AF.INET,
    proto: int = PROTO.STREAM,
    version: int = 2,
) -> bytes:
    fixed = bytes([(version << 4) | cmd, (family << 4) | proto])
    return V2_SIGNATURE + fixed + struct.pack("!H", len(body)) + body


def inet4_block(
    src: str = "192.0.2.10", dst: str = "198.51.100.20", sport: int = 40000, dport: int = 25
) -> bytes:
    ports = struct.pack("!HH", sport, dport)
    return IPv4Address(src).packed + IPv4Address(dst).packed + ports


def inet6_block(
    src: str = "2001:db8::1", dst: str = "2001:db8::2", sport: int = 40001, dport: int = 587
) -> bytes:
    ports = struct.pack("!HH", sport, dport)
    return IPv6Address(src).packed + IPv6Address(dst).packed + ports


UNIX_SRC = b"/run/client.sock".ljust(108, b"\0")
UNIX_DST = b"/run/smtpd.sock".ljust(108, b"\0")


def tlv(type_num: int, value: bytes) -> bytes:
    return bytes([type_num]) + struct.pack("!H", len(value)) + value


def ssl_tlv(client: int, verify: int, *subs: bytes) -> bytes:
    return tlv(0x20, bytes([client]) + struct.pack("!I", verify) + b"".join(subs))


SSL_BLOCK = ssl_tlv(
    0x07,
    0,
    tlv(0x21, b"TLSv1.3"),
    tlv(0x22, b"client.example"),
    tlv(0x23, b"TLS_AES_256_GCM_SHA384"),
    tlv(0x24, b"RSA-SHA256"),
    tlv(0x25, b"RSA2048"),
)
ALL_TLVS = (
    tlv(0x01, b"smtp")
    + tlv(0x02, b"mx.example")
    + tlv(0x03, b"\x01\x02\x03\x04")
    + tlv(0x04, b"")
    + tlv(0x05, b"conn-0001")
    + SSL_BLOCK
    + tlv(0x30, b"netns0")
    + tlv(0xE0, b"private")
)


# ---- corpus: (header, expected error or "" when valid) --------------------------

V1_VALID: Dict[str, bytes] = {
    "tcp4": b"PROXY TCP4 192.0.2.10 198.51.100.20 40000 25\r\n",
    "tcp4_max": b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
    "tcp4_port0": b"PROXY TCP4 10.0.0.1 10.0.0.2 0 0\r\n",
    "tcp6": b"PROXY TCP6 2001:db8::1 2001:db8::2 40001 587\r\n",
    "tcp6_longest": b"PROXY TCP6 %s %s 65535 65535\r\n" % (FULL_V6, FULL_V6),
    "tcp6_mapped": b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n",
    "unknown": b"PROXY UNKNOWN\r\n",
    "unknown_rest": b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    "unknown_107": b"PROXY UNKNOWN " + b"x" * 91 + b"\r\n",
    # Lenient spots of aiosmtpd 1.4.6, mirrored on purpose:
    "quirk_tcpx4": b"PROXY TCPX4 1.2.3.4 5.6.7.8 1 2\r\n",
    "quirk_tcp46": b"PROXY TCP46 ::1 ::2 1 2\r\n",
    "quirk_port_underscore": b"PROXY TCP4 1.2.3.4 5.6.7.8 1_000 2\r\n",
    "quirk_port_tab": b"PROXY TCP4 1.2.3.4 5.6.7.8 1\t 2\r\n",
}

V1_INVALID: Dict[str, Tuple[bytes, str]] = {
    "lf_only": (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "PROXYv1 malformed"),
    "too_long_108": (b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n", "PROXYv1 header too long"),
    "too_long_300": (b"PROXY TCP4 " + b"1" * 287 + b"\r\n", "PROXYv1 header too long"),
    "wrong_signature": (b"PROXYX TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXYv1 wrong signature"),
    "no_fields": (b"PROXY\r\n", EXCEPTION_MISSING),
    "proto_only": (b"PROXY TCP4\r\n", EXCEPTION_MISSING),
    "missing_dst_addr": (b"PROXY TCP4 1.2.3.4\r\n", EXCEPTION_MISSING),
    "missing_ports": (b"PROXY TCP4 1.2.3.4 5.6.7.8\r\n", EXCEPTION_MISSING),
    "missing_dst_port": (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", EXCEPTION_MISSING),
    "bad_src_before_missing_dst": (b"PROXY TCP4 1.2.3.x\r\n", "PROXYv1 address malformed"),
    "double_space": (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXYv1 unrecognized family"),
    "family_tcp5": (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "PROXYv1 unrecognized family"),
    "family_lowercase": (b"PROXY unknown\r\n", "PROXYv1 unrecognized family"),
    "udp4": (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXYv1 unrecognized protocol"),
    "addr_bad_char": (b"PROXY TCP4 1.2.3.4/8 5.6.7.8 1 2\r\n", "PROXYv1 address malformed"),
    "addr_octet_256": (b"PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n", "PROXYv1 address malformed"),
    "addr_leading_zero": (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "PROXYv1 address malformed"),
    "addr_scope_id": (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "PROXYv1 address malformed"),
    "addr_cr_inside": (b"PROXY TCP4 1.2.3.4\r 5.6.7.8 1 2\r\n", "PROXYv1 address malformed"),
    "v6_in_tcp4": (b"PROXY TCP4 ::1 ::2 1 2\r\n", "PROXYv1 address not IPv4"),
    "mixed_in_tcp4": (b"PROXY TCP4 1.2.3.4 ::2 1 2\r\n", "PROXYv1 address not IPv4"),
    "v4_in_tcp6": (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "PROXYv1 address not IPv6"),
    "mixed_in_tcp6": (b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n", "PROXYv1 address not IPv6"),
    "port_leading_zero": (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "PROXYv1 port malformed"),
    "port_00": (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", "PROXYv1 port malformed"),
    "port_name": (b"PROXY TCP4 1.2.3.4 5.6.7.8 smtp 2\r\n", "PROXYv1 port malformed"),
    "port_negative": (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "PROXYv1 port malformed"),
    "port_suffix": (b"PROXY TCP4 1.2.3.4 5.6.7.8 25x 2\r\n", "PROXYv1 port malformed"),
    "src_port_oob": (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 25\r\n", "PROXYv1 src port out of bounds"),
    "src_port_6_digits": (
        b"PROXY TCP4 1.2.3.4 5.6.7.8 123456 25\r\n",
        "PROXYv1 src port out of bounds",
    ),
    "dst_port_oob": (b"PROXY TCP4 1.2.3.4 5.6.7.8 25 99999\r\n", "PROXYv1 dst port out of bounds"),
    "extraneous": (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", EXTRANEOUS),
    "trailing_space": (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", EXTRANEOUS),
}

V2_VALID: Dict[str, bytes] = {
    "local_unspec": v2_header(cmd=V2_CMD.LOCAL, family=AF.UNSPEC, proto=PROTO.UNSPEC),
    "local_inet": v2_header(inet4_block(), cmd=V2_CMD.LOCAL),
    "inet_stream": v2_header(inet4_block()),
    "inet_dgram": v2_header(inet4_block(), proto=PROTO.DGRAM),
    "inet6_stream": v2_header(inet6_block(), family=AF.INET6),
    "inet6_dgram": v2_header(inet6_block(), family=AF.INET6, proto=PROTO.DGRAM),
    "unix_stream": v2_header(UNIX_SRC + UNIX_DST, family=AF.UNIX),
    "unix_dgram": v2_header(UNIX_SRC + UNIX_DST, family=AF.UNIX, proto=PROTO.DGRAM),
    "unspec_family_payload": v2_header(b"ignored payload", family=AF.UNSPEC),
    "inet_unspec_proto": v2_header(inet4_block(), proto=PROTO.UNSPEC),
    "inet_all_tlvs": v2_header(inet4_block() + ALL_TLVS),
    "inet6_ssl": v2_header(inet6_block() + SSL_BLOCK, family=AF.INET6),
    "unix_tlv": v2_header(UNIX_SRC + UNIX_DST + tlv(0x05, b"u1"), family=AF.UNIX),
    "inet_long_address_block": v2_header(inet4_block() + b"\0" * 4),
    "inet_tlv_malformed": v2_header(inet4_block() + b"\x02\x00\x10abc"),
    "inet_tlv_ssl_broken_sub": v2_header(inet4_block() + ssl_tlv(1, 2, b"\x21\x00\x09short")),
    "inet_big_tlv": v2_header(inet4_block() + tlv(0xE1, bytes(range(256)) * 8)),
}

V2_INVALID: Dict[str, Tuple[bytes, str]] = {
    "wrong_signature_byte6": (
        V2_SIGNATURE[:5] + b"X" + v2_header(inet4_block())[6:],
        "PROXYv2 wrong signature",
    ),
    "wrong_signature_byte12": (
        V2_SIGNATURE[:11] + b"X" + v2_header(inet4_block())[12:],
        "PROXYv2 wrong signature",
    ),
    "version_1": (v2_header(inet4_block(), version=1), "PROXYv2 illegal version"),
    "version_3": (v2_header(inet4_block(), version=3), "PROXYv2 illegal version"),
    "command_2": (v2_header(inet4_block(), cmd=2), "PROXYv2 unsupported command"),
    "command_15": (v2_header(inet4_block(), cmd=15), "PROXYv2 unsupported command"),
    "family_4": (v2_header(inet4_block(), family=4), "PROXYv2 unsupported family"),
    "protocol_3": (v2_header(inet4_block(), proto=3), "PROXYv2 unsupported protocol"),
    "truncated_inet": (v2_header(inet4_block()[:11]), "PROXYv2 truncated address"),
    "truncated_inet6": (v2_header(inet4_block(), family=AF.INET6), "PROXYv2 truncated address"),
    "truncated_unix": (v2_header(UNIX_SRC, family=AF.UNIX), "PROXYv2 truncated address"),
}

NOT_PROXY: Dict[str, bytes] = {
    "smtp": b"EHLO client.example\r\n",
    "lowercase": b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "proxi": b"PROXI TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "crlf": b"\r\n\r\nX\r\n",
}

VALID: Dict[str, bytes] = {**V1_VALID, **V2_VALID}
INVALID: Dict[str, Tuple[bytes, str]] = {
    **V1_INVALID,
    **V2_INVALID,
    **{name: (data, "PROXY unrecognized signature") for name, data in NOT_PROXY.items()},
}
CORPUS: Dict[str, bytes] = {**VALID, **{name: data for name, (data, _) in INVALID.items()}}

FIELDS = (
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
    "valid",
)


def fields_of(data: Any) -> Dict[str, Any]:
    return {name: getattr(data, name) for name in FIELDS}


def parse_complete(header: bytes) -> Tuple[ProxyData, int]:
    parsed = parse_proxy_header(header + TRAILER)
    assert parsed is not None
    return parsed


# ---- v1 -------------------------------------------------------------------------


def test_v1_tcp4_fields_and_consumed_length() -> None:
    header = V1_VALID["tcp4"]
    data, consumed = parse_complete(header)
    assert consumed == len(header)
    assert data.valid and bool(data)
    assert data.same_attribs(
        _raises=True,
        version=1,
        command=None,
        family=AF.INET,
        protocol=PROTO.STREAM,
        src_addr=IPv4Address("192.0.2.10"),
        dst_addr=IPv4Address("198.51.100.20"),
        src_port=40000,
        dst_port=25,
        rest=b"",
        tlv_start=None,
        error="",
    )
    assert data.whole_raw == bytearray(header)
    assert isinstance(data.whole_raw, bytearray)


def test_v1_tcp6_fields() -> None:
    data, _ = parse_complete(V1_VALID["tcp6"])
    assert data.family is AF.INET6 and data.protocol is PROTO.STREAM
    assert data.src_addr == IPv6Address("2001:db8::1")
    assert data.dst_addr == IPv6Address("2001:db8::2")
    assert (data.src_port, data.dst_port) == (40001, 587)


@pytest.mark.parametrize(
    "header, rest",
    [
        (b"PROXY UNKNOWN\r\n", b""),
        (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", b" ffff::1 ffff::2 1 2"),
        (b"PROXY UNKNOWN \r\n", b" "),
    ],
)
def test_v1_unknown_keeps_rest_verbatim(header: bytes, rest: bytes) -> None:
    data, consumed = parse_complete(header)
    assert data.valid and consumed == len(header)
    assert (data.family, data.protocol, data.rest) == (AF.UNSPEC, PROTO.UNSPEC, rest)
    assert data.src_addr is None and data.src_port is None


def test_v1_header_of_107_bytes_is_the_longest_accepted() -> None:
    assert len(V1_VALID["unknown_107"]) == 107
    assert parse_complete(V1_VALID["unknown_107"])[0].valid
    too_long, error = V1_INVALID["too_long_108"]
    assert len(too_long) == 108
    assert parse_complete(too_long)[0].error == error


def test_v1_too_long_is_reported_without_waiting_for_the_line_end() -> None:
    assert parse_proxy_header(b"PROXY UNKNOWN " + b"x" * 93) is None  # 107 bytes, no LF
    parsed = parse_proxy_header(b"PROXY UNKNOWN " + b"x" * 94)
    assert parsed is not None
    assert parsed[0].error == "PROXYv1 header too long"
    assert parsed[1] == 108


@pytest.mark.parametrize("name", sorted(V1_INVALID))
def test_v1_invalid(name: str, caplog: pytest.LogCaptureFixture) -> None:
    header, error = V1_INVALID[name]
    caplog.set_level(logging.WARNING, logger="mail.debug")
    data, consumed = parse_complete(header)
    assert not data.valid and not data
    assert data.error == error
    assert consumed == len(header)
    if error == EXCEPTION_MISSING:
        # aiosmtpd reports a leaked exception: no version, bare log message.
        assert data.version is None and data.whole_raw == bytearray()
        assert caplog.record_tuples == [("mail.debug", logging.WARNING, error)]
    else:
        assert data.version == 1 and data.whole_raw == bytearray(header)
        expected_log = ("mail.debug", logging.WARNING, f"PROXY error: {error}")
        assert caplog.record_tuples == [expected_log]


def test_v1_fields_set_before_the_failing_check_are_kept() -> None:
    data, _ = parse_complete(V1_INVALID["dst_port_oob"][0])
    assert (data.src_addr, data.src_port, data.dst_port) == (IPv4Address("1.2.3.4"), 25, 99999)
    data, _ = parse_complete(V1_INVALID["v6_in_tcp4"][0])
    assert (data.family, data.protocol, data.src_addr) == (AF.INET, PROTO.STREAM, None)
    data, _ = parse_complete(V1_INVALID["udp4"][0])
    assert (data.family, data.protocol) == (AF.INET, None)


def test_v1_quirks_mirror_aiosmtpd() -> None:
    assert parse_complete(V1_VALID["quirk_tcpx4"])[0].family is AF.INET
    assert parse_complete(V1_VALID["quirk_tcp46"])[0].family is AF.INET6
    assert parse_complete(V1_VALID["quirk_port_underscore"])[0].src_port == 1000
    assert parse_complete(V1_VALID["quirk_port_tab"])[0].src_port == 1


# ---- v2 -------------------------------------------------------------------------


def test_v2_inet_stream() -> None:
    header = V2_VALID["inet_stream"]
    data, consumed = parse_complete(header)
    assert consumed == len(header) == 16 + 12
    assert data.same_attribs(
        _raises=True,
        version=2,
        command=V2_CMD.PROXY,
        family=AF.INET,
        protocol=PROTO.STREAM,
        src_addr=IPv4Address("192.0.2.10"),
        dst_addr=IPv4Address("198.51.100.20"),
        src_port=40000,
        dst_port=25,
        rest=b"",
        tlv_start=None,
        error="",
    )
    assert data.command is V2_CMD.PROXY and data.family is AF.INET
    assert data.whole_raw == bytearray(header)
    assert data.tlv is None


def test_v2_local_unspec_is_valid_and_empty() -> None:
    data, consumed = parse_complete(V2_VALID["local_unspec"])
    assert consumed == 16 and data.valid
    assert (data.command, data.family, data.protocol) == (V2_CMD.LOCAL, AF.UNSPEC, PROTO.UNSPEC)
    assert data.src_addr is None and data.rest == b""


def test_v2_local_command_still_parses_addresses() -> None:
    data, _ = parse_complete(V2_VALID["local_inet"])
    assert data.command is V2_CMD.LOCAL and data.src_addr == IPv4Address("192.0.2.10")


@pytest.mark.parametrize("proto", [PROTO.STREAM, PROTO.DGRAM])
def test_v2_inet6(proto: PROTO) -> None:
    data, _ = parse_complete(v2_header(inet6_block(), family=AF.INET6, proto=proto))
    assert data.valid and data.protocol is proto
    assert data.src_addr == IPv6Address("2001:db8::1")
    assert data.dst_addr == IPv6Address("2001:db8::2")
    assert (data.src_port, data.dst_port) == (40001, 587)


@pytest.mark.parametrize("proto", [PROTO.STREAM, PROTO.DGRAM])
def test_v2_unix_keeps_raw_108_byte_paths(proto: PROTO) -> None:
    data, consumed = parse_complete(v2_header(UNIX_SRC + UNIX_DST, family=AF.UNIX, proto=proto))
    assert consumed == 16 + 216 and data.valid
    assert (data.src_addr, data.dst_addr) == (UNIX_SRC, UNIX_DST)
    assert data.src_port is None and data.dst_port is None


def test_v2_unspecified_family_or_protocol_keeps_payload_in_rest() -> None:
    data, _ = parse_complete(V2_VALID["unspec_family_payload"])
    assert data.valid and data.rest == b"ignored payload" and data.tlv_start is None
    data, _ = parse_complete(V2_VALID["inet_unspec_proto"])
    assert data.valid and data.rest == inet4_block() and data.src_addr is None


def test_v2_tlvs_decoded_with_offsets_into_whole_raw() -> None:
    data, _ = parse_complete(V2_VALID["inet_all_tlvs"])
    assert data.rest == ALL_TLVS and data.tlv_start == 28
    tlvs = data.tlv
    assert tlvs is not None
    assert tlvs == {
        "ALPN": b"smtp",
        "AUTHORITY": b"mx.example",
        "CRC32C": b"\x01\x02\x03\x04",
        "NOOP": b"",
        "UNIQUE_ID": b"conn-0001",
        "SSL_CLIENT": 0x07,
        "SSL_VERIFY": 0,
        "SSL_VERSION": b"TLSv1.3",
        "SSL_CN": b"client.example",
        "SSL_CIPHER": b"TLS_AES_256_GCM_SHA384",
        "SSL_SIG_ALG": b"RSA-SHA256",
        "SSL_KEY_ALG": b"RSA2048",
        "SSL": True,
        "NETNS": b"netns0",
        "xE0": b"private",
    }
    # Every offset, sub-TLVs included, points at that vector's type byte.
    for name, offset in tlvs.tlv_loc.items():
        type_num = int(name[1:], 16) if name.startswith("x") else ProxyTLV.name_to_num(name)
        assert data.whole_raw[data.tlv_start + offset] == type_num, name
    assert data.tlv is tlvs  # built once


def test_v2_malformed_tlvs_do_not_invalidate_the_header() -> None:
    data, _ = parse_complete(V2_VALID["inet_tlv_malformed"])
    assert data.valid and data.tlv is None
    data, _ = parse_complete(V2_VALID["inet_tlv_ssl_broken_sub"])
    assert data.valid and data.tlv is None
    assert ProxyTLV.parse(data.rest)[0]["SSL"] is False


@pytest.mark.parametrize("name", sorted(V2_INVALID))
def test_v2_invalid(name: str, caplog: pytest.LogCaptureFixture) -> None:
    header, error = V2_INVALID[name]
    caplog.set_level(logging.WARNING, logger="mail.debug")
    data, _ = parse_complete(header)
    assert not data and data.version == 2 and data.error == error
    assert caplog.record_tuples == [("mail.debug", logging.WARNING, f"PROXY error: {error}")]
    if error == "PROXYv2 truncated address":
        assert data.whole_raw == bytearray(header)
    else:  # like aiosmtpd, recorded only once the whole header is in
        assert data.whole_raw == bytearray()


def test_v2_header_errors_are_reported_before_the_payload_arrives() -> None:
    header, error = V2_INVALID["family_4"]
    parsed = parse_proxy_header(header[:16])
    assert parsed is not None and parsed[0].error == error and parsed[1] == 16
    assert parsed[0].command is V2_CMD.PROXY and parsed[0].family == 4
    parsed = parse_proxy_header(V2_SIGNATURE[:5] + b"X")
    assert parsed is not None and parsed[0].error == "PROXYv2 wrong signature"


# ---- signature dispatch ------------------------------------------------------------


def test_unrecognized_signature_is_detected_from_the_first_byte() -> None:
    assert parse_proxy_header(b"") is None
    assert parse_proxy_header(b"PROX") is None
    assert parse_proxy_header(b"\r\n\r") is None
    for buf in (b"E", b"PRO\r", b"proxy"):
        parsed = parse_proxy_header(buf)
        assert parsed is not None
        data, consumed = parsed
        assert data.version is None and data.error == "PROXY unrecognized signature"
        assert consumed == len(buf)


def test_accepts_a_bytearray_buffer() -> None:
    for header in (V1_VALID["tcp6"], V2_VALID["inet_all_tlvs"]):
        parsed = parse_proxy_header(bytearray(header + TRAILER))
        assert parsed is not None and parsed[1] == len(header)
        assert parsed[0] == parse_complete(header)[0]
        assert isinstance(parsed[0].rest, bytes)


# ---- sans-I/O: split points and chunked arrival ---------------------------------


@pytest.mark.parametrize("name", sorted(VALID))
def test_every_strict_prefix_of_a_valid_header_needs_more(name: str) -> None:
    header = VALID[name]
    for cut in range(len(header)):
        assert parse_proxy_header(header[:cut]) is None, cut
    data, consumed = parse_complete(header)
    assert data.valid and consumed == len(header)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_prefixes_of_an_invalid_header_never_disagree(name: str) -> None:
    header, error = INVALID[name]
    for cut in range(len(header) + 1):
        parsed = parse_proxy_header(header[:cut])
        if parsed is not None:
            assert parsed[0].error == error and not parsed[0], cut
            assert parsed[1] <= cut


def test_chunked_arrival_like_data_received() -> None:
    rng = random.Random(1234)
    for name, header in sorted(VALID.items()):
        stream = header + TRAILER
        for _ in range(5):
            buf = b""
            pos = 0
            parsed = None
            while parsed is None:
                step = rng.randint(1, 9)
                buf += stream[pos : pos + step]
                pos += step
                parsed = parse_proxy_header(buf)
            data, consumed = parsed
            assert data.valid, name
            assert buf[consumed:] + stream[pos:] == TRAILER


def test_parser_never_raises_on_mutated_headers() -> None:
    rng = random.Random(99)
    seeds = list(CORPUS.values())
    for _ in range(3000):
        buf = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        buf = buf[: rng.randint(0, len(buf))] + bytes(rng.randint(0, 3))
        parsed = parse_proxy_header(bytes(buf))
        if parsed is not None:
            data, consumed = parsed
            assert consumed <= len(buf)
            assert data.valid == (not data.error and data.version is not None)
            data.tlv  # must not raise either


# ---- ProxyData ------------------------------------------------------------------


def test_proxydata_validity_rules() -> None:
    data = ProxyData(version=1)
    assert (data.valid, bool(data)) == (False, False)  # no protocol yet
    data.protocol = PROTO.UNSPEC
    assert (data.valid, bool(data)) == (True, True)
    data.error = "boom"
    assert (data.valid, bool(data)) == (False, False)
    assert not ProxyData(version=None)
    with pytest.raises(TypeError):
        ProxyData(1)  # type: ignore[call-arg]  # version is keyword-only


def test_proxydata_same_attribs() -> None:
    data = ProxyData(version=1)
    data.protocol = PROTO.UNSPEC
    assert data.same_attribs(version=1, protocol=PROTO.UNSPEC, src_addr=None)
    assert not data.same_attribs(protocol=PROTO.STREAM)
    assert not data.same_attribs(no_such_attribute=None)
    with pytest.raises(ValueError, match=r"^mismatch:protocol actual=<PROTO.UNSPEC: 0> expect="):
        data.same_attribs(_raises=True, protocol=PROTO.STREAM)
    with pytest.raises(KeyError, match="notfound:no_such_attribute"):
        data.same_attribs(_raises=True, no_such_attribute=1)


def test_proxydata_with_error_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mail.debug")
    data = ProxyData(version=2)
    assert data.with_error("first") is data and data.error == "first"
    data.with_error("second", log_prefix=False)
    assert caplog.record_tuples == [
        ("mail.debug", logging.WARNING, "PROXY error: first"),
        ("mail.debug", logging.WARNING, "second"),
    ]


def test_proxydata_equality_repr_and_slots() -> None:
    one, _ = parse_complete(V2_VALID["inet_all_tlvs"])
    two, _ = parse_complete(V2_VALID["inet_all_tlvs"])
    assert one.tlv is not None
    assert one == two  # the lazily built tlv cache is not compared
    assert one != parse_complete(V2_VALID["inet_stream"])[0]
    assert one != "not proxy data"
    with pytest.raises(TypeError):
        hash(one)
    with pytest.raises(AttributeError):
        one.unexpected = 1  # type: ignore[attr-defined]
    assert repr(one).startswith(
        "ProxyData(version=2, command=<V2_CMD.PROXY: 1>, family=<AF.INET: 1>"
    )


def test_proxydata_tlv_of_fake_rest_is_none() -> None:
    data = ProxyData(version=2)
    assert data.tlv is None
    data.rest = b"not a tlv block"
    assert data.tlv is None


# ---- ProxyTLV -------------------------------------------------------------------


def test_tlv_attribute_access_and_same_attribs() -> None:
    tlvs = ProxyTLV.from_raw(ALL_TLVS)
    assert tlvs is not None
    assert tlvs.AUTHORITY == b"mx.example" and tlvs.SSL is True
    assert tlvs.missing_name is None
    assert tlvs.same_attribs(ALPN=b"smtp", SSL_VERSION=b"TLSv1.3")
    assert not tlvs.same_attribs(SSL=False)
    assert not tlvs.same_attribs(nothing=None)
    with pytest.raises(ValueError, match="mismatch:ALPN"):
        tlvs.same_attribs(_raises=True, ALPN=b"h2")
    with pytest.raises(KeyError, match="notfound:nothing"):
        tlvs.same_attribs(_raises=True, nothing=b"")


def test_tlv_copy_and_pickle_keep_contents() -> None:
    tlvs = ProxyTLV.from_raw(ALL_TLVS)
    assert tlvs is not None
    for clone in (copy.copy(tlvs), copy.deepcopy(tlvs), pickle.loads(pickle.dumps(tlvs))):
        assert clone == tlvs and clone.tlv_loc == tlvs.tlv_loc
    with pytest.raises(AttributeError):
        tlvs.__no_such_dunder__  # noqa: B018


def test_tlv_equality_ignores_order_and_locations() -> None:
    first = ProxyTLV.from_raw(tlv(0x02, b"a") + tlv(0x05, b"b"))
    second = ProxyTLV.from_raw(tlv(0x05, b"b") + tlv(0x02, b"a"))
    assert first is not None and second is not None
    assert first == second and first.tlv_loc != second.tlv_loc


def test_tlv_from_raw_empty_and_malformed() -> None:
    assert ProxyTLV.from_raw(b"") is None
    with pytest.raises(MalformedTLV, match=r"^TLV 0x02 is malformed!$"):
        ProxyTLV.from_raw(b"\x02\x00\x05abc")
    # aiosmtpd would leak an IndexError for an empty SSL vector.
    with pytest.raises(MalformedTLV, match=r"^TLV 0x20 is malformed!$"):
        ProxyTLV.from_raw(tlv(0x20, b""))


def test_tlv_partial_parse_keeps_what_came_before() -> None:
    values, offsets = ProxyTLV.parse(tlv(0x03, b"1234") + b"\x02\x00\x09trunc")
    assert values == {"CRC32C": b"1234"} and offsets == {"CRC32C": 0}
    with pytest.raises(MalformedTLV):
        ProxyTLV.parse(tlv(0x03, b"1234") + b"\x02\x00\x09trunc", partial_ok=False)


def test_tlv_broken_ssl_block() -> None:
    broken = ssl_tlv(1, 2, tlv(0x21, b"TLSv1.2"), b"\x22\x00\x09cut") + tlv(0x02, b"after")
    values, _ = ProxyTLV.parse(broken)
    assert values == {"SSL_CLIENT": 1, "SSL_VERIFY": 2, "SSL_VERSION": b"TLSv1.2", "SSL": False}
    with pytest.raises(MalformedTLV):
        ProxyTLV.parse(broken, partial_ok=False)


def test_tlv_unknown_types_strict_and_lenient() -> None:
    values, _ = ProxyTLV.parse(tlv(0xFF, b"yeah"))
    assert values == {"xFF": b"yeah"}
    with pytest.raises(UnknownTypeTLV) as raised:
        ProxyTLV.parse(tlv(0xFF, b"yeah"), strict=True)
    assert isinstance(raised.value, KeyError) and raised.value.args == ("xFF",)
    with pytest.raises(UnknownTypeTLV):
        ProxyTLV.from_raw(ssl_tlv(0, 0, tlv(0x2F, b"")), strict=True)


def test_tlv_name_to_num_round_trips() -> None:
    for number, name in ProxyTLV.PP2_TYPENAME.items():
        assert ProxyTLV.name_to_num(name) == number
    assert ProxyTLV.name_to_num("NOT_A_TYPE") is None
    assert isinstance(MalformedTLV("x"), RuntimeError)


def test_module_constants() -> None:
    assert V2_SIGNATURE == b"\r\n\r\n\x00\r\nQUIT\n"
    assert pp.V2_VALID_CMDS == {0, 1} and pp.V2_VALID_FAMS == {0, 1, 2, 3}
    assert pp.V2_VALID_PROS == {0, 1, 2}
    assert pp.V2_PARSE_ADDR_FAMPRO == {0x11, 0x12, 0x21, 0x22, 0x31, 0x32}
    for name in pp.__all__:
        assert hasattr(pp, name), name


# ---- get_proxy (async adapter) -----------------------------------------------------


class LooseReader:
    """A reader that returns short data at the end instead of raising (like
    the mock reader in aiosmtpd's own tests)."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)

    async def read(self, n: int = -1) -> bytes:
        n = len(self.data) if n < 0 else n
        piece = bytes(self.data[:n])
        del self.data[:n]
        return piece

    async def readexactly(self, n: int) -> bytes:
        return await self.read(n)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        end = self.data.find(separator)
        return await self.read(len(self.data) if end < 0 else end + len(separator))


async def via_stream(getter: Any, data: bytes) -> Tuple[Any, bytes]:
    """Run ``getter`` on an asyncio.StreamReader holding ``data`` then EOF.

    Returns (result or raised exception, bytes left unread)."""
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    try:
        result = await getter(reader)
    except Exception as exc:  # noqa: BLE001 - compared by the caller
        result = exc
    return result, await reader.read()


def test_get_proxy_reads_exactly_the_header() -> None:
    async def main() -> None:
        for name, header in sorted(VALID.items()):
            data, left = await via_stream(get_proxy, header + TRAILER)
            assert isinstance(data, ProxyData) and data.valid, name
            assert data == parse_complete(header)[0]
            assert left == TRAILER, name

    asyncio.run(main())


def test_get_proxy_invalid_headers_match_the_sans_io_result() -> None:
    async def main() -> None:
        for name, (header, error) in sorted(INVALID.items()):
            data, _ = await via_stream(get_proxy, header + TRAILER)
            assert isinstance(data, ProxyData) and data.error == error, name

    asyncio.run(main())


def test_get_proxy_connection_lost(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mail.debug")
    header = V2_VALID["inet_all_tlvs"]

    async def main() -> None:
        for cut, step in ((8, "signature"), (14, "header"), (20, "tail part")):
            data, _ = await via_stream(get_proxy, header[:cut])
            message = f"PROXY exception: Connection lost while waiting for {step}"
            assert data.version is None and data.error == message
        # v1 without its LF: the reader's own error is wrapped.
        data, _ = await via_stream(get_proxy, b"PROXY TCP4 1.2")
        assert data.version is None
        incomplete = asyncio.IncompleteReadError(b" TCP4 1.2", None)
        assert data.error == f"PROXY exception: {incomplete}"
        # EOF before 5 bytes escapes, exactly as aiosmtpd's readexactly(5) does.
        error, _ = await via_stream(get_proxy, b"PRO")
        assert isinstance(error, asyncio.IncompleteReadError)
        # A loose reader hands over short data instead.
        data = await get_proxy(LooseReader(V1_VALID["tcp4"][:20]))
        assert data.error == "PROXYv1 malformed"
        data = await get_proxy(LooseReader(b"PRO"))
        assert data.error == "PROXY unrecognized signature"

    asyncio.run(main())
    expected_log = ("mail.debug", logging.WARNING, "PROXY error: PROXYv1 malformed")
    assert expected_log in caplog.record_tuples


# ---- real sockets ---------------------------------------------------------------


def send_in_pieces_and_collect(header: bytes) -> Tuple[ProxyData, bytes, ProxyData, bytes]:
    """Send ``header`` + TRAILER over loopback in small pieces to two servers:
    one using get_proxy on a StreamReader, one an asyncio.Protocol calling
    parse_proxy_header from data_received (how the SMTP protocol uses it)."""

    async def main() -> Tuple[ProxyData, bytes, ProxyData, bytes]:
        loop = asyncio.get_running_loop()
        streamed: asyncio.Future[Tuple[ProxyData, bytes]] = loop.create_future()
        received: asyncio.Future[Tuple[ProxyData, bytes]] = loop.create_future()

        async def stream_server(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            data = await get_proxy(reader)
            streamed.set_result((data, await reader.readline()))
            writer.close()

        class HeaderProtocol(asyncio.Protocol):
            def __init__(self) -> None:
                self.buf = b""
                self.header: Optional[ProxyData] = None

            def data_received(self, chunk: bytes) -> None:
                self.buf += chunk
                if self.header is None:
                    parsed = parse_proxy_header(self.buf)
                    if parsed is None:
                        return
                    self.header, consumed = parsed
                    self.buf = self.buf[consumed:]
                if self.buf.endswith(b"\r\n") and not received.done():
                    received.set_result((self.header, self.buf))

        servers = [
            await asyncio.start_server(stream_server, "127.0.0.1", 0),
            await loop.create_server(HeaderProtocol, "127.0.0.1", 0),
        ]
        stream = header + TRAILER
        for server, outcome in zip(servers, (streamed, received)):
            port = server.sockets[0].getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for start in range(0, len(stream), 7):
                writer.write(stream[start : start + 7])
                await writer.drain()
                await asyncio.sleep(0.001)
            await asyncio.wait_for(outcome, 5)
            writer.close()
        for server in servers:
            server.close()
            await server.wait_closed()
        return (*streamed.result(), *received.result())

    return asyncio.run(main())


@pytest.mark.parametrize("name", ["tcp6", "inet_all_tlvs", "unix_stream"])
def test_over_loopback_socket(name: str) -> None:
    header = VALID[name]
    streamed, after_stream, received, after_received = send_in_pieces_and_collect(header)
    expected = parse_complete(header)[0]
    assert streamed == expected and received == expected
    assert after_stream == TRAILER and after_received == TRAILER


SWAKS = shutil.which("swaks")


@pytest.mark.skipif(SWAKS is None, reason="swaks not installed")
def swaks_proxy_options(version: str, family: str, src: str, dst: str) -> List[str]:
    return [
        "--proxy-version", version, "--proxy-family", family,
        "--proxy-source", src, "--proxy-source-port", "4242",
        "--proxy-dest", dst, "--proxy-dest-port", "587",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "options, expected",
    [
        (
            swaks_proxy_options("1", "TCP4", "192.0.2.7", "198.51.100.9"),
            dict(version=1, family=AF.INET, src_addr=IPv4Address("192.0.2.7"), src_port=4242),
        ),
        (
            swaks_proxy_options("2", "AF_INET6", "2001:db8::7", "2001:db8::9"),
            dict(
                version=2,
                command=V2_CMD.PROXY,
                family=AF.INET6,
                protocol=PROTO.STREAM,
                dst_addr=IPv6Address("2001:db8::9"),
                dst_port=587,
            ),
        ),
    ],
    ids=["v1", "v2"],
)
def test_swaks_proxy_header(options: List[str], expected: Dict[str, Any]) -> None:
    assert SWAKS is not None

    async def main() -> Tuple[ProxyData, bytes, int]:
        got: List[Tuple[ProxyData, bytes]] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await get_proxy(reader)
            writer.write(b"220 test ESMTP\r\n")
            got.append((data, await reader.readline()))
            writer.write(b"221 bye\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            SWAKS, "--server", f"127.0.0.1:{port}", "--quit-after", "CONNECT",
            "--timeout", "5", *options,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        code = await asyncio.wait_for(process.wait(), 20)
        server.close()
        await server.wait_closed()
        return (*got[0], code)

    data, next_line, code = asyncio.run(main())
    assert code == 0
    assert data.valid and data.same_attribs(_raises=True, **expected)
    assert next_line == b"QUIT\r\n"


# ---- side by side with aiosmtpd 1.4.6 -----------------------------------------------

SSL_SUBTYPES = {"SSL_VERSION", "SSL_CN", "SSL_CIPHER", "SSL_SIG_ALG", "SSL_KEY_ALG"}


class WarningCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def take(self) -> List[str]:
        taken, self.messages = self.messages, []
        return taken


@pytest.fixture
def warnings_of_mail_debug() -> Any:
    capture = WarningCapture()
    logger = logging.getLogger("mail.debug")
    logger.addHandler(capture)
    yield capture
    logger.removeHandler(capture)


def tlv_view(data: Any) -> Any:
    """The decoded TLVs, or the name of the exception decoding raised."""
    try:
        tlvs = data.tlv
    except Exception as exc:  # noqa: BLE001 - aiosmtpd leaks IndexError
        return type(exc).__name__
    if tlvs is None:
        return None
    top_level = {k: v for k, v in tlvs.tlv_loc.items() if k not in SSL_SUBTYPES}
    return dict(tlvs), top_level


def assert_same_outcome(name: str, ours: Any, theirs: Any) -> None:
    if isinstance(theirs, BaseException):
        assert type(ours) is type(theirs) and str(ours) == str(theirs), name
        return
    assert fields_of(ours) == fields_of(theirs), name
    their_tlv = tlv_view(theirs)
    if their_tlv == "IndexError":  # aiosmtpd bug on an empty SSL vector
        assert ours.tlv is None, name
    else:
        assert tlv_view(ours) == their_tlv, name


def aiosmtpd_corpus() -> Dict[str, bytes]:
    corpus = dict(CORPUS)
    corpus["inet_tlv_empty_ssl"] = v2_header(inet4_block() + tlv(0x20, b""))
    corpus["v1_no_lf_at_eof"] = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2"
    return corpus


def test_same_results_as_aiosmtpd(warnings_of_mail_debug: WarningCapture) -> None:
    theirs_module = pytest.importorskip("aiosmtpd.proxy_protocol")

    async def main() -> None:
        for name, header in sorted(aiosmtpd_corpus().items()):
            stream = header + TRAILER
            theirs, their_left = await via_stream(theirs_module.get_proxy, stream)
            their_logs = warnings_of_mail_debug.take()
            ours, our_left = await via_stream(get_proxy, stream)
            assert warnings_of_mail_debug.take() == their_logs, name
            assert_same_outcome(name, ours, theirs)
            assert our_left == their_left, name
            # The sans-I/O entry point agrees and consumes as much.
            parsed = parse_proxy_header(stream)
            assert parsed is not None, name
            assert warnings_of_mail_debug.take() == their_logs, name
            assert_same_outcome(name, parsed[0], theirs)
            assert parsed[1] == len(stream) - len(their_left), name

    asyncio.run(main())


def test_same_results_as_aiosmtpd_on_truncated_input(
    warnings_of_mail_debug: WarningCapture,
) -> None:
    theirs_module = pytest.importorskip("aiosmtpd.proxy_protocol")

    async def main() -> None:
        for name, header in sorted(aiosmtpd_corpus().items()):
            for cut in range(len(header)):
                label = f"{name}[:{cut}]"
                theirs, their_left = await via_stream(theirs_module.get_proxy, header[:cut])
                their_logs = warnings_of_mail_debug.take()
                ours, our_left = await via_stream(get_proxy, header[:cut])
                assert warnings_of_mail_debug.take() == their_logs, label
                assert_same_outcome(label, ours, theirs)
                assert our_left == their_left, label
                theirs = await theirs_module.get_proxy(LooseReader(header[:cut]))
                their_logs = warnings_of_mail_debug.take()
                ours = await get_proxy(LooseReader(header[:cut]))
                assert warnings_of_mail_debug.take() == their_logs, label
                assert_same_outcome(label, ours, theirs)

    asyncio.run(main())


def test_public_names_cover_aiosmtpd() -> None:
    theirs_module = pytest.importorskip("aiosmtpd.proxy_protocol")
    assert set(theirs_module.__all__) <= set(pp.__all__)
    for name in ("AF", "PROTO", "V2_CMD"):
        ours = {m.name: m.value for m in getattr(pp, name)}
        assert ours == {m.name: m.value for m in getattr(theirs_module, name)}
    assert ProxyTLV.PP2_TYPENAME == theirs_module.ProxyTLV.PP2_TYPENAME
    for tlv_data in (ALL_TLVS, ssl_tlv(1, 2, tlv(0x21, b"v"), b"\x22\x00\x09cut"), b"\x04"):
        assert ProxyTLV.parse(tlv_data)[0] == theirs_module.ProxyTLV.parse(tlv_data)[0]
