"""What a test server is asked to be: ``ServerOptions``, from keywords
(a marker, a factory call) over smtpdfix's ``SMTPD_*`` environment variables.

Precedence, highest first: keywords given explicitly, then ``SMTPD_*``
variables, then the defaults below.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["ENV_VARIABLES", "FaultReply", "ServerOptions", "env_options", "resolve_options"]

#: smtpdfix's variables that mean here what they mean there.
ENV_VARIABLES = (
    "SMTPD_HOST",
    "SMTPD_PORT",
    "SMTPD_USE_STARTTLS",
    "SMTPD_USE_SSL",
    "SMTPD_USE_TLS",
    "SMTPD_LOGIN_NAME",
    "SMTPD_LOGIN_PASSWORD",
    "SMTPD_ENFORCE_AUTH",
    "SMTPD_AUTH_REQUIRE_TLS",
    "SMTPD_SSL_CERTS_PATH",
    "SMTPD_SSL_CERTIFICATE_FILE",
    "SMTPD_SSL_KEY_FILE",
)

#: A fault's reply: always this line, or one entry per matching command in
#: turn (``None``: answer normally that time), then normal answers.
FaultReply = Union[str, Sequence[Optional[str]]]

TLS_MODES = (None, "starttls", "smtps")
FACES = ("modern", "legacy")
# smtpdfix's defaults when SMTPD_ENFORCE_AUTH asks for AUTH without credentials.
_SMTPDFIX_LOGIN = ("user", "password")


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Everything configurable; every field is a keyword of the marker and
    of ``smtp_server_factory``."""

    host: str = "127.0.0.1"
    #: 0: a free port chosen by the system (safe under pytest-xdist).
    port: int = 0
    #: ``"starttls"`` (offered on the plain port), ``"smtps"`` (TLS from the first byte), or None.
    tls: Optional[str] = None
    #: With ``tls="starttls"``: refuse mail until the client started TLS.
    require_starttls: bool = False
    certfile: Optional[str] = None
    keyfile: Optional[str] = None
    #: ``(login, password)`` accepted by AUTH PLAIN and LOGIN.
    auth: Optional[Tuple[str, str]] = None
    #: Refuse MAIL/RCPT/DATA until the client authenticated.
    auth_required: bool = False
    #: Offer AUTH only over TLS; None: only when ``tls`` is set.
    auth_require_tls: Optional[bool] = None
    #: ``{"RCPT": "550 5.1.1 No such user"}``: replies replacing the normal
    #: ones, per verb, per ``"RCPT <address>"``/``"MAIL <address>"``, and
    #: ``"CONNECT"`` for the greeting; ``"DATA"`` is the reply after the content.
    faults: Mapping[str, FaultReply] = dataclasses.field(default_factory=dict)
    #: ``{"MAIL": 2.0}``: seconds to wait before handling a command
    #: (``"DATA"``: before the reply after the content).
    delays: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: Close the connection once message content starts arriving.
    drop_during_data: bool = False
    #: ``"modern"`` (the asyncio server) or ``"legacy"`` (an ``SMTPServer``
    #: subclass on an asyncore loop).
    face: str = "modern"

    def __post_init__(self) -> None:
        if self.tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {TLS_MODES}, not {self.tls!r}")
        if self.face not in FACES:
            raise ValueError(f"face must be one of {FACES}, not {self.face!r}")
        if self.auth is not None:
            login, password = self.auth  # a clear error for anything but a pair
            object.__setattr__(self, "auth", (str(login), str(password)))
        if self.auth_required and self.auth is None:
            raise ValueError("auth_required needs auth=(login, password)")
        if self.require_starttls and self.tls != "starttls":
            raise ValueError('require_starttls needs tls="starttls"')
        object.__setattr__(self, "faults", {_fault_key(k): v for k, v in self.faults.items()})
        object.__setattr__(self, "delays", {k.upper(): float(v) for k, v in self.delays.items()})
        if self.face == "legacy" and (self.faults or self.delays or self.drop_during_data):
            raise ValueError("fault injection (faults, delays, drop_during_data) needs face='modern'")

    @property
    def requires_tls_for_auth(self) -> bool:
        return self.tls is not None if self.auth_require_tls is None else self.auth_require_tls


def _fault_key(key: str) -> str:
    verb, _, address = key.strip().partition(" ")
    return f"{verb.upper()} {address.strip().lower()}" if address else verb.upper()


def _flag(environ: Mapping[str, str], name: str) -> Optional[bool]:
    """smtpdfix's truth values (distutils' strtobool); None when unset."""
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    word = value.strip().lower()
    if word in ("y", "yes", "t", "true", "on", "1"):
        return True
    if word in ("n", "no", "f", "false", "off", "0"):
        return False
    raise ValueError(f"{name}={value!r} is neither true nor false")


def env_options(environ: Mapping[str, str] = os.environ) -> Dict[str, Any]:
    """The options smtpdfix's environment variables ask for (only those set)."""
    found: Dict[str, Any] = {}
    if environ.get("SMTPD_HOST"):
        found["host"] = environ["SMTPD_HOST"]
    if environ.get("SMTPD_PORT"):
        found["port"] = int(environ["SMTPD_PORT"])
    # As smtpdfix: STARTTLS wins over SSL/TLS, and then it is required.
    if _flag(environ, "SMTPD_USE_STARTTLS"):
        found.update(tls="starttls", require_starttls=True)
    elif _flag(environ, "SMTPD_USE_SSL") or _flag(environ, "SMTPD_USE_TLS"):
        found["tls"] = "smtps"
    login, password = environ.get("SMTPD_LOGIN_NAME"), environ.get("SMTPD_LOGIN_PASSWORD")
    enforce = _flag(environ, "SMTPD_ENFORCE_AUTH")
    if login is not None or password is not None or enforce:
        found["auth"] = (login or _SMTPDFIX_LOGIN[0], password or _SMTPDFIX_LOGIN[1])
    if enforce is not None:
        found["auth_required"] = enforce
    require_tls = _flag(environ, "SMTPD_AUTH_REQUIRE_TLS")
    if require_tls is not None:
        found["auth_require_tls"] = require_tls
    certs = environ.get("SMTPD_SSL_CERTS_PATH")
    if certs:
        # Relative (or absolute) names inside that directory, smtpdfix's defaults.
        found["certfile"] = str(Path(certs, environ.get("SMTPD_SSL_CERTIFICATE_FILE") or "cert.pem"))
        found["keyfile"] = str(Path(certs, environ.get("SMTPD_SSL_KEY_FILE") or "key.pem"))
    return found


def resolve_options(explicit: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> ServerOptions:
    """``ServerOptions`` from explicit keywords over the environment.

    An explicit keyword that contradicts a variable wins along with what it
    implies: ``tls="smtps"`` drops the ``require_starttls`` that
    ``SMTPD_USE_STARTTLS`` brought.
    """
    unknown = set(explicit) - {field.name for field in dataclasses.fields(ServerOptions)}
    if unknown:
        raise TypeError(f"unknown smtp_server option(s): {', '.join(sorted(unknown))}")
    merged = env_options(environ)
    if "tls" in explicit and explicit["tls"] != "starttls" and "require_starttls" not in explicit:
        merged.pop("require_starttls", None)
    merged.update(explicit)
    return ServerOptions(**merged)
