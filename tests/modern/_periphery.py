"""Helpers for the handlers/controller/CLI tests (helper "modern-periphery")."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any, List, NamedTuple

import pytest

from smtpd_compat.modern.smtp import SMTP, Envelope, Session


class CertPair(NamedTuple):
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context

    def client_context(self) -> ssl.SSLContext:
        """Verifies the throwaway certificate, hostname included."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def cert_pair(tmp_path_factory: pytest.TempPathFactory) -> CertPair:
    """A self-signed certificate for localhost/127.0.0.1/::1, made with openssl now."""
    directory = tmp_path_factory.mktemp("certs")
    pair = CertPair(directory / "server.crt", directory / "server.key")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "1",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
            "-keyout", str(pair.key), "-out", str(pair.cert),
        ],
        check=True,
        capture_output=True,
    )
    return pair


class RecordingHandler:
    """Keeps every envelope it receives."""

    def __init__(self) -> None:
        self.envelopes: List[Envelope] = []
        self.sessions: List[Session] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self.sessions.append(session)
        return "250 OK"


class FakeParser:
    """Stands in for ArgumentParser: records the error() message, then exits."""

    message: Any = None

    def error(self, message: str) -> None:
        self.message = message
        raise SystemExit(2)


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def connection_refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


def ehlo_in_last_handshake_flight(sock: socket.socket, context: ssl.SSLContext) -> bytes:
    """Run the client side of a TLS handshake on ``sock`` in memory, send
    EHLO in the same segment as the handshake's last flight, and return the
    server's decrypted reply: a server that reads TLS data before its
    handshake completes must still answer it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            incoming.write(sock.recv(65536))
    tls.write(b"EHLO c.test\r\n")
    sock.sendall(outgoing.read())  # client Finished + EHLO in one segment
    reply = b""
    while not reply.endswith(b"250 HELP\r\n"):
        try:
            reply += tls.read(65536)
        except ssl.SSLWantReadError:
            data = sock.recv(65536)
            assert data, "server closed instead of answering EHLO: %r" % reply
            incoming.write(data)
    return reply
