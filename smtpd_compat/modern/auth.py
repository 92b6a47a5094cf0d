"""SMTP AUTH (RFC 4954) for the modern SMTP class: results, mechanisms,
challenges.  ``AuthMixin`` is mixed into ``SMTP``; it only uses the
protocol's ``push``/``_readline``/hook primitives, never the transport."""

from __future__ import annotations

import binascii
import logging
import re
import warnings
from base64 import b64decode, b64encode
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, List, NamedTuple, Optional, Union

from .hooks import syntax
from .session import MISSING, Envelope, Session, _Missing

if TYPE_CHECKING:
    from .smtp import SMTP

__all__ = [
    "AuthCallbackType",
    "AuthMechanismType",
    "AuthMixin",
    "AuthResult",
    "AuthenticatorType",
    "LoginPassword",
    "VALID_AUTHMECH",
    "auth_mechanism",
    "login_always_fail",
]

log = logging.getLogger("mail.log")

VALID_AUTHMECH = re.compile(r"[A-Z0-9_-]+\Z")
AuthCallbackType = Callable[[str, bytes, bytes], bool]
AuthMechanismType = Callable[["SMTP", List[str]], Awaitable[Any]]

CODE_SUCCESS = "235 2.7.0 Authentication successful"
CODE_INVALID = "535 5.7.8 Authentication credentials invalid"


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


AuthenticatorType = Callable[["SMTP", Session, Envelope, str, Any], AuthResult]


