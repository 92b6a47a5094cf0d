"""Run an SMTP server in the background, name for name with ``aiosmtpd.controller``.

Differences from aiosmtpd 1.4.6, all fixes of reported bugs:

* ``port=0`` works: after ``start()`` the ``port`` attribute holds the bound port.
* No self-connection at start.  ``factory()`` is called once, eagerly, in the
  loop, so a broken factory raises from ``start()``/``begin()``.
* A bind error (port in use) raises from ``start()`` at once, not after the
  ready timeout.
* Restartable: when no loop was supplied, each ``start()`` gets a fresh loop.
* ``loop_factory=`` (an addition) makes those loops: ``"uvloop"`` serves on
  uvloop (the ``uvloop`` extra), as does ``loop=uvloop.new_event_loop()``.
* Stopping cancels only this controller's sessions and closes their
  connections; a supplied loop is left open and its other tasks untouched.
* ``stop()`` always returns: it waits at most ``stop_timeout`` for the
  server thread, then warns (``RuntimeWarning``) and leaves it as a daemon.

Subclasses written for aiosmtpd 1.4.6 keep working, its override points with
its contracts: ``_run(ready_event)`` runs in the thread, binds (through
``_create_server()`` or its own ``loop.create_server(self._factory_invoker,
...)``), sets ``server``, schedules ``ready_event.set``, runs the loop until
``cancel_tasks()`` stops it and may close the loop; after ``ready_event``,
``start()`` calls ``_trigger_server()`` if no ``factory()`` call has happened
yet (ours asks the loop to call ``_factory_invoker()``, without connecting);
``stop()`` has the loop call ``cancel_tasks()`` then joins ``_thread``.  The
built-in ``_run()`` makes the factory itself, so ``_trigger_server()`` is
only called after a ``_run()`` written that way.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import threading
import time
from abc import ABCMeta, abstractmethod
from contextlib import suppress
from pathlib import Path
from socket import AF_INET6, SOCK_STREAM, has_ipv6
from socket import socket as makesock
from types import TracebackType
from typing import Any, Awaitable, Dict, Literal, Optional, Type, TypeVar, Union
from warnings import warn
from weakref import WeakSet

from smtpd_compat.common.loops import DEFAULT_LOOP, LoopChoice
from smtpd_compat.common.loops import close as close_loop
from smtpd_compat.common.loops import loop_factory as loop_factory_for
from smtpd_compat.modern.smtp import SMTP

__all__ = [
    "BaseController",
    "BaseThreadedController",
    "BaseUnthreadedController",
    "Controller",
    "IP6_IS",
    "InetMixin",
    "UnixSocketController",
    "UnixSocketMixin",
    "UnixSocketUnthreadedController",
    "UnthreadedController",
    "get_localhost",
]

DEFAULT_READY_TIMEOUT: float = 5.0
#: Longest wait, when stopping, for connections we could not close ourselves.
_CLOSE_GRACE = 1.0

_ThreadedT = TypeVar("_ThreadedT", bound="BaseThreadedController")
_UnthreadedT = TypeVar("_UnthreadedT", bound="BaseUnthreadedController")


class IP6_IS:
    """errno values of a ``::1`` bind that tell whether IPv6 is usable.

    The sets are deliberately mutable so users can adapt them to odd systems.
    """

    NO = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}
    YES = {errno.EADDRINUSE}


def _has_ipv6() -> bool:
    # A function, not a constant, so tests can pretend IPv6 is missing.
    return has_ipv6


def get_localhost() -> Literal["::1", "127.0.0.1"]:
    """The numeric loopback address to use: ``::1`` if IPv6 works, else IPv4."""
    if not _has_ipv6():
        return "127.0.0.1"
    try:
        with makesock(AF_INET6, SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as e:
        if e.errno in IP6_IS.NO:
            return "127.0.0.1"
        if e.errno in IP6_IS.YES:
            return "::1"
        raise
    return "::1"


def _server_to_client_ssl_ctx(server_ctx: ssl.SSLContext) -> ssl.SSLContext:
    """A client context able to talk to a server using ``server_ctx``.

    It does not verify the certificate: it is meant for tests and local probes.
    """
    client_ctx = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH)
    client_ctx.options = server_ctx.options
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    return client_ctx


class _FakeServer(asyncio.Protocol):
    """Serves a connection for which ``factory()`` failed: it hangs up at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()



