"""SMTP AUTH (RFC 4954) without I/O: reply texts, response decoding, and the
LOGIN and PLAIN conversations, shared by both faces.

A mechanism is a generator: it yields each challenge (raw bytes, before
base64), receives the client's decoded answer, and returns the
``LoginPassword`` it collected.  It raises ``SaslFailure`` when the exchange
ends early with a reply.  The modern face drives it with
``SMTP.challenge_auth``; the legacy channel with the lines its framer hands
over.  Either way, what is sent and accepted is decided here, once.
"""

from __future__ import annotations

import binascii
from base64 import b64decode, b64encode
from typing import Any, Callable, Container, Dict, Generator, List, NamedTuple, Optional

__all__ = [
    "ABORTED",
    "ALREADY_AUTHENTICATED",
    "AUTH_REQUIRED",
    "AuthResult",
    "BAD_BASE64",
    "BAD_PLAIN",
    "CODE_INVALID",
    "CODE_SUCCESS",
    "Conversation",
    "ENCRYPTION_REQUIRED",
    "LOGIN_PASSWORD_CHALLENGE",
    "LOGIN_USERNAME_CHALLENGE",
    "LoginPassword",
    "MECHANISMS",
    "NOT_ENOUGH_VALUE",
    "NOT_ESMTP",
    "SaslFailure",
    "TOO_MANY_VALUES",
    "UNRECOGNIZED_MECHANISM",
    "auth_arguments",
    "challenge_line",
    "decode_initial",
    "decode_response",
    "initial_response",
    "login",
    "plain",
    "reply_for",
    "split_plain",
    "synchronous",
]

# aiosmtpd 1.4's texts, so that clients and tests see one dialect on both faces.
CODE_SUCCESS = "235 2.7.0 Authentication successful"
CODE_INVALID = "535 5.7.8 Authentication credentials invalid"
ABORTED = "501 5.7.0 Auth aborted"
BAD_BASE64 = "501 5.5.2 Can't decode base64"
BAD_PLAIN = "501 5.5.2 Can't split auth value"
ENCRYPTION_REQUIRED = "538 5.7.11 Encryption required for requested authentication mechanism"
ALREADY_AUTHENTICATED = "503 Already authenticated"
NOT_ENOUGH_VALUE = "501 Not enough value"
TOO_MANY_VALUES = "501 Too many values"
UNRECOGNIZED_MECHANISM = "504 5.5.4 Unrecognized authentication type"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
#: AUTH after HELO: only ESMTP has it.
NOT_ESMTP = "500 Error: command 'AUTH' not recognized"

LOGIN_USERNAME_CHALLENGE = "User Name\x00"
LOGIN_PASSWORD_CHALLENGE = "Password\x00"


class LoginPassword(NamedTuple):
    login: bytes
    password: bytes

    def __str__(self) -> str:
        # Never show the password, whichever way the tuple is printed.
        return f"LoginPassword(login='{self.login.decode(errors='replace')}', password=...)"

    def __repr__(self) -> str:
        return str(self)


class AuthResult:
    """What an authenticator or mechanism concluded (keyword-only fields).

    ``handled=True`` with ``success=False`` means the mechanism already
    replied to the client, so nothing more is sent.
    """

    __slots__ = ("success", "handled", "message", "auth_data")

    def __init__(
        self,
        *,
        success: bool,
        handled: bool = True,
        message: Optional[str] = None,
        auth_data: Any = None,
    ) -> None:
        self.success = success
        self.handled = handled
        self.message = message
        self.auth_data = auth_data

    def __repr__(self) -> str:
        return (
            f"AuthResult(success={self.success!r}, handled={self.handled!r}, "
            f"message={self.message!r}, auth_data=...)"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuthResult):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.__slots__)


