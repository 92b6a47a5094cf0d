"""SMTP AUTH (RFC 4954) for the modern SMTP class: results, mechanisms,
challenges.  ``AuthMixin`` adds the AUTH command to the session protocol
(``protocol.SMTPProtocol``), and ``smtp.SMTP`` builds on it; it uses the
protocol's ``push``/``_readline``/hook primitives, never the transport.
What AUTH accepts and answers is the engine's (``engine.sasl``)."""

from __future__ import annotations

import inspect
import logging
import re
import warnings
from functools import partial
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Union

from ..common.hooks import bind_prefixed
from ..common.session import MISSING, Envelope, Session, _Missing
from ..engine import sasl
from ..engine.sasl import AuthResult, LoginPassword, SaslFailure
from .hooks import syntax
from .protocol import SMTPProtocol

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
AuthMechanismType = Callable[[SMTPProtocol, List[str]], Awaitable[Any]]

# AuthResult and LoginPassword live in the engine: the legacy face uses them too.
AuthenticatorType = Callable[[SMTPProtocol, Session, Envelope, str, Any], AuthResult]


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


class AuthMixin(SMTPProtocol):
    """The AUTH command and the built-in LOGIN and PLAIN mechanisms."""

    AuthLoginUsernameChallenge = sasl.LOGIN_USERNAME_CHALLENGE
    AuthLoginPasswordChallenge = sasl.LOGIN_PASSWORD_CHALLENGE
    #: Failed AUTH attempts allowed on one connection before it is closed
    #: with a 421, as Postfix does at its error limit; 0 (aiosmtpd's
    #: behaviour) allows any number.  A class attribute, like the other
    #: limits, so SMTP's signature stays aiosmtpd's.
    failed_auth_limit = 0
    _auth_failures = 0

    def _init_auth(
        self,
        auth_required: bool,
        auth_require_tls: bool,
        auth_exclude_mechanism: Optional[Iterable[str]],
        auth_callback: Optional[AuthCallbackType],
        authenticator: Optional[AuthenticatorType],
    ) -> None:
        if auth_required and not auth_require_tls:
            warnings.warn("Requiring AUTH while not requiring TLS can lead to security vulnerabilities!")
            log.warning("auth_required == True but auth_require_tls == False")
        self._auth_require_tls = auth_require_tls
        self._auth_required = auth_required
        self._authenticator = authenticator
        self._auth_callback = None if authenticator is not None else auth_callback or login_always_fail
        # Found when first needed (EHLO over TLS, AUTH): most connections
        # never ask, and the table costs memory per connection.
        self._auth_exclude = tuple(auth_exclude_mechanism or ())
        self._auth_methods_found: Optional[Dict[str, Any]] = None
        if log.isEnabledFor(logging.INFO):
            log.info(
                "Available AUTH mechanisms: %s",
                " ".join(
                    name + "(builtin)" if getattr(method, "__self__", None) is self else name
                    for name, method in sorted(self._auth_methods.items())
                ),
            )

    @property
    def _auth_methods(self) -> Dict[str, Any]:
        """AUTH mechanism name -> bound method; a handler's override the
        built-in ones, then ``auth_exclude_mechanism`` removes names."""
        methods = self._auth_methods_found
        if methods is None:
            methods = {}
            # The server's mechanisms are methods of its class; a handler's
            # may also be set on the instance.
            for owner, instance_too in ((self, False), (self.event_handler, True)):
                for name, method in bind_prefixed(owner, "auth_", instance_too).items():
                    methods[mechanism_name(name, method)] = method
            for name in self._auth_exclude:
                methods.pop(name, None)
            self._auth_methods_found = methods
        return methods

    @_auth_methods.setter
    def _auth_methods(self, methods: Dict[str, Any]) -> None:
        self._auth_methods_found = methods

    async def check_auth_needed(self, caller_method: str) -> bool:
        assert self.session is not None
        if self._auth_required and not self.session.authenticated:
            log.info("%s: Authentication required", caller_method)
            await self.push(sasl.AUTH_REQUIRED)
            return True
        return False

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: Optional[str]) -> None:
        if await self.check_helo_needed("EHLO"):
            return
        assert self.session is not None
        try:
            args = sasl.auth_arguments(
                arg,
                extended=self.session.extended_smtp,
                require_tls=self._auth_require_tls,
                tls_active=self._tls_active,
                authenticated=bool(self.session.authenticated),
                mechanisms=self._auth_methods,
            )
        except SaslFailure as failure:
            await self.push(failure.reply)
            return
        mechanism = args[0]
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
            return sasl.reply_for(result)
        if result is None:
            return None
        if result is MISSING or result is False:
            return sasl.CODE_INVALID
        # A legacy mechanism returned its login data.  Unlike aiosmtpd
        # (issue #452) this counts as authenticated, or auth_required
        # would refuse the session forever.
        self.session.authenticated = True
        self.session._login_data = result
        return sasl.CODE_SUCCESS

    async def challenge_auth(
        self,
        challenge: Union[str, bytes],
        encode_to_b64: bool = True,
        log_client_response: bool = False,
    ) -> Union[_Missing, bytes]:
        """Send ``334 <challenge>`` and return the client's decoded answer,
        or MISSING after replying 501 (``*`` cancels; bad base64)."""
        raw = challenge.encode() if isinstance(challenge, str) else challenge
        await self.push(sasl.challenge_line(raw, encode_to_b64))
        line = await self._readline()
        if line is None:
            return MISSING  # the client hung up: nothing to answer
        if log_client_response:
            warnings.warn("AUTH interaction logging is enabled!")
            warnings.warn("Sensitive information might be leaked!")
            log.debug(">> %r", line)
        try:
            return sasl.decode_response(line)
        except SaslFailure as failure:
            if failure.reply == sasl.ABORTED:
                assert self.session is not None
                log.warning("%r aborted AUTH with '*'", self.session.peer)
            await self.push(failure.reply)
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
            result = self._authenticator(self, self.session, self.envelope, mechanism, auth_data)
            return sasl.synchronous(result)  # type: ignore[no-any-return]
        assert self._auth_callback is not None
        if self._auth_callback(mechanism, *auth_data):
            return AuthResult(success=True, handled=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    async def _converse(
        self, mechanism: str, args: List[str], start: Callable[[Optional[bytes]], sasl.Conversation]
    ) -> AuthResult:
        """Run one of the engine's mechanisms, challenge by challenge."""
        try:
            conversation = start(sasl.initial_response(args))
            answer: Optional[bytes] = None
            while True:
                challenge = conversation.send(answer)  # type: ignore[arg-type]  # None starts it
                reply = await self.challenge_auth(challenge)
                if isinstance(reply, _Missing):
                    return AuthResult(success=False)
                answer = reply
        except StopIteration as done:
            credentials = done.value
        except SaslFailure as failure:
            await self.push(failure.reply)
            return AuthResult(success=False)
        result: Any = self._authenticate(mechanism, credentials)
        if inspect.isawaitable(result):
            # aiosmtpd took an async authenticator's coroutine object for a
            # successful login; it is awaited and judged here.
            result = sasl.synchronous(await result)
        return result  # type: ignore[no-any-return]

    async def auth_PLAIN(self, _: Any, args: List[str]) -> AuthResult:
        return await self._converse("PLAIN", args, sasl.plain)

    async def auth_LOGIN(self, _: Any, args: List[str]) -> AuthResult:
        return await self._converse(
            "LOGIN",
            args,
            partial(
                sasl.login,
                username_challenge=self.AuthLoginUsernameChallenge,
                password_challenge=self.AuthLoginPasswordChallenge,
            ),
        )
