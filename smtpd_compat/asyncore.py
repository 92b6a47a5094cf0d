"""Callback-driven socket event loop with the public surface of Python 3.11's ``asyncore``.

The stdlib module was removed in Python 3.12; this is an independent implementation
with the same observable behaviour, so ``from smtpd_compat import asyncore`` can stand in
for ``import asyncore``.

Deliberate differences, all invisible to correct programs:

* :func:`poll` waits with ``select.poll()`` instead of ``select.select()``, so descriptors
  above ``FD_SETSIZE`` (1024) work.  The readiness reported to dispatchers is the one
  ``select()`` would report: read events first, then write, then exceptional (OOB) ones.
  Where ``select.poll`` does not exist (Windows), :func:`poll` waits with ``select()`` and
  ``loop(use_poll=True)`` runs it, as the stdlib's did there; :func:`poll2` called directly
  works on ``select()`` too (the stdlib's raised ``AttributeError``).
* Waiting happens in short slices: when another thread closes channels or empties the map
  the wait ends early, so ``loop()`` in a background thread returns promptly after
  ``close_all()``.  A descriptor closed behind asyncore's back gets ``handle_close()``
  instead of crashing the loop with ``EBADF``.
* Importing this module emits no ``DeprecationWarning``.
"""
from __future__ import annotations

import math
import os
import select
import socket
import sys
import time
import warnings
from errno import (
    EAGAIN,
    EALREADY,
    EBADF,
    ECONNABORTED,
    ECONNRESET,
    EINPROGRESS,
    EINVAL,
    EISCONN,
    ENOTCONN,
    EPIPE,
    ESHUTDOWN,
    EWOULDBLOCK,
    errorcode,
)
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

SocketMap = Dict[int, "dispatcher"]

#: The map every dispatcher joins unless it is given its own.
socket_map: SocketMap = {}

# Errors meaning "the peer is gone": the channel is closed rather than reported as a bug.
_DISCONNECTED = frozenset({ECONNRESET, ENOTCONN, ESHUTDOWN, ECONNABORTED, EPIPE, EBADF})

# How often an idle wait looks at the map for changes made by other threads.
_MAP_CHECK_INTERVAL = 0.05

# poll()'s event bits.  Windows' select module has neither poll() nor these names; there
# the select() fallback reports readiness with the same (Linux) values.
_POLLIN: int = getattr(select, "POLLIN", 0x001)
_POLLPRI: int = getattr(select, "POLLPRI", 0x002)
_POLLOUT: int = getattr(select, "POLLOUT", 0x004)
_POLLERR: int = getattr(select, "POLLERR", 0x008)
_POLLHUP: int = getattr(select, "POLLHUP", 0x010)
_POLLNVAL: int = getattr(select, "POLLNVAL", 0x020)

# The poll() bits that select() folds into its read / write / exceptional sets (Linux fs/select.c).
_SELECT_READ_BITS = _POLLIN | _POLLHUP | _POLLERR
_SELECT_WRITE_BITS = _POLLOUT | _POLLERR
_SELECT_EXCEPT_BITS = _POLLPRI


class ExitNow(Exception):
    """Raised by a handler to stop the loop: it is never passed to ``handle_error``."""


_reraised_exceptions: Tuple[Type[BaseException], ...] = (ExitNow, KeyboardInterrupt, SystemExit)


def _strerror(err: int) -> str:
    try:
        return os.strerror(err)
    except (ValueError, OverflowError, NameError):
        return errorcode.get(err, "Unknown error %s" % err)


def _guarded(obj: dispatcher, handler: Callable[[], object]) -> None:
    try:
        handler()
    except _reraised_exceptions:
        raise
    except BaseException:
        obj.handle_error()


def read(obj: dispatcher) -> None:
    _guarded(obj, obj.handle_read_event)


def write(obj: dispatcher) -> None:
    _guarded(obj, obj.handle_write_event)


def _exception(obj: dispatcher) -> None:
    _guarded(obj, obj.handle_expt_event)


