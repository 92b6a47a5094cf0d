"""The server TLS context both command lines build from a certificate and key file."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:  # imported on use: `import smtpd_compat` loads no ssl
    import ssl

__all__ = ["server_tls_context"]

PathLike = Union[str, "os.PathLike[str]"]


def server_tls_context(cert: Optional[PathLike], key: Optional[PathLike]) -> Optional[ssl.SSLContext]:
    """A context serving ``cert`` with ``key`` (PEM files), or None unless both are given."""
    if not (cert and key):
        return None
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.check_hostname = False
    context.load_cert_chain(os.fspath(cert), os.fspath(key))
    return context
