"""Gradual migration between the two faces, in both directions.

1. An ``SMTPServer`` (subclass) can be the *handler* of the modern server:
   ``handle_DATA_via_process_message`` (``SMTPServer.handle_DATA``) calls
   ``process_message`` with exactly the arguments stdlib smtpd passed.
2. Modern hooks (``handle_MAIL``, ``handle_RCPT``, ``handle_DATA`` ...;
   plain functions or coroutines) defined on an ``SMTPServer`` subclass are
   honoured by the legacy channel.  They receive the modern ``Session`` and
   ``Envelope`` classes, filled from the channel's state before the call and
   copied back after it, and a ``server`` object with ``push()``.  A hook
   runs where stdlib smtpd would accept the command, and its return value
   replaces smtpd's success reply.
"""

from __future__ import annotations

import atexit
import inspect
import threading
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, List, Optional, TypeVar, Union

from smtpd_compat import asynchat

if TYPE_CHECKING:
    import asyncio

    from smtpd_compat.modern.smtp import Envelope, Session
# asyncio and the modern face are imported only once a hook is used:
# `import smtpd_compat` stays about as quick as `import smtpd` was.

__all__ = [
    "NOT_UTF8_REPLY",
    "ChannelServer",
    "HookContext",
    "ehlo_hook_is_old",
    "find_hook",
    "handle_DATA_via_process_message",
    "legacy_data",
    "resolve",
]

T = TypeVar("T")
Text = Union[str, bytes]

#: Reply to a message that is not UTF-8 while ``decode_data`` is on
#: (stdlib smtpd raised UnicodeDecodeError and dropped the connection).
NOT_UTF8_REPLY = "554 Error: message is not valid UTF-8"


def legacy_data(unstuffed: bytes, decode: bool) -> Text:
    """Message content as stdlib smtpd handed it to ``process_message``:
    lines joined with ``"\\n"``, no final newline, ``str`` when ``decode``.

    ``unstuffed`` is the dot-unstuffed content without its last CRLF.
    Raises UnicodeDecodeError when ``decode`` and it is not UTF-8.
    """
    joined = unstuffed.replace(b"\r\n", b"\n")
    if decode:
        return joined.decode("utf-8")
    return joined


async def handle_DATA_via_process_message(self: Any, server: Any, session: Session, envelope: Envelope) -> str:
    """The modern ``handle_DATA`` hook of every ``SMTPServer``: deliver
    through ``process_message``, whose ``None`` means ``"250 OK"``."""
    original = envelope.original_content or b""
    if original.endswith(b"\r\n"):
        original = original[:-2]
    try:
        data = legacy_data(original, self._decode_data)
    except UnicodeDecodeError:
        return NOT_UTF8_REPLY
    kwargs: Dict[str, Any] = {}
    if not self._decode_data:
        kwargs = {"mail_options": envelope.mail_options, "rcpt_options": envelope.rcpt_options}
    if session.authenticated:  # as the legacy channel does (see extensions)
        kwargs["auth_data"] = session.auth_data
    status = self.process_message(session.peer, envelope.mail_from, envelope.rcpt_tos, data, **kwargs)
    if inspect.isawaitable(status):
        status = await status
    return status or "250 OK"


def ehlo_hook_is_old(hook: Callable[..., Any]) -> bool:
    """True for the deprecated 4-argument ``handle_EHLO``."""
    from smtpd_compat.modern.hooks import ehlo_hook_version

    return ehlo_hook_version(hook) == "old"


def find_hook(server: Any, verb: str) -> Optional[Callable[..., Any]]:
    """``server.handle_<verb>`` if its class defines one (looking at the
    class keeps test doubles such as ``Mock()`` servers hook-free)."""
    name = "handle_" + verb
    defined = getattr(type(server), name, None)
    if defined is None or defined is handle_DATA_via_process_message:
        return None
    hook: Callable[..., Any] = getattr(server, name)
    return hook


# -- running coroutine hooks from the (synchronous) asyncore world --------------------

_hook_loop: Optional["asyncio.AbstractEventLoop"] = None
# Re-entrant: a hook may (indirectly) resolve another hook's coroutine.
_hook_loop_lock = threading.RLock()


