"""The PROXY protocol in front of the modern SMTP server, over real sockets:
the header is read before the greeting, handed to ``handle_PROXY`` and kept
in ``session.proxy_data``; a bad, slow or refused header closes the
connection without a word of SMTP."""

from __future__ import annotations

import logging
import time
from ipaddress import IPv4Address, IPv6Address
from typing import Any, List, Tuple

import pytest

from smtpd_compat.modern.proxy_protocol import AF, ProxyData
from smtpd_compat.modern.smtp import SMTP

from ._extensions import Dialog, HookRecorder, serve
from ._periphery import CertPair, cert_pair  # noqa: F401  (fixture)
from .test_proxy_protocol import V1_INVALID, V2_INVALID, inet6_block, v2_header

V1 = b"PROXY TCP4 192.0.2.10 198.51.100.20 40000 25\r\n"
V2 = v2_header(inet6_block(), family=AF.INET6)
GREETING = b"220 mx.test "


class ProxyRecorder(HookRecorder):
    """Answers handle_PROXY with ``verdict`` and records what it saw."""

    def __init__(self, verdict: Any = True) -> None:
        super().__init__()
        self.verdict = verdict
        self.proxied: List[Tuple[Any, Any]] = []

    async def handle_PROXY(self, server: Any, session: Any, envelope: Any, proxy_data: Any) -> Any:
        self.proxied.append((proxy_data, session.proxy_data))
        return self.verdict


def proxied(handler: Any, **kwargs: Any) -> Any:
    return serve(handler, proxy_protocol_timeout=kwargs.pop("timeout", 5.0), **kwargs)


def test_timeout_must_be_positive(caplog: pytest.LogCaptureFixture) -> None:
    for bad in (0, -1, -0.5):
        with pytest.raises(ValueError, match="proxy_protocol_timeout must be > 0"):
            SMTP(HookRecorder(), proxy_protocol_timeout=bad)
    with caplog.at_level(logging.WARNING, "mail.log"):
        SMTP(HookRecorder(), proxy_protocol_timeout=2.9)
    assert "proxy_protocol_timeout < 3.0" in caplog.text
    assert SMTP(HookRecorder(), proxy_protocol_timeout=3)._proxy_timeout == 3