def readwrite(obj: dispatcher, flags: int) -> None:
    """Dispatch one ``poll()`` result: read, write, priority, then hang-up/error."""
    try:
        if flags & _POLLIN:
            obj.handle_read_event()
        if flags & _POLLOUT:
            obj.handle_write_event()
        if flags & _POLLPRI:
            obj.handle_expt_event()
        if flags & (_POLLHUP | _POLLERR | _POLLNVAL):
            obj.handle_close()
    except OSError as exc:
        if exc.errno in _DISCONNECTED:
            obj.handle_close()
        else:
            obj.handle_error()
    except _reraised_exceptions:
        raise
    except BaseException:
        obj.handle_error()


class _SelectPollster:
    """``select.poll()``'s interface (register, then poll) on ``select.select()``, for
    platforms without poll().  A descriptor closed behind our back is reported POLLNVAL,
    as poll() would, instead of failing the whole wait."""

    def __init__(self) -> None:
        self._masks: Dict[int, int] = {}

    def register(self, fd: int, mask: int) -> None:
        self._masks[fd] = mask

    def poll(self, timeout_ms: int) -> List[Tuple[int, int]]:
        def wanting(bits: int) -> List[int]:
            return [fd for fd, mask in self._masks.items() if mask & bits]

        if not self._masks:
            # Windows' select() refuses three empty lists: just wait.
            time.sleep(timeout_ms / 1000)
            return []
        try:
            readable, writable, exceptional = select.select(
                wanting(_POLLIN), wanting(_POLLOUT), wanting(_POLLPRI), timeout_ms / 1000
            )
        except OSError:  # a descriptor closed behind our back: EBADF, WSAENOTSOCK
            # (ValueError, more descriptors than select() takes, propagates as it did in the stdlib)
            invalid = self._invalid()
            if not invalid:
                raise
            return invalid
        events: Dict[int, int] = {}
        for fds, bit in ((readable, _POLLIN), (writable, _POLLOUT), (exceptional, _POLLPRI)):
            for fd in fds:
                events[fd] = events.get(fd, 0) | bit
        return list(events.items())

    def _invalid(self) -> List[Tuple[int, int]]:
        """The registered descriptors select() refuses (forgotten from now on), as POLLNVAL."""
        invalid = []
        for fd in list(self._masks):
            try:
                select.select([fd], [], [], 0)
            except OSError:
                invalid.append((fd, _POLLNVAL))
                del self._masks[fd]
        return invalid


def _pollster() -> Any:
    """``select.poll()``, or the select() stand-in where the platform has no poll()."""
    make = getattr(select, "poll", None)
    return make() if make is not None else _SelectPollster()


def _map_changed(map: SocketMap, snapshot: List[Tuple[int, dispatcher]]) -> bool:
    if len(map) != len(snapshot):
        return True
    return any(map.get(fd) is not obj for fd, obj in snapshot)


def _wait(
    pollster: Any,
    timeout: Optional[float],
    map: SocketMap,
    snapshot: List[Tuple[int, dispatcher]],
) -> List[Tuple[int, int]]:
    """``pollster.poll()`` for up to ``timeout`` seconds (None: forever).

    Closing a descriptor in another thread does not wake poll(), so the wait is cut into
    slices and gives up early (reporting nothing) once the map no longer matches
    ``snapshot``.
    """
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    while True:
        slice_seconds = _MAP_CHECK_INTERVAL
        if deadline is not None:
            slice_seconds = min(slice_seconds, max(deadline - time.monotonic(), 0.0))
        events: List[Tuple[int, int]] = pollster.poll(math.ceil(slice_seconds * 1000))
        if events:
            return events
        if deadline is not None and time.monotonic() >= deadline:
            return []
        if _map_changed(map, snapshot):
            return []


def poll(timeout: Optional[float] = 0.0, map: Optional[SocketMap] = None) -> None:
    """One pass with ``select()`` semantics: ask every channel readable()/writable(), wait,
    then run all read events, all write events, and all exceptional events, in that order."""
    if map is None:
        map = socket_map
    if not map:
        return
    snapshot = list(map.items())
    pollster = _pollster()
    wanted: Dict[int, int] = {}
    for fd, obj in snapshot:
        wants_read = obj.readable()
        wants_write = obj.writable()
        mask = 0
        if wants_read:
            mask |= _POLLIN
        # a listening socket is never offered for writing
        if wants_write and not obj.accepting:
            mask |= _POLLOUT
        if wants_read or wants_write:
            mask |= _POLLPRI
            pollster.register(fd, mask)
            wanted[fd] = mask

    readers: List[int] = []
    writers: List[int] = []
    exceptional: List[int] = []
    invalid: List[int] = []
    for fd, revents in _wait(pollster, timeout, map, snapshot):
        mask = wanted[fd]
        if revents & _POLLNVAL:
            invalid.append(fd)
            continue
        if mask & _POLLIN and revents & _SELECT_READ_BITS:
            readers.append(fd)
        if mask & _POLLOUT and revents & _SELECT_WRITE_BITS:
            writers.append(fd)
        if revents & _SELECT_EXCEPT_BITS:
            exceptional.append(fd)

    for fds, dispatch in ((readers, read), (writers, write), (exceptional, _exception)):
        for fd in fds:
            channel = map.get(fd)
            if channel is not None:
                dispatch(channel)
    for fd in invalid:
        channel = map.get(fd)
        if channel is not None:
            readwrite(channel, _POLLNVAL)