def hook_loop() -> asyncio.AbstractEventLoop:
    """The event loop coroutine hooks run on (also ``Session.loop``)."""
    import asyncio

    global _hook_loop
    with _hook_loop_lock:
        if _hook_loop is None or _hook_loop.is_closed():
            _hook_loop = asyncio.new_event_loop()
            atexit.register(_hook_loop.close)
        return _hook_loop


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def resolve(result: Any) -> Any:
    """``result``, or what it evaluates to when it is awaitable."""
    if not inspect.isawaitable(result):
        return result
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = hook_loop()
        with _hook_loop_lock:
            return loop.run_until_complete(_awaited(result))
    # Called from inside a running loop (this thread's): use a fresh one elsewhere.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _awaited(result)).result()


class ChannelServer:
    """What a hook receives as ``server``: the parts of the modern ``SMTP``
    object hooks use, over a legacy channel."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    @property
    def hostname(self) -> str:
        name: str = self.channel.fqdn
        return name

    @property
    def event_handler(self) -> Any:
        return self.channel.smtp_server

    async def push(self, status: Union[str, bytes]) -> None:
        if isinstance(status, str):
            self.channel.push(status)
        else:
            asynchat.async_chat.push(self.channel, status + b"\r\n")


class HookContext:
    """A channel's ``Session`` and ``Envelope``, synchronised around each hook call."""

    def __init__(self, channel: Any) -> None:
        from smtpd_compat.modern.smtp import Envelope, Session

        self._new_envelope = Envelope
        self._new_session = Session
        self.channel = channel
        self.server = ChannelServer(channel)
        self.session = Session(hook_loop())
        self.envelope = Envelope()

    def new_session(self) -> None:
        """A fresh session, as the modern server makes one after STARTTLS."""
        self.session = self._new_session(hook_loop())

    def new_transaction(self) -> None:
        """A fresh envelope, as the modern server makes one after RSET, HELO/EHLO and DATA."""
        self.envelope = self._new_envelope()

    def set_content(self, unstuffed: bytes, decode: bool) -> None:
        """Fill ``content``/``original_content`` as the modern server does
        (CRLF line ends, the last one included)."""
        original = unstuffed + b"\r\n" if unstuffed else b""
        self.envelope.original_content = original
        self.envelope.content = original.decode("utf-8") if decode else original

    def call(self, hook: Callable[..., Any], *args: Any) -> Any:
        channel, session, envelope = self.channel, self.session, self.envelope
        session.peer = channel.peer
        session.host_name = channel.seen_greeting or None
        session.extended_smtp = channel.extended_smtp
        ext = channel._extensions()
        if ext is not None:
            session.authenticated = ext.authenticated
            session.auth_data = ext.auth_data
            session.ssl = ext.ssl
        envelope.mail_from = channel.mailfrom
        envelope.rcpt_tos = channel.rcpttos
        envelope.mail_options = getattr(channel, "mail_options", [])
        envelope.rcpt_options = getattr(channel, "rcpt_options", [])
        envelope.smtp_utf8 = channel.require_SMTPUTF8
        try:
            return resolve(hook(self.server, session, envelope, *args))
        finally:
            channel.seen_greeting = session.host_name or ""
            channel.mailfrom = envelope.mail_from
            channel.rcpttos = envelope.rcpt_tos
            channel.mail_options = envelope.mail_options
            channel.rcpt_options = envelope.rcpt_options
            channel.require_SMTPUTF8 = envelope.smtp_utf8

    def status(self, hook: Callable[..., Any], *args: Any) -> str:
        """Call a hook that returns a reply; ``None`` means ``"250 OK"``."""
        reply = self.call(hook, *args)
        return "250 OK" if reply is None else str(reply)

    def lines(self, hook: Callable[..., Any], *args: Any) -> List[str]:
        """Call a hook that returns reply lines (the 5-argument ``handle_EHLO``)."""
        reply = self.call(hook, *args)
        if reply is None:
            return []
        if isinstance(reply, str):
            return [reply]
        return list(reply)