class BaseController(metaclass=ABCMeta):
    #: The SMTP instance most recently made by ``factory()``.
    smtpd: Any = None
    server: Optional[asyncio.AbstractServer] = None
    server_coro: Optional[Awaitable[asyncio.AbstractServer]] = None
    _thread_exception: Optional[BaseException] = None
    _factory_made_eagerly = False

    def __init__(
        self,
        handler: Any,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        *,
        ssl_context: Optional[ssl.SSLContext] = None,
        server_hostname: Optional[str] = None,
        ssl_handshake_timeout: Optional[float] = None,
        loop_factory: LoopChoice = DEFAULT_LOOP,
        **SMTP_parameters: Any,
    ) -> None:
        self.handler = handler
        #: Makes the loop when none was supplied (``"asyncio"``, ``"uvloop"``
        #: or a callable; see ``smtpd_compat.common.loops``); worker
        #: processes serving this controller's settings use it too.
        self.loop_factory = loop_factory_for(loop_factory)
        #: Seconds an SMTPS client may take over its TLS handshake (None:
        #: ``SMTP.ssl_handshake_timeout`` when ``factory()`` is the stock one,
        #: else asyncio's 60), so a client that never sends its ClientHello
        #: is dropped.
        self.ssl_handshake_timeout = ssl_handshake_timeout
        # A loop we create is ours to replace when closed and to close at stop.
        self._loop = loop
        self._owns_loop = loop is None
        self.ssl_context = ssl_context
        self.SMTP_kwargs: Dict[str, Any] = {}
        if "server_kwargs" in SMTP_parameters:
            warn(
                "server_kwargs will be removed in version 2.0. "
                "Just specify the keyword arguments to forward to SMTP "
                "as kwargs to this __init__ method.",
                DeprecationWarning,
            )
            self.SMTP_kwargs = dict(SMTP_parameters.pop("server_kwargs"))
        self.SMTP_kwargs.update(SMTP_parameters)
        if server_hostname:
            self.SMTP_kwargs["hostname"] = server_hostname
        # aiosmtpd's controllers enable SMTPUTF8 although SMTP itself does not.
        self.SMTP_kwargs.setdefault("enable_SMTPUTF8", True)
        self._factory_invoked = threading.Event()
        self._sessions: WeakSet[Any] = WeakSet()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        # Made on first use so a controller that never runs leaks no loop.
        if self._loop is None:
            self._loop = self.loop_factory()
        return self._loop

    @loop.setter
    def loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._owns_loop = False

    def _renew_loop_if_closed(self) -> None:
        if self._owns_loop and self._loop is not None and self._loop.is_closed():
            self._loop = None

    def factory(self) -> Any:
        """Make the protocol for one connection; override for LMTP or subclasses."""
        return SMTP(self.handler, **self.SMTP_kwargs)

    def _factory_invoker(self) -> Any:
        """Call ``factory()``; on failure record the error and refuse the client."""
        try:
            self.smtpd = self.factory()
            if self.smtpd is None:
                raise RuntimeError("factory() returned None")
            self._sessions.add(self.smtpd)
            return self.smtpd
        except Exception as err:
            self._thread_exception = err
            return _FakeServer(self.loop)
        finally:
            self._factory_invoked.set()

    def _tls_listener(self) -> Dict[str, Any]:
        """``create_server``'s TLS keywords: ``ssl``, and with it the
        handshake timeout (asyncio refuses one without ``ssl``)."""
        if self.ssl_context is None:
            return {"ssl": None}
        timeout = self.ssl_handshake_timeout
        if timeout is None and type(self).factory is BaseController.factory:
            timeout = SMTP.ssl_handshake_timeout
        if timeout is None:
            return {"ssl": self.ssl_context}
        return {"ssl": self.ssl_context, "ssl_handshake_timeout": timeout}

    @abstractmethod
    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        """Return an awaitable that binds the listener, with ``_factory_invoker``
        as the protocol factory."""

    async def _open(self, bound: Optional[threading.Event] = None) -> None:
        """Bind, then make one protocol eagerly so a broken factory fails now."""
        self.server_coro = self._create_server()
        self.server = await self.server_coro
        # Before ``bound``: start() must not trigger a factory call of its own.
        self._factory_made_eagerly = True
        if bound is not None:
            bound.set()
        self._factory_invoker()
        error = self._thread_exception
        if error is not None:
            await self._close_server()
            raise error

    def _close_sessions(self) -> None:
        # A protocol that is still connected holds a transport; cut it and
        # cancel its command loop, whichever the protocol exposes.
        for protocol in list(self._sessions):
            transport = getattr(protocol, "transport", None)
            if transport is not None and not transport.is_closing():
                transport.abort()
            task = getattr(protocol, "_handler_coroutine", None)
            if task is not None and not task.done():
                task.cancel()
        self._sessions.clear()

    async def _close_server(self) -> None:
        server = self.server
        if server is None:
            return
        server.close()
        self._close_sessions()
        # Connections still in the SMTPS handshake have no protocol we could
        # reach yet; Python 3.13+ can abort them through the server.
        abort_clients = getattr(server, "abort_clients", None)
        if abort_clients is not None:
            abort_clients()
        # Python 3.12+ waits here for every connection to go, including such
        # handshakes on 3.12: bound the wait.  Older versions return at once.
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), _CLOSE_GRACE)
        # One more loop pass lets the connection_lost() callbacks run.
        await asyncio.sleep(0)

    def _cleanup(self) -> None:
        """Forget per-run state so the controller can start again."""
        self._thread_exception = None
        self._factory_made_eagerly = False
        self._factory_invoked.clear()
        self.server_coro = None
        self.server = None
        self.smtpd = None

    def cancel_tasks(self, stop_loop: bool = True) -> None:
        """Stop the loop (optionally) and end this controller's sessions.

        Call it in the loop's thread, e.g. via ``loop.call_soon_threadsafe``.
        Unlike aiosmtpd, tasks that are not this controller's are left alone.
        """
        if stop_loop:
            self.loop.stop()
        self._close_sessions()