def poll2(timeout: Optional[float] = 0.0, map: Optional[SocketMap] = None) -> None:
    """One pass with ``poll()`` semantics: each ready channel gets all its events at once."""
    if map is None:
        map = socket_map
    if not map:
        return
    snapshot = list(map.items())
    pollster = _pollster()
    for fd, obj in snapshot:
        flags = 0
        if obj.readable():
            flags |= _POLLIN | _POLLPRI
        # a listening socket is never offered for writing
        if obj.writable() and not obj.accepting:
            flags |= _POLLOUT
        if flags:
            pollster.register(fd, flags)
    for fd, revents in _wait(pollster, timeout, map, snapshot):
        channel = map.get(fd)
        if channel is not None:
            readwrite(channel, revents)


poll3 = poll2


def loop(
    timeout: Optional[float] = 30.0,
    use_poll: bool = False,
    map: Optional[SocketMap] = None,
    count: Optional[int] = None,
) -> None:
    """Run passes until the map is empty, or at most ``count`` passes."""
    if map is None:
        map = socket_map
    # Without select.poll (Windows) use_poll means poll(), as in the stdlib.
    poll_once = poll2 if use_poll and hasattr(select, "poll") else poll
    if count is None:
        while map:
            poll_once(timeout, map)
        return
    while map and count > 0:
        poll_once(timeout, map)
        count -= 1


