"""Which peers may send a PROXY protocol header: a pure decision.

With ``proxy_protocol_timeout`` alone, aiosmtpd believes the header of any
client, so a client reaching the server directly can claim any address.
``SMTP.proxy_trusted_networks`` lists the balancers whose headers count;
:func:`proxy_allowed` answers for one connection's peer.

Networks are given as ``ipaddress`` networks or addresses, or as strings
(``"10.0.0.0/8"``, ``"2001:db8::/32"``, ``"192.0.2.7"``).  A peer seen as an
IPv4-mapped IPv6 address (``::ffff:192.0.2.7``, from a dual-stack listener)
is checked as the IPv4 address it stands for, and as itself.  A peer that is
not an IP address (a Unix socket) is never in an IP allowlist: behind a Unix
socket leave the list unset and let the socket file's permissions decide.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any, Iterable, Tuple, Type, TypeVar, Union

__all__ = ["NetworkSpec", "TrustedNetworks", "parse_networks", "proxy_allowed", "trusting"]

IPNetwork = Union[IPv4Network, IPv6Network]
NetworkSpec = Union[str, IPv4Address, IPv6Address, IPv4Network, IPv6Network]
TrustedNetworks = Tuple[IPNetwork, ...]
_ProtocolT = TypeVar("_ProtocolT")


def parse_networks(specs: Union[str, Iterable[NetworkSpec]]) -> TrustedNetworks:
    """Networks from addresses, networks or their text; a string may hold
    several, separated by commas or spaces.  Host bits are allowed
    (``10.1.2.3/8`` means ``10.0.0.0/8``).  Raises ``ValueError`` on a bad one."""
    if isinstance(specs, str):
        specs = specs.replace(",", " ").split()
    return tuple(ip_network(spec, strict=False) for spec in specs)


@lru_cache(maxsize=16)
def _parsed(specs: Union[str, Tuple[NetworkSpec, ...]]) -> TrustedNetworks:
    # Parsed once per distinct allowlist, not per connection.
    return parse_networks(specs)


def _candidates(host: str) -> Tuple[Union[IPv4Address, IPv6Address], ...]:
    # A link-local peer carries its zone ("fe80::1%eth0"); networks have none.
    address = ip_address(host.partition("%")[0])
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address, address.ipv4_mapped
    return (address,)


def proxy_allowed(trusted: Union[None, str, Iterable[NetworkSpec]], peer: Any) -> bool:
    """True if ``peer`` (a socket peername, or a bare host) may send a PROXY
    header under the allowlist ``trusted``; None trusts every peer (aiosmtpd)."""
    if trusted is None:
        return True
    networks = _parsed(trusted if isinstance(trusted, str) else tuple(trusted))
    host = peer[0] if isinstance(peer, tuple) and peer else peer
    if not isinstance(host, str):
        return False
    try:
        candidates = _candidates(host)
    except ValueError:  # a Unix socket path, or nothing
        return False
    return any(
        address in network
        for address in candidates
        for network in networks
        if address.version == network.version
    )


def trusting(protocol_class: Type[_ProtocolT], trusted: Union[str, Iterable[NetworkSpec]]) -> Type[_ProtocolT]:
    """A subclass of ``protocol_class`` (``SMTP``, ``LMTP``...) whose
    ``proxy_trusted_networks`` is ``trusted``, parsed once."""
    attributes = {"proxy_trusted_networks": parse_networks(trusted)}
    return type(protocol_class.__name__, (protocol_class,), attributes)