@pytest.mark.parametrize("header", [V1, V2], ids=["v1", "v2"])
def test_valid_header_then_smtp(header: bytes) -> None:
    handler = ProxyRecorder()
    with proxied(handler) as server, Dialog(server.port, greet=False) as dialog:
        dialog.send(header)
        assert dialog.reply().startswith(GREETING)
        assert dialog.cmd(b"EHLO c.test").startswith(b"250-mx.test")
        for line in (b"MAIL FROM:<a@x>", b"RCPT TO:<b@x>"):
            dialog.cmd(line)
        dialog.cmd(b"DATA")
        assert dialog.cmd(b"hi\r\n.") == b"250 OK\r\n"
    (seen, in_session), = handler.proxied
    assert seen is in_session and isinstance(seen, ProxyData) and seen.valid
    session = handler.sessions[0]
    assert session.proxy_data is seen
    assert session.peer[0] == "127.0.0.1"  # the connection's own peer, as in aiosmtpd
    if header == V1:
        assert (seen.version, seen.src_addr, seen.src_port, seen.dst_port) == (
            1, IPv4Address("192.0.2.10"), 40000, 25)
    else:
        assert (seen.version, seen.src_addr, seen.dst_addr, seen.src_port, seen.dst_port) == (
            2, IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2"), 40001, 587)


def test_header_split_across_segments() -> None:
    handler = ProxyRecorder()
    with proxied(handler) as server, Dialog(server.port, greet=False) as dialog:
        for piece in (V2[:3], V2[3:14], V2[14:20], V2[20:]):
            dialog.send(piece)
            time.sleep(0.02)  # separate reads on the server side
        assert dialog.reply().startswith(GREETING)
    assert handler.proxied[0][0].src_port == 40001


@pytest.mark.parametrize("header", [V1, V2], ids=["v1", "v2"])
def test_smtp_pipelined_right_after_the_header_is_kept(header: bytes) -> None:
    handler = ProxyRecorder()
    with proxied(handler) as server, Dialog(server.port, greet=False) as dialog:
        dialog.send(header + b"EHLO c.test\r\nMAIL FROM:<a@x>\r\nNOOP\r\n")
        assert dialog.reply().startswith(GREETING)
        assert dialog.reply().endswith(b"250 HELP\r\n")
        assert [dialog.reply(), dialog.reply()] == [b"250 OK\r\n", b"250 OK\r\n"]
    assert handler.mail_froms == ["a@x"]


@pytest.mark.parametrize("verdict", [False, None, "", 0])
def test_falsy_handle_proxy_closes_without_greeting(verdict: Any) -> None:
    handler = ProxyRecorder(verdict)
    with proxied(handler) as server, Dialog(server.port, greet=False) as dialog:
        dialog.send(V1 + b"EHLO c.test\r\n")
        assert dialog.rest_until_closed() == b""
    assert len(handler.proxied) == 1 and handler.mail_froms == []


def test_truthy_handle_proxy_of_any_kind_continues() -> None:
    with proxied(ProxyRecorder("250 fine")) as server, Dialog(server.port, greet=False) as dialog:
        dialog.send(V1)
        assert dialog.reply().startswith(GREETING)


def test_no_handle_proxy_hook_closes() -> None:
    with proxied(HookRecorder()) as server, Dialog(server.port, greet=False) as dialog:
        dialog.send(V1)
        assert dialog.rest_until_closed() == b""


BAD_HEADERS = {
    "smtp instead": b"EHLO c.test\r\n",
    "http": b"GET / HTTP/1.1\r\n\r\n",
    "v1 bad port": V1_INVALID["port_leading_zero"][0],
    "v1 lf only": V1_INVALID["lf_only"][0],
    "v1 too long": V1_INVALID["too_long_300"][0],
    "v2 bad version": V2_INVALID["version_3"][0],
    "v2 truncated address": V2_INVALID["truncated_inet"][0],
}


@pytest.mark.parametrize("name", sorted(BAD_HEADERS))
def test_malformed_header_closes_without_greeting(name: str) -> None:
    handler = ProxyRecorder()
    with proxied(handler) as server:
        with Dialog(server.port, greet=False) as dialog:
            dialog.send(BAD_HEADERS[name])
            assert dialog.rest_until_closed() == b""
        with Dialog(server.port, greet=False) as dialog:  # the server goes on
            dialog.send(V1)
            assert dialog.reply().startswith(GREETING)
    assert len(handler.proxied) == 1


@pytest.mark.parametrize("sent", [b"", b"PROXY TCP4 192.0.2.10 ", V2[:20]], ids=["nothing", "v1 part", "v2 part"])
def test_slow_header_times_out_without_greeting(sent: bytes) -> None:
    handler = ProxyRecorder()
    with proxied(handler, timeout=0.3) as server, Dialog(server.port, greet=False) as dialog:
        start = time.monotonic()
        dialog.send(sent)
        assert dialog.rest_until_closed(timeout=5) == b""
        assert time.monotonic() - start < 3  # the PROXY timeout, not the 300 s idle one
    assert handler.proxied == []


def test_proxy_timeout_is_only_for_the_header() -> None:
    with proxied(ProxyRecorder(), timeout=0.1) as server, Dialog(server.port, greet=False) as dialog:
        dialog.send(V1)
        assert dialog.reply().startswith(GREETING)
        time.sleep(0.3)
        assert dialog.cmd(b"NOOP") == b"250 OK\r\n"


def test_handle_proxy_may_report_the_client_as_peer() -> None:
    """A recipe: behind a load balancer, make session.peer (X-Peer in the
    Message handlers) the client's address from the header."""

    class RealPeer(ProxyRecorder):
        async def handle_PROXY(self, server: Any, session: Any, envelope: Any, proxy_data: Any) -> bool:
            session.peer = (str(proxy_data.src_addr), proxy_data.src_port)
            return True

    handler = RealPeer()
    with proxied(handler) as server, Dialog(server.port, greet=False) as dialog:
        dialog.send(V1 + b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nhi\r\n.\r\n")
        assert [dialog.reply()[:3] for _ in range(6)] == [b"220", b"250", b"250", b"250", b"354", b"250"]
    assert handler.sessions[0].peer == ("192.0.2.10", 40000)


def test_proxy_data_survives_starttls(cert_pair: CertPair) -> None:
    handler = ProxyRecorder()
    with proxied(handler, tls_context=cert_pair.server_context()) as server:
        with Dialog(server.port, greet=False) as dialog:
            dialog.send(V1)
            dialog.reply()
            dialog.cmd(b"EHLO c.test")
            assert dialog.cmd(b"STARTTLS") == b"220 Ready to start TLS\r\n"
            dialog.starttls(cert_pair.client_context())
            for line in (b"EHLO c.test", b"MAIL FROM:<a@x>", b"RCPT TO:<b@x>", b"DATA"):
                dialog.cmd(line)
            assert dialog.cmd(b"hi\r\n.") == b"250 OK\r\n"
    session = handler.sessions[0]
    assert session.ssl is not None
    assert session.proxy_data is handler.proxied[0][0]


def compared_fields(data: Any) -> Tuple[Any, ...]:
    return tuple(getattr(data, name) for name in (
        "version", "command", "family", "protocol", "src_addr", "dst_addr", "src_port", "dst_port", "valid"))


@pytest.mark.parametrize("header", [V1, V2, b"PROXY UNKNOWN\r\n", V2_INVALID["version_3"][0]],
                         ids=["v1", "v2", "v1 unknown", "v2 invalid"])
def test_same_as_aiosmtpd(header: bytes) -> None:
    """Same bytes (or the same silent close) and the same ProxyData fields."""
    results = []
    for module_name in ("aiosmtpd.smtp", "smtpd_compat.modern.smtp"):
        module = pytest.importorskip(module_name)
        handler = ProxyRecorder()
        with proxied(handler, cls=module.SMTP) as server, Dialog(server.port, greet=False) as dialog:
            dialog.send(header + b"NOOP\r\nQUIT\r\n")
            results.append((dialog.rest_until_closed(), [compared_fields(seen) for seen, _ in handler.proxied]))
    assert results[1] == results[0]
    if header == V2_INVALID["version_3"][0]:
        assert results[1] == (b"", [])
    else:
        assert results[1][0].endswith(b"\r\n250 OK\r\n221 Bye\r\n")