class dispatcher:
    """A non-blocking socket plus the event callbacks the loop invokes on it."""

    debug = False
    connected = False
    accepting = False
    connecting = False
    closing = False
    addr: Any = None
    ignore_log_types = frozenset({"warning"})

    def __init__(self, sock: Optional[socket.socket] = None, map: Optional[SocketMap] = None) -> None:
        self._map: SocketMap = socket_map if map is None else map
        self._fileno: Optional[int] = None
        # a socket.socket, a file_wrapper, or None before create_socket()/set_socket()
        self.socket: Any = None
        if sock is None:
            return
        # it may come from a blocking source, e.g. accept() on a blocking listener
        sock.setblocking(False)
        self.set_socket(sock, map)
        self.connected = True
        try:
            self.addr = sock.getpeername()
        except OSError as exc:
            if exc.errno not in (ENOTCONN, EINVAL):
                # broken in an unknown way: keep it out of the map so it is never polled
                self.del_channel(map)
                raise
            self.connected = False

    def __repr__(self) -> str:
        cls = type(self)
        # This module stands in for the stdlib's: its own classes read as
        # "asyncore.dispatcher" in reprs and logs, as they did there.
        module = "asyncore" if cls.__module__ == __name__ else cls.__module__
        parts = [module + "." + cls.__qualname__]
        if self.accepting and self.addr:
            parts.append("listening")
        elif self.connected:
            parts.append("connected")
        if self.addr is not None:
            try:
                parts.append("%s:%d" % self.addr)
            except TypeError:
                parts.append(repr(self.addr))
        return "<%s at %#x>" % (" ".join(parts), id(self))

    # -- map membership --------------------------------------------------------------

    def add_channel(self, map: Optional[SocketMap] = None) -> None:
        if map is None:
            map = self._map
        map[self._fileno] = self  # type: ignore[index]  # set_socket() assigned it

    def del_channel(self, map: Optional[SocketMap] = None) -> None:
        if map is None:
            map = self._map
        fd = self._fileno
        if fd in map:
            del map[fd]
        self._fileno = None

    # -- socket set-up ---------------------------------------------------------------

    def create_socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> None:
        self.family_and_type = family, type
        sock = socket.socket(family, type)
        sock.setblocking(False)
        self.set_socket(sock)

    def set_socket(self, sock: Any, map: Optional[SocketMap] = None) -> None:
        self.socket = sock
        self._fileno = sock.fileno()
        self.add_channel(map)

    def set_reuse_addr(self) -> None:
        """Best effort: allow rebinding a port that still has connections in TIME_WAIT."""
        try:
            current = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, current | 1)
        except OSError:
            pass

    # -- what the loop should wait for -----------------------------------------------

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    # -- socket operations -----------------------------------------------------------

    def listen(self, num: int) -> None:
        self.accepting = True
        if os.name == "nt" and num > 5:
            num = 5
        self.socket.listen(num)

    def bind(self, addr: Any) -> None:
        self.addr = addr
        self.socket.bind(addr)

    def connect(self, address: Any) -> None:
        self.connected = False
        self.connecting = True
        err = self.socket.connect_ex(address)
        in_progress = err in (EINPROGRESS, EALREADY, EWOULDBLOCK) or (err == EINVAL and os.name == "nt")
        if in_progress:
            self.addr = address
            return
        if err in (0, EISCONN):
            self.addr = address
            self.handle_connect_event()
            return
        raise OSError(err, errorcode[err])

    def accept(self) -> Optional[Tuple[socket.socket, Any]]:
        """The new connection and its address, or None when nobody is waiting after all."""
        try:
            conn, addr = self.socket.accept()
        except TypeError:
            return None
        except OSError as exc:
            if exc.errno in (EWOULDBLOCK, ECONNABORTED, EAGAIN):
                return None
            raise
        return conn, addr

    def send(self, data: bytes) -> int:
        try:
            sent: int = self.socket.send(data)
        except OSError as exc:
            if exc.errno == EWOULDBLOCK:
                return 0
            if exc.errno in _DISCONNECTED:
                self.handle_close()
                return 0
            raise
        return sent

    def recv(self, buffer_size: int) -> bytes:
        """Received bytes; ``b''`` after the peer went away (``handle_close()`` was called)."""
        try:
            data: bytes = self.socket.recv(buffer_size)
        except OSError as exc:
            if exc.errno in _DISCONNECTED:
                self.handle_close()
                return b""
            raise
        if not data:
            self.handle_close()
            return b""
        return data

    def close(self) -> None:
        self.connected = False
        self.accepting = False
        self.connecting = False
        self.del_channel()
        if self.socket is None:
            return
        try:
            self.socket.close()
        except OSError as exc:
            if exc.errno not in (ENOTCONN, EBADF):
                raise

    # -- logging ---------------------------------------------------------------------

    def log(self, message: Any) -> None:
        sys.stderr.write("log: %s\n" % str(message))

    def log_info(self, message: str, type: str = "info") -> None:
        if type not in self.ignore_log_types:
            print("%s: %s" % (type, message))

    # -- event dispatch (called by the loop) -----------------------------------------

    def handle_read_event(self) -> None:
        if self.accepting:
            # a listening socket is "readable" when a connection waits to be accepted
            self.handle_accept()
            return
        if not self.connected and self.connecting:
            self.handle_connect_event()
        self.handle_read()

    def handle_connect_event(self) -> None:
        err = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0:
            raise OSError(err, _strerror(err))
        self.handle_connect()
        self.connected = True
        self.connecting = False

    def handle_write_event(self) -> None:
        if self.accepting:
            return  # listening sockets have nothing to write
        if not self.connected and self.connecting:
            self.handle_connect_event()
        self.handle_write()

    def handle_expt_event(self) -> None:
        # an exceptional condition is either a socket error or out-of-band data
        err = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0:
            self.handle_close()
        else:
            self.handle_expt()

    def handle_error(self) -> None:
        _, exc_type, exc_value, tbinfo = compact_traceback()
        try:
            self_repr = repr(self)
        except BaseException:  # a user __repr__ may itself be broken
            self_repr = "<__repr__(self) failed for object at %0x>" % id(self)
        self.log_info(
            "uncaptured python exception, closing channel %s (%s:%s %s)"
            % (self_repr, exc_type, exc_value, tbinfo),
            "error",
        )
        self.handle_close()

    # -- default handlers, meant to be overridden -------------------------------------

    def handle_expt(self) -> None:
        self.log_info("unhandled incoming priority event", "warning")

    def handle_read(self) -> None:
        self.log_info("unhandled read event", "warning")

    def handle_write(self) -> None:
        self.log_info("unhandled write event", "warning")

    def handle_connect(self) -> None:
        self.log_info("unhandled connect event", "warning")

    def handle_accept(self) -> None:
        pair = self.accept()
        if pair is not None:
            self.handle_accepted(*pair)

    def handle_accepted(self, sock: socket.socket, addr: Any) -> None:
        sock.close()
        self.log_info("unhandled accepted event", "warning")

    def handle_close(self) -> None:
        self.log_info("unhandled close event", "warning")
        self.close()


