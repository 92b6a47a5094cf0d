"""The certificate shipped for tests, and TLS contexts made from it.

``certs/`` holds a localhost certificate (SAN ``localhost``, ``127.0.0.1``,
``::1``) signed by a throw-away CA, both valid until 2126; ``certs/make.sh``
made them once.  Nothing is generated per run (smtpdfix's users asked for
that: its certificate generation slowed every session).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Optional, Union

__all__ = ["CA_FILE", "CERT_FILE", "KEY_FILE", "client_ssl_context", "server_ssl_context"]

_CERTS = Path(__file__).resolve().parent / "certs"
#: The CA that signed ``CERT_FILE``: what clients should trust.
CA_FILE = str(_CERTS / "ca.pem")
#: The server's certificate and private key.
CERT_FILE = str(_CERTS / "cert.pem")
KEY_FILE = str(_CERTS / "key.pem")

PathLike = Union[str, Path]


def server_ssl_context(certfile: PathLike = CERT_FILE, keyfile: Optional[PathLike] = KEY_FILE) -> ssl.SSLContext:
    """A server context presenting ``certfile`` (the shipped one by default)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certfile), None if keyfile is None else str(keyfile))
    return context


def client_ssl_context(cafile: PathLike = CA_FILE) -> ssl.SSLContext:
    """A verifying client context that trusts ``cafile``: connect to
    ``localhost`` or ``127.0.0.1`` with hostname checks on."""
    return ssl.create_default_context(cafile=str(cafile))
