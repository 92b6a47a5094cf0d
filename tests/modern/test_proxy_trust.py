"""Which peers may send a PROXY header: the pure decision (``proxy_trust``)
and ``SMTP.proxy_trusted_networks`` over real sockets, from a trusted
(127.0.0.1) and an untrusted (127.0.0.2) loopback address."""

from __future__ import annotations

import logging
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any, Optional

import pytest

from smtpd_compat.modern.proxy_trust import parse_networks, proxy_allowed
from smtpd_compat.modern.smtp import SMTP

from ._extensions import Dialog, HookRecorder, serve
from .test_proxy_smtp import GREETING, V1, V2, ProxyRecorder


@pytest.mark.parametrize(
    "trusted,peer,allowed",
    [
        (None, ("203.0.113.9", 1), True),  # aiosmtpd: anyone
        ((), ("127.0.0.1", 1), False),  # an empty list trusts no one
        ("10.0.0.0/8", ("10.2.3.4", 25), True),
        ("10.0.0.0/8", ("11.0.0.1", 25), False),
        ("10.0.0.0/8, 192.0.2.7", ("192.0.2.7", 25), True),
        ("10.1.2.3/8", "10.200.0.1", True),  # host bits allowed; a bare host
        (["2001:db8::/32"], ("2001:db8::5", 25, 0, 0), True),
        (["2001:db8::/32"], ("2001:db9::5", 25, 0, 0), False),
        (["10.0.0.0/8"], ("::ffff:10.0.0.1", 25, 0, 0), True),  # dual-stack listener
        (["::ffff:10.0.0.0/104"], ("10.0.0.1", 25), False),  # a v6 network holds no v4 address
        (["::ffff:10.0.0.0/104"], ("::ffff:10.0.0.1", 25, 0, 0), True),
        (["fe80::/10"], ("fe80::1%eth0", 25, 0, 2), True),  # zone ignored
        ([IPv4Network("127.0.0.0/8"), ip_address("::1")], ("::1", 25, 0, 0), True),
        (["127.0.0.0/8"], "/run/smtp.sock", False),  # Unix socket peers never match
        (["127.0.0.0/8"], "", False),
        (["127.0.0.0/8"], None, False),
    ],
)
def test_proxy_allowed(trusted: Any, peer: Any, allowed: bool) -> None:
    assert proxy_allowed(trusted, peer) is allowed


def test_bad_network_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/33")
    assert parse_networks("10.0.0.1, ::1") == (IPv4Network("10.0.0.1/32"), IPv6Network("::1/128"))


class TrustLocalhost(SMTP):
    proxy_trusted_networks = "127.0.0.1/32"


@pytest.mark.parametrize("header", [V1, V2], ids=["v1", "v2"])
@pytest.mark.parametrize("source,trusted", [(None, True), ("127.0.0.2", False)], ids=["trusted", "untrusted"])
def test_header_from_trusted_peer_only(
    header: bytes, source: Optional[str], trusted: bool, caplog: pytest.LogCaptureFixture
) -> None:
    handler = ProxyRecorder()
    with caplog.at_level(logging.WARNING, "mail.log"), serve(
        handler, cls=TrustLocalhost, proxy_protocol_timeout=5.0
    ) as server, Dialog(server.port, greet=False, source=(source, 0) if source else None) as dialog:
        client_port = dialog.sock.getsockname()[1]
        dialog.send(header)
        if trusted:
            assert dialog.reply().startswith(GREETING)
            assert dialog.cmd(b"QUIT").startswith(b"221")
        else:
            assert dialog.rest_until_closed() == b""
    refusals = [r.getMessage() for r in caplog.records if "PROXY header refused" in r.getMessage()]
    if trusted:
        assert len(handler.proxied) == 1 and not refusals
    else:
        assert handler.proxied == []  # handle_PROXY never asked
        assert refusals == [f"('127.0.0.2', {client_port}) PROXY header refused: not a trusted proxy"]


@pytest.mark.parametrize("cls,greeted", [(TrustLocalhost, True), (SMTP, False)], ids=["allowlist", "aiosmtpd"])
def test_without_handle_proxy(cls: Any, greeted: bool) -> None:
    """A handler without handle_PROXY: aiosmtpd refuses every header; with an
    allowlist the list has decided, so a trusted header is accepted."""
    with serve(HookRecorder(), cls=cls, proxy_protocol_timeout=5.0) as server, Dialog(
        server.port, greet=False
    ) as dialog:
        dialog.send(V2)
        if greeted:
            assert dialog.reply().startswith(GREETING)
        else:
            assert dialog.rest_until_closed() == b""