class BaseThreadedController(BaseController, metaclass=ABCMeta):
    """Runs the server's loop in a daemon thread between ``start()`` and ``stop()``."""

    _thread: Optional[threading.Thread] = None
    #: Longest wait in ``stop()`` for the server thread to end; then it is
    #: left running as a daemon thread, with a ``RuntimeWarning``.
    stop_timeout: float = 10.0

    def __init__(
        self,
        handler: Any,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        *,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        ssl_context: Optional[ssl.SSLContext] = None,
        server_hostname: Optional[str] = None,
        **SMTP_parameters: Any,
    ) -> None:
        super().__init__(
            handler,
            loop,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            **SMTP_parameters,
        )
        self.ready_timeout = float(os.getenv("AIOSMTPD_CONTROLLER_TIMEOUT", ready_timeout))

    async def _serve(self, ready_event: threading.Event) -> None:
        try:
            await self._open(ready_event)
            # Serve until cancel_tasks() stops the loop (see _run).
            await asyncio.get_running_loop().create_future()
        finally:
            await self._close_server()

    def _run(self, ready_event: threading.Event) -> None:
        """The server thread: bind and make the factory, signal ready, serve
        until ``cancel_tasks()`` stops the loop, then close."""
        loop = self.loop
        asyncio.set_event_loop(loop)
        serving = loop.create_task(self._serve(ready_event))
        try:
            try:
                loop.run_until_complete(serving)
            except RuntimeError:
                if serving.done():
                    raise
                # The loop was stopped under us: wind the server down.
                serving.cancel()
                with suppress(asyncio.CancelledError):
                    loop.run_until_complete(serving)
        except Exception as error:
            self._thread_exception = error
        finally:
            self._release_loop(loop)

    def _release_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._owns_loop:
            close_loop(loop)
        asyncio.set_event_loop(None)

    def _thread_main(self, ready_event: threading.Event) -> None:
        try:
            self._run(ready_event)
        except Exception as error:
            if ready_event.is_set():
                raise  # start() has returned: threading reports it
            self._thread_exception = error
        finally:
            # A _run() that failed without saying so (aiosmtpd's returns
            # early on a bind error) must not leave start() waiting it out.
            ready_event.set()

    def _trigger_server(self) -> None:
        """Make ``factory()`` run once, so that ``start()`` reports its errors.

        aiosmtpd 1.4.6 connected to its own server here, which broke
        ``port=0`` and wildcard addresses; this asks the loop's thread to call
        ``_factory_invoker()``.  Overrides may still connect.
        """
        self.loop.call_soon_threadsafe(self._factory_invoker)

    def start(self) -> None:
        """Start the server in a thread; return once it accepts connections."""
        if self._thread is not None and not self._thread.is_alive():
            # A failed start() leaves its finished thread for stop(); allow a retry.
            self._thread = None
        assert self._thread is None, "SMTP daemon already running"
        self._cleanup()
        self._renew_loop_if_closed()
        if self.loop.is_closed():
            raise RuntimeError("Event loop is closed")
        ready_event = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, args=(ready_event,), daemon=True)
        self._thread.start()
        self._wait_until_serving(ready_event)

    def _wait_until_serving(self, ready_event: threading.Event) -> None:
        deadline = time.monotonic() + self.ready_timeout
        if not ready_event.wait(self.ready_timeout):
            raise TimeoutError(
                "SMTP server failed to start within allotted time. "
                "This might happen if the system is too busy. "
                "Try increasing the `ready_timeout` parameter."
            )
        if self._thread_exception is None:
            if not self._factory_made_eagerly:
                # A _run() in aiosmtpd's style binds without making a protocol.
                with suppress(socket.timeout):
                    self._trigger_server()
            if not self._factory_invoked.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(
                    "SMTP server started, but not responding within allotted time. "
                    "This might happen if the system is too busy. "
                    "Try increasing the `ready_timeout` parameter."
                )
        if self._thread_exception is not None:
            # An aiosmtpd-style _run() still serves after a factory error.
            self._end_thread()
            raise self._thread_exception
        if self.smtpd is None:
            raise RuntimeError("Unknown Error, failed to init SMTP server")

    def _end_thread(self) -> None:
        """Have the loop call ``cancel_tasks()``, then wait for the thread,
        at most ``stop_timeout``: a ``_run()`` that never returns is warned
        about and left behind as the daemon thread it is."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        def cancel_in_server_thread() -> None:
            # Should the thread end first, a supplied loop keeps this
            # callback; it must not stop the loop's next user.
            if threading.current_thread() is thread:
                self.cancel_tasks()

        loop = self._loop
        if loop is not None:
            with suppress(RuntimeError):  # closed: the thread is ending anyway
                loop.call_soon_threadsafe(cancel_in_server_thread)
        thread.join(self.stop_timeout)
        if thread.is_alive():
            warn(
                f"the SMTP server thread {thread.name!r} did not end within "
                f"{self.stop_timeout:g} s of being asked to stop (does an overridden "
                "_run() or cancel_tasks() ignore it?); it is left running as a daemon thread",
                RuntimeWarning,
                stacklevel=3,
            )

    def stop(self, no_assert: bool = False) -> None:
        """Close the listener and all sessions, and end the thread."""
        assert no_assert or self._thread is not None, "SMTP daemon not running"
        self._end_thread()
        self._thread = None
        self._cleanup()

    def __enter__(self: _ThreadedT) -> _ThreadedT:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()


class BaseUnthreadedController(BaseController, metaclass=ABCMeta):
    """Adds the server to a loop that the caller runs.

    From synchronous code: ``begin()``, run the loop, then ``end()``.
    From a coroutine: ``await start_serving()`` and ``await finalize()``,
    or ``async with controller:``.
    """

    _finalizing: Optional["asyncio.Task[None]"] = None

    def __init__(
        self,
        handler: Any,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        *,
        ssl_context: Optional[ssl.SSLContext] = None,
        server_hostname: Optional[str] = None,
        **SMTP_parameters: Any,
    ) -> None:
        super().__init__(
            handler,
            loop,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            **SMTP_parameters,
        )
        self.ended = threading.Event()

    def begin(self) -> None:
        """Bind the server on ``self.loop`` without running the loop."""
        self._cleanup()
        self._renew_loop_if_closed()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._open())

    async def start_serving(self) -> None:
        """``begin()`` for callers already inside the running loop."""
        running = asyncio.get_running_loop()
        if self._loop is not running:
            if not self._owns_loop:
                raise RuntimeError("the controller was given a different event loop")
            if self._loop is not None:
                self._loop.close()
            self.loop = running
        self._cleanup()
        await self._open()

    async def finalize(self) -> None:
        """Close the listener and this controller's sessions."""
        self.ended.clear()
        assert self.server is not None
        await self._close_server()
        self._cleanup()
        self.ended.set()

    def end(self) -> None:
        """Run ``finalize()``: scheduled if the loop runs, else to completion.

        With the loop in another thread, call this via ``call_soon_threadsafe``
        and wait on ``ended``.
        """
        self.ended.clear()
        if self.loop.is_running():
            # Keep a reference: the loop holds tasks only weakly.
            self._finalizing = self.loop.create_task(self.finalize())
        else:
            self.loop.run_until_complete(self.finalize())

    async def __aenter__(self: _UnthreadedT) -> _UnthreadedT:
        await self.start_serving()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.finalize()


