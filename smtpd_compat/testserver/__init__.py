"""SMTP servers for tests: what the pytest plugin's fixtures hand out
(``smtpd_compat.pytest_plugin``), usable on their own as well."""

from smtpd_compat.testserver.options import ServerOptions, resolve_options
from smtpd_compat.testserver.server import MessageTimeout, SMTPTestServer
from smtpd_compat.testserver.tlsfiles import CA_FILE, CERT_FILE, KEY_FILE, client_ssl_context

__all__ = [
    "CA_FILE",
    "CERT_FILE",
    "KEY_FILE",
    "MessageTimeout",
    "SMTPTestServer",
    "ServerOptions",
    "client_ssl_context",
    "resolve_options",
]