class SaslFailure(Exception):
    """The exchange is over; ``reply`` is what the client gets."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


#: Yields challenges, receives decoded answers, returns the credentials.
Conversation = Generator[bytes, bytes, LoginPassword]


def challenge_line(challenge: bytes, encode_to_b64: bool = True) -> bytes:
    """The ``334`` reply that carries ``challenge`` (CRLF not included)."""
    return b"334 " + (b64encode(challenge) if encode_to_b64 else challenge)


def decode_response(line: bytes) -> bytes:
    """A client's answer to a ``334`` challenge; ``*`` cancels (RFC 4954 4)."""
    blob = line.strip()
    if blob == b"*":
        raise SaslFailure(ABORTED)
    return _b64(blob)


def decode_initial(response: str) -> bytes:
    """The initial response given on the AUTH line itself (undecodable
    bytes kept as surrogates under SMTPUTF8 are simply not base64)."""
    return _b64(response.encode("utf-8", "surrogateescape"))


def _b64(blob: bytes) -> bytes:
    try:
        return b64decode(blob, validate=True)
    except binascii.Error:
        raise SaslFailure(BAD_BASE64) from None


def split_plain(blob: bytes) -> LoginPassword:
    """``authzid NUL authcid NUL passwd`` (RFC 4616); the authzid is ignored."""
    parts = blob.split(b"\x00")
    if len(parts) != 3:
        raise SaslFailure(BAD_PLAIN)
    return LoginPassword(parts[1], parts[2])


def plain(initial: Optional[bytes]) -> Conversation:
    blob = initial if initial is not None else (yield b"")
    return split_plain(blob)


def login(
    initial: Optional[bytes],
    username_challenge: str = LOGIN_USERNAME_CHALLENGE,
    password_challenge: str = LOGIN_PASSWORD_CHALLENGE,
) -> Conversation:
    name = initial if initial is not None else (yield username_challenge.encode())
    password = yield password_challenge.encode()
    return LoginPassword(name, password)


#: The built-in mechanisms by name: each takes the decoded initial response.
MECHANISMS: Dict[str, Callable[[Optional[bytes]], Conversation]] = {"LOGIN": login, "PLAIN": plain}


def auth_arguments(
    arg: Optional[str],
    *,
    extended: bool,
    require_tls: bool,
    tls_active: bool,
    authenticated: bool,
    mechanisms: Container[str],
) -> List[str]:
    """Vet an ``AUTH <mechanism> [<initial-response>]`` command (after the
    greeting check) and return its words; raises ``SaslFailure`` with the
    reply refusing it.  The gates and their order are both faces'."""
    if not extended:
        raise SaslFailure(NOT_ESMTP)
    if require_tls and not tls_active:
        raise SaslFailure(ENCRYPTION_REQUIRED)
    if authenticated:
        raise SaslFailure(ALREADY_AUTHENTICATED)
    if not arg:
        raise SaslFailure(NOT_ENOUGH_VALUE)
    args = arg.split()
    if len(args) > 2:
        raise SaslFailure(TOO_MANY_VALUES)
    if args[0] not in mechanisms:
        raise SaslFailure(UNRECOGNIZED_MECHANISM)
    return args


def initial_response(args: List[str]) -> Optional[bytes]:
    """Decoded initial response of ``AUTH <mechanism> [<response>]`` split into ``args``."""
    return decode_initial(args[1]) if len(args) > 1 else None


def synchronous(result: Any) -> Any:
    """An authenticator's result as the exchange uses it.  An authenticator
    cannot have replied itself, so a failure it calls ``handled`` is not:
    with aiosmtpd the default ``handled=True`` left the client waiting."""
    if isinstance(result, AuthResult) and not result.success and result.handled:
        return AuthResult(success=False, handled=False, message=result.message)
    return result


def reply_for(result: AuthResult) -> Optional[str]:
    """The reply that ends an exchange with ``result`` (None: already sent)."""
    if result.success:
        return result.message or CODE_SUCCESS
    if result.handled:
        return None
    return result.message or CODE_INVALID