class InetMixin(BaseController, metaclass=ABCMeta):
    """Listen on TCP ``hostname:port``; ``hostname=""`` means every interface."""

    def __init__(
        self,
        handler: Any,
        hostname: Optional[str] = None,
        port: int = 8025,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, loop, **kwargs)
        self.hostname = get_localhost() if hostname is None else hostname
        self.port = port

    @property
    def _localhost(self) -> str:
        # aiosmtpd's attribute: self-connecting _trigger_server() overrides
        # copied from it connect to ``self.hostname or self._localhost``.
        return get_localhost()

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self._bind_inet()

    async def _bind_inet(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.port, **self._tls_listener()
        )
        if self.port == 0:
            ports = [sock.getsockname()[1] for sock in server.sockets]
            if len(set(ports)) > 1:
                # Each address family drew its own ephemeral port; rebind all
                # on the first one so one port number reaches every address.
                server.close()
                await server.wait_closed()
                server = await self.loop.create_server(
                    self._factory_invoker, host=self.hostname, port=ports[0], **self._tls_listener()
                )
            self.port = server.sockets[0].getsockname()[1]
        return server


class UnixSocketMixin(BaseController, metaclass=ABCMeta):
    """Listen on a Unix domain socket file."""

    def __init__(
        self,
        handler: Any,
        unix_socket: Union[str, Path],
        loop: Optional[asyncio.AbstractEventLoop] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, loop, **kwargs)
        self.unix_socket = str(unix_socket)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_unix_server(
            self._factory_invoker, path=self.unix_socket, **self._tls_listener()
        )


class Controller(InetMixin, BaseThreadedController):
    """A TCP server running in its own thread."""


class UnixSocketController(UnixSocketMixin, BaseThreadedController):
    """A Unix socket server running in its own thread."""


class UnthreadedController(InetMixin, BaseUnthreadedController):
    """A TCP server on a loop the caller runs."""


class UnixSocketUnthreadedController(UnixSocketMixin, BaseUnthreadedController):
    """A Unix socket server on a loop the caller runs."""
