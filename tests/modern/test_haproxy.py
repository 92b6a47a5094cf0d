"""A real HAProxy in front of two server instances: with ``send-proxy`` (v1)
and ``send-proxy-v2`` the handler learns the client's own address and port,
not the balancer's.  Skipped when haproxy is not installed."""

from __future__ import annotations

import shutil
import smtplib
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from ._extensions import HookRecorder, serve
from ._servers import free_port

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")

#: The client connects from this loopback address; HAProxy reaches the
#: servers from 127.0.0.1, so only the PROXY header can tell them apart.
CLIENT_ADDRESS = "127.0.0.2"

CONFIG = """\
global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend v1
    bind 127.0.0.1:{v1}
    default_backend first
frontend v2
    bind 127.0.0.1:{v2}
    default_backend second
frontend balanced
    bind 127.0.0.1:{balanced}
    default_backend both
backend first
    server a 127.0.0.1:{a} send-proxy
backend second
    server b 127.0.0.1:{b} send-proxy-v2
backend both
    balance roundrobin
    server a 127.0.0.1:{a} send-proxy
    server b 127.0.0.1:{b} send-proxy-v2
"""


class Instance(HookRecorder):
    """One server instance: accepts proxied connections and reports the client
    as ``session.peer`` (so X-Peer shows the client, not the balancer)."""

    def __init__(self) -> None:
        super().__init__()
        self.connections: List[Tuple[Any, Any]] = []

    async def handle_PROXY(self, server: Any, session: Any, envelope: Any, proxy_data: Any) -> bool:
        self.connections.append((session.peer, proxy_data))
        session.peer = (str(proxy_data.src_addr), proxy_data.src_port)
        return True


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Tuple[Dict[str, int], Instance, Instance]]:
    first, second = Instance(), Instance()
    with serve(first, proxy_protocol_timeout=5.0) as a, serve(second, proxy_protocol_timeout=5.0) as b:
        ports = {"v1": free_port(), "v2": free_port(), "balanced": free_port(), "a": a.port, "b": b.port}
        config = tmp_path / "haproxy.cfg"
        config.write_text(CONFIG.format(**ports))
        process = subprocess.Popen(["haproxy", "-f", str(config), "-db"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            for name in ("v1", "v2", "balanced"):
                if not listening(ports[name], process):
                    process.kill()
                    pytest.fail("haproxy did not start: %r" % process.communicate(timeout=5)[0])
            yield ports, first, second
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def listening(port: int, process: "subprocess.Popen[bytes]", timeout: float = 10.0) -> bool:
    """Wait until something listens on ``port`` without connecting to it
    (a probe connection would reach the servers through HAProxy)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return True
        time.sleep(0.02)
    return False


def send_through(port: int, subject: str) -> Tuple[str, int]:
    """Send one message from CLIENT_ADDRESS; returns the client's address."""
    with smtplib.SMTP("127.0.0.1", port, source_address=(CLIENT_ADDRESS, 0), timeout=5) as client:
        client.sendmail("a@x", ["b@x"], f"Subject: {subject}\r\n\r\nvia haproxy\r\n")
        host, source_port = client.sock.getsockname()
        return host, source_port


@pytest.mark.parametrize("frontend,version", [("v1", 1), ("v2", 2)])
def test_handler_sees_the_real_client(haproxy: Any, frontend: str, version: int) -> None:
    ports, first, second = haproxy
    instance = first if frontend == "v1" else second
    client = send_through(ports[frontend], frontend)
    (transport_peer, proxy_data), = instance.connections
    assert proxy_data.version == version
    assert (str(proxy_data.src_addr), proxy_data.src_port) == client
    assert transport_peer[0] == "127.0.0.1" != CLIENT_ADDRESS  # HAProxy's own connection
    session = instance.sessions[0]
    assert session.proxy_data is proxy_data
    assert session.peer == client
    assert instance.envelopes[0].content.endswith(b"via haproxy\r\n")


def test_balanced_over_two_instances(haproxy: Any) -> None:
    ports, first, second = haproxy
    clients = [send_through(ports["balanced"], f"message {n}") for n in range(4)]
    assert len(first.envelopes) == len(second.envelopes) == 2
    seen = [(str(data.src_addr), data.src_port) for instance in (first, second) for _, data in instance.connections]
    assert sorted(seen) == sorted(clients)
    assert {data.version for _, data in first.connections} == {1}
    assert {data.version for _, data in second.connections} == {2}