def auth_mechanism(actual_name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Name the AUTH mechanism an ``auth_*`` method implements."""
    actual_name = actual_name.upper()
    if not VALID_AUTHMECH.match(actual_name):
        raise ValueError(f"Invalid AUTH mechanism name: {actual_name}")

    def decorator(method: Callable[..., Any]) -> Callable[..., Any]:
        method.__auth_mechanism_name__ = actual_name  # type: ignore[attr-defined]
        return method

    return decorator


def login_always_fail(mechanism: str, login: bytes, password: bytes) -> bool:
    return False


def mechanism_name(attr_name: str, method: Any) -> str:
    """``auth_CRAM__MD5`` → ``CRAM-MD5`` unless the decorator named it."""
    return getattr(method, "__auth_mechanism_name__", attr_name.replace("__", "-"))


class AuthMixin:
    """The AUTH command and the built-in LOGIN and PLAIN mechanisms."""

    AuthLoginUsernameChallenge = "User Name\x00"
    AuthLoginPasswordChallenge = "Password\x00"
    #: Failed AUTH attempts allowed on one connection before it is closed
    #: with a 421, as Postfix does at its error limit; 0 (aiosmtpd's
    #: behaviour) allows any number.  A class attribute, like the other
    #: limits, so SMTP's signature stays aiosmtpd's.
    failed_auth_limit = 0
    _auth_failures = 0

    # Provided by SMTP.
    hostname: str
    session: Optional[Session]
    envelope: Optional[Envelope]
    _auth_methods: Dict[str, Any]
    _auth_require_tls: bool
    _authenticator: Optional[AuthenticatorType]
    _auth_callback: Optional[AuthCallbackType]

    if TYPE_CHECKING:

        async def push(self, status: Union[str, bytes]) -> None: ...
        async def _readline(self) -> Optional[bytes]: ...
        def _close(self) -> None: ...
        async def check_helo_needed(self, helo: str = "HELO") -> bool: ...
        async def _call_handler_hook(self, command: str, *args: Any) -> Any: ...
        @property
        def _tls_active(self) -> bool: ...

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: Optional[str]) -> None:
        if await self.check_helo_needed("EHLO"):
            return
        assert self.session is not None
        if not self.session.extended_smtp:
            await self.push("500 Error: command 'AUTH' not recognized")
            return
        if self._auth_require_tls and not self._tls_active:
            await self.push("538 5.7.11 Encryption required for requested authentication mechanism")
            return
        if self.session.authenticated:
            await self.push("503 Already authenticated")
            return
        if not arg:
            await self.push("501 Not enough value")
            return
        args = arg.split()
        if len(args) > 2:
            await self.push("501 Too many values")
            return
        mechanism = args[0]
        if mechanism not in self._auth_methods:
            await self.push("504 5.5.4 Unrecognized authentication type")
            return
        status = await self._call_handler_hook("AUTH", args)
        if status is MISSING:
            status = self._auth_status(await self._auth_methods[mechanism](self, args))
        if status is not None:
            await self.push(status)
        if not self.session.authenticated:
            await self._count_auth_failure()

    async def _count_auth_failure(self) -> None:
        self._auth_failures += 1
        if self.failed_auth_limit and self._auth_failures >= self.failed_auth_limit:
            assert self.session is not None
            log.warning("%r: too many failed AUTH attempts", self.session.peer)
            await self.push(f"421 4.7.0 {self.hostname} Error: too many failed AUTH attempts")
            self._close()

    def _auth_status(self, result: Any) -> Optional[str]:
        """Map a mechanism's return value to the reply (None: already sent)."""
        assert self.session is not None
        if isinstance(result, AuthResult):
            if result.success:
                self.session.authenticated = True
                self.session.auth_data = result.auth_data
                self.session._login_data = getattr(result.auth_data, "login", None)
                return result.message or CODE_SUCCESS
            if result.handled:
                return None
            return result.message or CODE_INVALID
        if result is None:
            return None
        if result is MISSING or result is False:
            return CODE_INVALID
        # A legacy mechanism returned its login data.  Unlike aiosmtpd
        # (issue #452) this counts as authenticated, or auth_required
        # would refuse the session forever.
        self.session.authenticated = True
        self.session._login_data = result
        return CODE_SUCCESS

    async def challenge_auth(
        self,
        challenge: Union[str, bytes],
        encode_to_b64: bool = True,
        log_client_response: bool = False,
    ) -> Union[_Missing, bytes]:
        """Send ``334 <challenge>`` and return the client's decoded answer,
        or MISSING after replying 501 (``*`` cancels; bad base64)."""
        raw = challenge.encode() if isinstance(challenge, str) else challenge
        await self.push(b"334 " + (b64encode(raw) if encode_to_b64 else raw))
        line = await self._readline()
        if line is None:
            return MISSING  # the client hung up: nothing to answer
        if log_client_response:
            warnings.warn("AUTH interaction logging is enabled!")
            warnings.warn("Sensitive information might be leaked!")
            log.debug(">> %r", line)
        blob = line.strip()
        if blob == b"*":
            assert self.session is not None
            log.warning("%r aborted AUTH with '*'", self.session.peer)
            await self.push("501 5.7.0 Auth aborted")
            return MISSING
        try:
            return b64decode(blob, validate=True)
        except binascii.Error:
            await self.push("501 5.5.2 Can't decode base64")
            return MISSING

    async def _auth_interact(self, server_message: str) -> Union[_Missing, bytes]:
        warnings.warn(
            "_auth_interact will be deprecated in version 2.0. Please use challenge_auth() instead.",
            DeprecationWarning,
        )
        return await self.challenge_auth(re.sub(r"^334 ", "", server_message), encode_to_b64=False)

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        if self._authenticator is not None:
            assert self.session is not None and self.envelope is not None
            result = self._authenticator(self, self.session, self.envelope, mechanism, auth_data)  # type: ignore[arg-type]
            if isinstance(result, AuthResult) and not result.success and result.handled:
                # A synchronous authenticator cannot have replied itself; with
                # aiosmtpd the default handled=True left the client waiting.
                return AuthResult(success=False, handled=False, message=result.message)
            return result
        assert self._auth_callback is not None
        if self._auth_callback(mechanism, *auth_data):
            return AuthResult(success=True, handled=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    async def _initial_or_challenge(self, args: List[str], challenge: str) -> Union[_Missing, bytes]:
        """The initial response given with AUTH, else the answer to ``challenge``."""
        if len(args) == 1:
            return await self.challenge_auth(challenge)
        try:
            return b64decode(args[1].encode(), validate=True)
        except binascii.Error:
            await self.push("501 5.5.2 Can't decode base64")
            return MISSING

    async def auth_PLAIN(self, _: Any, args: List[str]) -> AuthResult:
        blob = await self._initial_or_challenge(args, "")
        if isinstance(blob, _Missing):
            return AuthResult(success=False)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False)
        _authzid, login, password = parts
        return self._authenticate("PLAIN", LoginPassword(login, password))

    async def auth_LOGIN(self, _: Any, args: List[str]) -> AuthResult:
        login = await self._initial_or_challenge(args, self.AuthLoginUsernameChallenge)
        if isinstance(login, _Missing):
            return AuthResult(success=False)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if isinstance(password, _Missing):
            return AuthResult(success=False)
        return self._authenticate("LOGIN", LoginPassword(login, password))
