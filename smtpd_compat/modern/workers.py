"""Several processes serving one port, and a graceful drain (modern face).

One Python process uses one core.  :func:`serve` binds the address, then
forks ``workers`` processes that each run an event loop and the modern
``SMTP`` protocol on it, under the supervisor of
``smtpd_compat.common.supervisor`` (``SO_REUSEPORT`` on Linux, else one
shared socket; restarts, crash-loop backoff; see there).  ``reuse_port=``
forces either way of sharing the port.  Without ``os.fork`` (Windows)
``workers > 1`` raises ``RuntimeError``; one worker serves in the calling
process everywhere.

Handlers are per worker.  ``handler_factory()`` runs once in each worker
(after the fork), and a handler made before :func:`serve` is copied into
every worker by the fork.  Counters, lists or caches on a handler or in a
module are therefore one per process: state that every worker must see
belongs in something outside the process, such as a Maildir (the stock
``Mailbox`` handler is safe from several processes), a database (SQLite
with WAL serialises writers across processes), or a queue.

Drain: the first SIGTERM or SIGINT (to the parent, which passes SIGTERM on to
its workers) stops accepting, ends idle sessions with ``421 <hostname>
Service not available, closing transmission channel``, lets every open
transaction finish (``SMTP.close_when_idle``), and returns 0 once all
sessions are gone or ``drain_timeout`` has passed (the rest are cut).  A
second signal stops at once.  Messages that got no 250 were not accepted,
so a stop never loses an accepted message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Any, Awaitable, Callable, ContextManager, Dict, Iterable, List, Optional, Sequence, Type, Union
from weakref import WeakSet

from ..common.loops import DEFAULT_LOOP, LoopChoice, LoopFactory, loop_factory, run
from ..common.signals import StopRequests, draining
from ..common.supervisor import DEFAULT_DRAIN_TIMEOUT, Listeners, Supervisor, fork_available, reuse_port_balances
from .controller import BaseController, BaseUnthreadedController
from .proxy_trust import NetworkSpec, trusting
from .smtp import SMTP

__all__ = [
    "DEFAULT_DRAIN_TIMEOUT",
    "Listeners",
    "Supervisor",
    "drain",
    "drain_when_asked",
    "fork_available",
    "reuse_port_balances",
    "serve",
]

log = logging.getLogger("mail.log")


# -- one worker: serve until told to stop ----------------------------------


class _SocketController(BaseUnthreadedController):
    """A controller serving an already bound, listening socket."""

    def __init__(self, handler: Any, sock: socket.socket, smtp_class: Type[SMTP], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sock = sock
        self._smtp_class = smtp_class

    def factory(self) -> Any:
        return self._smtp_class(self.handler, loop=self.loop, **self.SMTP_kwargs)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


async def drain(
    servers: Iterable[asyncio.AbstractServer], sessions: Iterable[Any], timeout: float, now: "asyncio.Future[None]"
) -> int:
    """Stop accepting, ask every session to close when idle, and wait for
    them up to ``timeout`` seconds or until ``now`` is done.  Returns how
    many sessions were still open (the caller cuts them)."""
    loop = asyncio.get_running_loop()
    for server in servers:
        server.close()
    protocols = [protocol for protocol in sessions if getattr(protocol, "transport", None) is not None]
    for protocol in protocols:
        protocol.close_when_idle()
    deadline = loop.time() + timeout
    while True:
        open_tasks = {
            protocol._handler_coroutine
            for protocol in protocols
            if protocol.transport is not None and not protocol._handler_coroutine.done()
        }
        remaining = deadline - loop.time()
        if not open_tasks or remaining <= 0 or now.done():
            return len(open_tasks)
        await asyncio.wait(open_tasks | {now}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)


async def drain_when_asked(controllers: Sequence[BaseController], stop: StopRequests, timeout: float) -> None:
    """Serve until the first stop request, then drain the controllers'
    servers and sessions (see :func:`drain`); the caller closes them."""
    await stop.drain
    servers = [controller.server for controller in controllers if controller.server is not None]
    sessions: WeakSet[Any] = WeakSet()
    for controller in controllers:
        sessions.update(controller._sessions)
    cut = await drain(servers, sessions, timeout, stop.now)
    if cut:
        log.warning("pid %d: drain ended with %d session(s) still open; closing them", os.getpid(), cut)


class _WorkerConfig:
    def __init__(
        self,
        handler_factory: Callable[[], Any],
        smtp_class: Type[SMTP],
        smtp_kwargs: Dict[str, Any],
        drain_timeout: float,
        supervised: bool,
        worker_init: Optional[Callable[[], None]],
        loop_factory: LoopFactory,
    ) -> None:
        self.handler_factory = handler_factory
        self.smtp_class = smtp_class
        self.smtp_kwargs = smtp_kwargs
        self.drain_timeout = drain_timeout
        self.supervised = supervised
        self.worker_init = worker_init
        self.loop_factory = loop_factory

    def stop_requests(self, loop: asyncio.AbstractEventLoop) -> ContextManager[StopRequests]:
        if not self.supervised:
            return draining(loop)
        # A supervised worker drains on SIGTERM and ignores repeats: systemd
        # (KillMode=control-group) signals every process of the service as
        # well as the supervisor, and the supervisor escalates with SIGKILL.
        return draining(loop, escalate=False, signals=[signal.SIGTERM])


def _watch_parent(loop: asyncio.AbstractEventLoop, parent: int, stop: StopRequests) -> None:
    """A worker whose supervisor died (SIGKILL) drains instead of serving on
    unsupervised."""
    if os.getppid() != parent:
        log.warning("pid %d: the supervisor is gone; draining", os.getpid())
        stop.request()
    else:
        loop.call_later(1.0, _watch_parent, loop, parent, stop)


async def _serve_sockets(
    sockets: Sequence[socket.socket], config: _WorkerConfig, ready: Callable[[], None], parent: Optional[int]
) -> int:
    if config.worker_init is not None:
        config.worker_init()
    handler = config.handler_factory()
    controllers = [
        _SocketController(handler, sock, config.smtp_class, **config.smtp_kwargs) for sock in sockets
    ]
    loop = asyncio.get_running_loop()
    try:
        with config.stop_requests(loop) as stop:
            for controller in controllers:
                await controller.start_serving()
            ready()
            if parent is not None:
                _watch_parent(loop, parent, stop)
            await drain_when_asked(controllers, stop, config.drain_timeout)
        return 0
    finally:
        for controller in controllers:
            if controller.server is not None:
                await controller.finalize()


def _run_worker(
    sockets: Sequence[socket.socket], config: _WorkerConfig, ready: Callable[[], None], parent: Optional[int]
) -> int:
    return run(_serve_sockets(sockets, config, ready, parent), config.loop_factory)


# -- the API ---------------------------------------------------------------


def serve(
    handler_factory: Callable[[], Any],
    host: Optional[str] = "localhost",
    port: int = 8025,
    *,
    workers: int = 1,
    reuse_port: Optional[bool] = None,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    proxy_trusted_networks: Union[None, str, Iterable[NetworkSpec]] = None,
    smtp_class: Type[SMTP] = SMTP,
    ssl_context: Any = None,
    ready: Optional[Callable[[Listeners], None]] = None,
    worker_init: Optional[Callable[[], None]] = None,
    min_uptime: float = 1.0,
    crash_limit: int = 5,
    loop: LoopChoice = DEFAULT_LOOP,
    **smtp_kwargs: Any,
) -> int:
    """Serve ``handler_factory()``'s handler on ``host:port`` until SIGTERM or
    SIGINT, then drain; returns the exit status (0 after a signal).

    ``workers=1`` serves in this process; more fork that many workers (see
    the module's documentation).  ``smtp_kwargs`` go to ``smtp_class`` as
    with ``Controller``; ``ssl_context`` makes it SMTPS.
    ``proxy_trusted_networks`` (which needs ``proxy_protocol_timeout``)
    lists the proxies whose PROXY headers are believed.  ``ready(listeners)``
    runs once every worker serves (``listeners.port`` is the bound port);
    ``worker_init()`` runs in each worker before its handler is made (e.g.
    to drop privileges after binding).  ``loop`` is the event loop each
    worker runs: ``"asyncio"``, ``"uvloop"`` (the ``uvloop`` extra; else
    ``LoopUnavailable`` is raised here) or a loop factory.  Bind errors
    raise ``OSError`` here.
    """
    factory = loop_factory(loop)
    if proxy_trusted_networks is not None:
        if smtp_kwargs.get("proxy_protocol_timeout") is None:
            raise ValueError("proxy_trusted_networks needs proxy_protocol_timeout")
        smtp_class = trusting(smtp_class, proxy_trusted_networks)
    elif smtp_kwargs.get("proxy_protocol_timeout") is not None:
        log.warning("PROXY headers are believed from any client: give proxy_trusted_networks")
    if reuse_port is None:
        reuse_port = workers > 1 and reuse_port_balances()
    if workers > 1 and not fork_available():
        raise RuntimeError("worker processes need os.fork(), which this platform lacks; use workers=1")
    listeners = Listeners(host, port, reuse_port=reuse_port)
    config = _WorkerConfig(
        handler_factory, smtp_class, dict(smtp_kwargs, ssl_context=ssl_context), drain_timeout, workers > 1, worker_init,
        factory,
    )

    def body(sockets: List[socket.socket], worker_ready: Callable[[], None]) -> int:
        return _run_worker(sockets, config, worker_ready, os.getppid() if workers > 1 else None)

    def all_ready() -> None:
        if ready is not None:
            ready(listeners)

    if workers == 1:
        try:
            return body(listeners.for_worker(), all_ready)
        finally:
            listeners.close()
    supervisor = Supervisor(
        body, listeners, workers, drain_timeout=drain_timeout, min_uptime=min_uptime,
        crash_limit=crash_limit, on_ready=all_ready,
    )
    return supervisor.run()
