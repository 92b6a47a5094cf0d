"""Gradual migration between the two faces, in both directions.

1. An ``SMTPServer`` (subclass) can be the *handler* of the modern server:
   ``handle_DATA_via_process_message`` (``SMTPServer.handle_DATA``) calls
   ``process_message`` with exactly the arguments stdlib smtpd passed.
2. Modern hooks (``handle_MAIL``, ``handle_RCPT``, ``handle_DATA`` ...;
   plain functions or coroutines) defined on an ``SMTPServer`` subclass are
   honoured by the legacy channel.  They receive a modern ``Session`` and
   ``Envelope`` whose fields are views of the channel's stdlib attributes
   (``seen_greeting``, ``mailfrom``, ``rcpttos`` ...: one copy of the state),
   and a ``server`` object with ``push()``.  A hook
   runs where stdlib smtpd would accept the command, and its return value
   replaces smtpd's success reply.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, List, Optional, TypeVar, Union

from smtpd_compat import asynchat
from smtpd_compat.common.hooks import ehlo_hook_version
from smtpd_compat.common.session import Envelope, Session

if TYPE_CHECKING:
    import asyncio
# asyncio is imported only once a coroutine hook runs: `import smtpd_compat`
# stays about as quick as `import smtpd` was.

__all__ = [
    "NOT_UTF8_REPLY",
    "ChannelServer",
    "HookContext",
    "ehlo_hook_is_old",
    "find_hook",
    "handle_DATA_via_process_message",
    "legacy_data",
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


# -- the hook's view of a channel ------------------------------------------------------


class _View:
    """An attribute of a Session/Envelope that is a channel's attribute: the
    channel keeps the one copy, so stdlib code (and subclasses) reading or
    assigning ``mailfrom``, ``rcpttos``... and hooks see the same state."""

    def __init__(self, name: str, default: Any = None, empty: Any = None) -> None:
        self.name = name
        self.default = default  # for attributes smtpd sets late (mail_options)
        self.empty = empty  # seen_greeting's "" is host_name's None

    def __get__(self, view: Any, owner: Any = None) -> Any:
        channel = view._channel
        if self.default is not None and not hasattr(channel, self.name):
            setattr(channel, self.name, self.default())
        value = getattr(channel, self.name)
        return None if self.empty is not None and value == self.empty else value

    def __set__(self, view: Any, value: Any) -> None:
        setattr(view._channel, self.name, self.empty if value is None and self.empty is not None else value)


class _ExtensionView:
    """A Session attribute kept by the channel's TLS/AUTH state, when the
    server turned those on; a plain attribute otherwise."""

    def __init__(self, name: str, default: Any) -> None:
        self.name = name
        self.default = default

    def __get__(self, view: Any, owner: Any = None) -> Any:
        ext = view._channel._extensions()
        if ext is not None:
            return getattr(ext, self.name)
        return view.__dict__.get(self.name, self.default)

    def __set__(self, view: Any, value: Any) -> None:
        ext = view._channel._extensions()
        if ext is not None:
            setattr(ext, self.name, value)
        else:
            view.__dict__[self.name] = value


class ChannelSession(Session):
    """The modern ``Session`` over a legacy channel (no copy of its state)."""

    peer = _View("peer")
    host_name = _View("seen_greeting", empty="")
    extended_smtp = _View("extended_smtp")
    authenticated = _ExtensionView("authenticated", None)
    auth_data = _ExtensionView("auth_data", None)
    ssl = _ExtensionView("ssl", None)

    def __init__(self, channel: Any, hooks: "HookContext") -> None:
        # Not Session.__init__: it would reset the channel's state.
        self._channel = channel
        self._hooks = hooks
        self.proxy_data = None
        self._login_data = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The channel's own loop, made on first use (see ``HookContext``)."""
        return self._hooks.loop()

    @loop.setter
    def loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._hooks.use_loop(loop)


class ChannelEnvelope(Envelope):
    """The modern ``Envelope`` over a legacy channel's transaction."""

    mail_from = _View("mailfrom")
    rcpt_tos = _View("rcpttos")
    mail_options = _View("mail_options", default=list)
    rcpt_options = _View("rcpt_options", default=list)
    smtp_utf8 = _View("require_SMTPUTF8")

    def __init__(self, channel: Any) -> None:
        # Not Envelope.__init__: it would reset the channel's transaction.
        self._channel = channel
        self.content: Union[None, bytes, str] = None
        self.original_content: Optional[bytes] = None


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


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


class HookContext:
    """A channel's hooks: its ``server``, ``Session`` and ``Envelope`` views,
    and the event loop its coroutine hooks run on.

    The loop is the channel's own, made when first needed and closed with
    the channel: a hook that blocks or keeps state on its loop affects no
    other connection, and no lock is shared between server threads.
    """

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.server = ChannelServer(channel)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.session = ChannelSession(channel, self)
        self.envelope = ChannelEnvelope(channel)

    def loop(self) -> asyncio.AbstractEventLoop:
        """This channel's event loop (also ``session.loop``)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            import asyncio

            loop = self._loop = asyncio.new_event_loop()
            weakref.finalize(self, loop.close)
        return loop

    def use_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run this channel's coroutine hooks on ``loop`` (not closed here)."""
        self.close()
        self._loop = loop

    def close(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_running():  # (a hook closing its own channel)
            loop.close()

    def new_session(self) -> None:
        """A fresh session, as the modern server makes one after STARTTLS."""
        self.session = ChannelSession(self.channel, self)

    def new_transaction(self) -> None:
        """A fresh envelope, as the modern server makes one after RSET, HELO/EHLO and DATA."""
        self.envelope = ChannelEnvelope(self.channel)

    def set_content(self, unstuffed: bytes, decode: bool) -> None:
        """Fill ``content``/``original_content`` as the modern server does
        (CRLF line ends, the last one included)."""
        original = unstuffed + b"\r\n" if unstuffed else b""
        self.envelope.original_content = original
        self.envelope.content = original.decode("utf-8") if decode else original

    def call(self, hook: Callable[..., Any], *args: Any) -> Any:
        return self.resolve(hook(self.server, self.session, self.envelope, *args))

    def resolve(self, result: Any) -> Any:
        """``result``, or what it evaluates to when it is awaitable."""
        if not inspect.isawaitable(result):
            return result
        import asyncio

        loop = self.loop()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return loop.run_until_complete(_awaited(result))
        # The asyncore loop runs inside a coroutine of this thread's event
        # loop: this channel's loop can only run in another thread.
        outcome: List[Any] = []

        def run() -> None:
            try:
                outcome.append((True, loop.run_until_complete(_awaited(result))))
            except BaseException as error:  # re-raised in the channel's thread
                outcome.append((False, error))

        worker = threading.Thread(target=run, name="smtpd_compat hook")
        worker.start()
        worker.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

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