class dispatcher_with_send(dispatcher):
    """A dispatcher whose ``send()`` buffers what the socket cannot take yet."""

    def __init__(self, sock: Optional[socket.socket] = None, map: Optional[SocketMap] = None) -> None:
        dispatcher.__init__(self, sock, map)
        self.out_buffer = b""

    def initiate_send(self) -> None:
        sent = dispatcher.send(self, self.out_buffer[:65536])
        self.out_buffer = self.out_buffer[sent:]

    def handle_write(self) -> None:
        self.initiate_send()

    def writable(self) -> bool:
        return not self.connected or len(self.out_buffer) > 0

    def send(self, data: bytes) -> None:  # type: ignore[override]  # stdlib returns None here
        if self.debug:
            self.log_info("sending %s" % repr(data))
        self.out_buffer = self.out_buffer + data
        self.initiate_send()


def compact_traceback() -> Tuple[Tuple[str, str, str], Optional[type], Optional[BaseException], str]:
    """The exception being handled as ((file, function, line) of the innermost frame,
    type, value, "[file|function|line] ..." for every frame)."""
    exc_type, exc_value, tb = sys.exc_info()
    if tb is None:
        raise AssertionError("traceback does not exist")
    frames: List[Tuple[str, str, str]] = []
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, code.co_name, str(tb.tb_lineno)))
        tb = tb.tb_next
    info = " ".join("[%s|%s|%s]" % frame for frame in frames)
    return frames[-1], exc_type, exc_value, info


def close_all(map: Optional[SocketMap] = None, ignore_all: bool = False) -> None:
    """Close every channel in the map, then empty it."""
    if map is None:
        map = socket_map
    for channel in list(map.values()):
        try:
            channel.close()
        except OSError as exc:
            if exc.errno != EBADF and not ignore_all:
                raise
        except _reraised_exceptions:
            raise
        except BaseException:
            if not ignore_all:
                raise
    map.clear()


if os.name == "posix":

    class file_wrapper:
        """Just enough of the socket interface over a (duplicated) file descriptor,
        so pipes and terminals can join the loop."""

        def __init__(self, fd: int) -> None:
            self.fd = os.dup(fd)

        def __del__(self) -> None:
            if self.fd >= 0:
                warnings.warn("unclosed file %r" % self, ResourceWarning, source=self)
            self.close()

        def recv(self, size: int) -> bytes:
            return os.read(self.fd, size)

        def send(self, data: bytes) -> int:
            return os.write(self.fd, data)

        read = recv
        write = send

        def getsockopt(self, level: int, optname: int, buflen: Optional[int] = None) -> int:
            if level == socket.SOL_SOCKET and optname == socket.SO_ERROR and not buflen:
                return 0
            raise NotImplementedError("Only asyncore specific behaviour implemented.")

        def close(self) -> None:
            if self.fd < 0:
                return
            fd, self.fd = self.fd, -1
            os.close(fd)

        def fileno(self) -> int:
            return self.fd

    class file_dispatcher(dispatcher):
        """A dispatcher over a file descriptor (or an object with ``fileno()``)."""

        def __init__(self, fd: Any, map: Optional[SocketMap] = None) -> None:
            dispatcher.__init__(self, None, map)
            self.connected = True
            try:
                fd = fd.fileno()
            except AttributeError:
                pass
            self.set_file(fd)
            os.set_blocking(fd, False)

        def set_file(self, fd: int) -> None:
            self.socket = file_wrapper(fd)
            self._fileno = self.socket.fileno()
            self.add_channel()
