"""Worker processes for a server: one listening address, N forked processes
serving it, and a supervisor that keeps them running.

This part knows sockets, ``os.fork`` and signals, nothing of SMTP or of an
event loop: the modern face runs an asyncio server in each worker
(``smtpd_compat.modern.workers``), the legacy command line asyncore's loop.

* Linux balances connections over sockets bound with ``SO_REUSEPORT``:
  every worker listens on its own, and the parent keeps a bound but never
  listening socket that holds the port (and fixes port 0) while workers
  come and go.  Elsewhere (BSD and macOS accept ``SO_REUSEPORT`` but do not
  balance) the parent binds one listening socket before forking and every
  worker accepts from it.
* Workers are started with ``os.fork`` explicitly, never through
  multiprocessing, whose default start method changed in Python 3.14.
  Without ``fork`` (Windows) the ``Supervisor`` raises ``RuntimeError``.
* A worker that exits is started again; one that dies within
  ``min_uptime`` seconds of starting is restarted after a doubling delay,
  and after ``crash_limit`` such deaths in a row it is given up (logged).
  With every worker given up, ``Supervisor.run()`` returns 1.
* The first SIGTERM or SIGINT is passed on to every worker as SIGTERM (a
  worker drains on it); a second one, or the drain deadline, SIGKILLs them.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = ["DEFAULT_DRAIN_TIMEOUT", "Listeners", "Supervisor", "WorkerBody", "fork_available", "reuse_port_balances"]

log = logging.getLogger("mail.log")

DEFAULT_DRAIN_TIMEOUT = 30.0
#: After the drain deadline, how long the parent waits before SIGKILL.
_KILL_GRACE = 2.0
_BACKLOG = 128

Address = Tuple[Any, ...]


def fork_available() -> bool:
    return hasattr(os, "fork")


def reuse_port_balances() -> bool:
    """True where the kernel spreads connections over SO_REUSEPORT sockets."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _bind_one(family: int, address: Address, *, reuse_port: bool, listen: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name == "posix":  # on Windows SO_REUSEADDR would allow port theft
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # One socket per family, as asyncio does for a name with both.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        if listen:
            sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_all(host: Optional[str], port: int, *, reuse_port: bool, listen: bool) -> List[socket.socket]:
    """One socket per address ``host`` resolves to, all on one port."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: List[socket.socket] = []
    seen = set()
    try:
        for family, _, _, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            if sockets:
                # port 0: every family on the port the first one drew.
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sockets.append(_bind_one(family, address, reuse_port=reuse_port, listen=listen))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Listeners:
    """The address a server listens on, and the sockets each worker serves.

    Shared (``reuse_port=False``): the sockets bound here listen, and every
    worker accepts from them.  ``reuse_port=True``: the sockets bound here
    only hold the port; each worker gets listening sockets of its own.
    """

    def __init__(self, host: Optional[str], port: int, *, reuse_port: bool = False) -> None:
        self.reuse_port = reuse_port
        self._held = _bind_all(host, port, reuse_port=reuse_port, listen=not reuse_port)

    @classmethod
    def of(cls, sockets: Sequence[socket.socket]) -> "Listeners":
        """Shared listeners over sockets bound elsewhere (a legacy server's)."""
        listeners = cls.__new__(cls)
        listeners.reuse_port = False
        listeners._held = list(sockets)
        return listeners

    @property
    def addresses(self) -> List[Address]:
        return [sock.getsockname() for sock in self._held]

    @property
    def port(self) -> int:
        port: int = self._held[0].getsockname()[1]
        return port

    def for_worker(self) -> List[socket.socket]:
        if not self.reuse_port:
            return self._held
        sockets: List[socket.socket] = []
        try:
            for held in self._held:
                sockets.append(_bind_one(held.family, held.getsockname(), reuse_port=True, listen=True))
        except BaseException:
            self.release(sockets)
            raise
        return sockets

    def release(self, sockets: Iterable[socket.socket]) -> None:
        """The parent's copies of a forked worker's own sockets."""
        if self.reuse_port:
            for sock in sockets:
                sock.close()

    def close(self) -> None:
        for sock in self._held:
            sock.close()


class _Slot:
    def __init__(self, number: int) -> None:
        self.number = number
        self.pid = 0
        self.started = 0.0
        self.quick_deaths = 0
        #: When to start it next; None while it runs, or once given up.
        self.start_at: Optional[float] = 0.0
        self.ready_fd = -1
        self.ever_ready = False


WorkerBody = Callable[[List[socket.socket], Callable[[], None]], int]


class Supervisor:
    """Forks ``workers`` processes running ``body(sockets, ready)``, keeps
    them running, and stops them on SIGTERM/SIGINT.

    ``body`` runs in the child and returns its exit status; it calls
    ``ready()`` once it serves.  ``on_ready`` runs in the parent once every
    first-generation worker is ready.
    """

    def __init__(
        self,
        body: WorkerBody,
        listeners: Listeners,
        workers: int,
        *,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        min_uptime: float = 1.0,
        crash_limit: int = 5,
        backoff: Tuple[float, float] = (0.1, 5.0),
        on_ready: Optional[Callable[[], None]] = None,
    ) -> None:
        if not fork_available():
            raise RuntimeError("worker processes need os.fork(), which this platform lacks; use workers=1")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.body = body
        self.listeners = listeners
        self.slots = [_Slot(number) for number in range(workers)]
        self.drain_timeout = drain_timeout
        self.min_uptime = min_uptime
        self.crash_limit = crash_limit
        self.backoff = backoff
        self.on_ready = on_ready
        self._signals: List[int] = []
        self._stopping_since: Optional[float] = None
        self._killed = False
        self._wakeup_r = self._wakeup_w = -1

    # The parent's main loop.

    def run(self) -> int:
        previous = self._install_signals()
        try:
            return self._supervise()
        finally:
            for slot in self.slots:
                if slot.pid:
                    self._signal(slot, signal.SIGKILL)
                    self._reap(block=True)
            self._restore_signals(previous)
            self.listeners.close()

    def _supervise(self) -> int:
        while True:
            self._handle_signals()
            self._reap(block=False)
            live = [slot for slot in self.slots if slot.pid]
            if self._stopping_since is not None:
                if not live:
                    return 0
                if not self._killed and time.monotonic() > self._stopping_since + self.drain_timeout + _KILL_GRACE:
                    log.error("workers still running after the drain deadline; killing them")
                    self._kill_all()
            elif not live and all(slot.start_at is None for slot in self.slots):
                log.error("every worker failed at start; giving up")
                return 1
            else:
                self._start_due()
            self._wait(self._next_timeout())

    def _next_timeout(self) -> float:
        now = time.monotonic()
        due = [slot.start_at - now for slot in self.slots if not slot.pid and slot.start_at is not None]
        if self._stopping_since is not None:
            due = [self._stopping_since + self.drain_timeout + _KILL_GRACE - now]
        return max(0.0, min(due + [1.0]))

    def _wait(self, timeout: float) -> None:
        fds = [self._wakeup_r] + [slot.ready_fd for slot in self.slots if slot.ready_fd >= 0]
        readable, _, _ = select.select(fds, [], [], timeout)
        for fd in readable:
            if fd == self._wakeup_r:
                while True:
                    try:
                        if not os.read(fd, 512):
                            break
                    except BlockingIOError:
                        break
            else:
                self._ready_message(fd)

    def _ready_message(self, fd: int) -> None:
        slot = next(slot for slot in self.slots if slot.ready_fd == fd)
        slot.ever_ready = slot.ever_ready or os.read(fd, 1) == b"r"
        os.close(fd)
        slot.ready_fd = -1
        # Once every worker served (or was given up), the server is up.
        if self.on_ready is not None and all(
            slot.ever_ready or (not slot.pid and slot.start_at is None) for slot in self.slots
        ):
            on_ready, self.on_ready = self.on_ready, None
            on_ready()

    # Starting and restarting workers.

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if not slot.pid and slot.start_at is not None and slot.start_at <= now:
                self._start(slot)

    def _start(self, slot: _Slot) -> None:
        slot.start_at = None
        slot.started = time.monotonic()
        try:
            sockets = self.listeners.for_worker()
        except OSError as error:
            log.error("worker %d cannot bind: %s", slot.number, error)
            self._died(slot, "could not bind")
            return
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            self._child(sockets, ready_w)
        os.close(ready_w)
        self.listeners.release(sockets)
        slot.pid = pid
        slot.ready_fd = ready_r
        log.info("worker %d started, pid %d", slot.number, pid)

    def _child(self, sockets: List[socket.socket], ready_w: int) -> None:
        """The child's whole life; never returns."""
        status = 1
        try:
            self._restore_signals(None)
            # Ctrl-C reaches the whole process group: the parent turns it
            # into one SIGTERM per worker, so workers ignore SIGINT itself.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for slot in self.slots:
                if slot.ready_fd >= 0:
                    os.close(slot.ready_fd)

            def ready() -> None:
                os.write(ready_w, b"r")
                os.close(ready_w)

            status = self.body(sockets, ready)
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else 1
        except BaseException:
            log.exception("worker pid %d failed", os.getpid())
        finally:
            logging.shutdown()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # a closed stream must not keep the child alive
                    pass
            os._exit(status)

    def _reap(self, block: bool) -> None:
        for slot in self.slots:
            if not slot.pid:
                continue
            pid, status = os.waitpid(slot.pid, 0 if block else os.WNOHANG)
            if pid == 0:
                continue
            slot.pid = 0
            if slot.ready_fd >= 0:
                os.close(slot.ready_fd)
                slot.ready_fd = -1
            if self._stopping_since is None:
                self._died(slot, _describe(status))

    def _died(self, slot: _Slot, how: str) -> None:
        uptime = time.monotonic() - slot.started
        if uptime >= self.min_uptime:
            slot.quick_deaths = 0
            delay = 0.0
        else:
            slot.quick_deaths += 1
            if slot.quick_deaths >= self.crash_limit:
                log.error(
                    "worker %d %s %d times in a row within %.1fs of starting; not restarting it",
                    slot.number, how, slot.quick_deaths, self.min_uptime,
                )
                return
            first, longest = self.backoff
            delay = min(longest, first * 2 ** (slot.quick_deaths - 1))
        log.warning("worker %d %s after %.1fs; restarting it in %.1fs", slot.number, how, uptime, delay)
        slot.start_at = time.monotonic() + delay

    # Signals.

    def _install_signals(self) -> Dict[int, Any]:
        self._wakeup_r, self._wakeup_w = os.pipe()
        for fd in (self._wakeup_r, self._wakeup_w):
            os.set_blocking(fd, False)
        previous: Dict[int, Any] = {}
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        previous[-1] = signal.set_wakeup_fd(self._wakeup_w)
        return previous

    def _restore_signals(self, previous: Optional[Dict[int, Any]]) -> None:
        signal.set_wakeup_fd(previous.pop(-1) if previous else -1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            handler = previous.get(signum) if previous else None
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for fd in (self._wakeup_r, self._wakeup_w):
            os.close(fd)
        self._wakeup_r = self._wakeup_w = -1

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum != signal.SIGCHLD:
            self._signals.append(signum)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if self._stopping_since is None:
                log.info("signal %d: draining the workers", signum)
                self._stopping_since = time.monotonic()
                for slot in self.slots:
                    slot.start_at = None
                    self._signal(slot, signal.SIGTERM)
                self.listeners.close()
            elif not self._killed:
                log.info("signal %d again: stopping the workers now", signum)
                self._kill_all()

    def _kill_all(self) -> None:
        self._killed = True
        for slot in self.slots:
            self._signal(slot, signal.SIGKILL)

    @staticmethod
    def _signal(slot: _Slot, signum: int) -> None:
        if slot.pid:
            try:
                os.kill(slot.pid, signum)
            except ProcessLookupError:
                pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with status {os.WEXITSTATUS(status)}"
