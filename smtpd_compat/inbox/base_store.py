"""What every message store shares: locking, caps, change events, subscriptions, waiting.

Thread-safe: the SMTP server adds from its Controller thread while web
requests, tests and server-sent event streams read from others.  Every change
is announced to listeners (under the store's lock, in order), which is how
``wait_for`` and ``subscribe`` learn about new mail without polling.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from abc import ABCMeta, abstractmethod
from typing import Callable, Deque, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from smtpd_compat.inbox.message import StoredMessage
from smtpd_compat.inbox.search import Query
from smtpd_compat.modern.session import PeerType

__all__ = ["BaseStore", "Listener", "MessageTooLarge", "Predicate", "StoreEvent", "Subscription"]

log = logging.getLogger("smtpd_compat.inbox")

Predicate = Callable[[StoredMessage], bool]
Listener = Callable[["StoreEvent"], None]


class StoreEvent(NamedTuple):
    """``added`` (with the message), ``deleted`` (with its id), ``cleared``, or ``overflow``.

    ``overflow`` is only ever seen by a ``Subscription`` that fell too far behind:
    it has lost events and should reload what it shows.
    """

    kind: str
    id: Optional[str] = None
    message: Optional[StoredMessage] = None


class MessageTooLarge(ValueError):
    """The message alone is bigger than the store's ``max_bytes``."""


class BaseStore(metaclass=ABCMeta):
    """What both stores share: locking, caps, events, waiting.  Subclasses keep the rows."""

    def __init__(self, max_messages: Optional[int] = None, max_bytes: Optional[int] = None) -> None:
        if max_messages is not None and max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        self._listeners: List[Listener] = []

    # -- storage primitives, called with the lock held ------------------------------

    @abstractmethod
    def _insert(self, message: Callable[[str], StoredMessage]) -> StoredMessage:
        """Store the message that ``message(new_id)`` builds and return it."""

    @abstractmethod
    def _fetch(self, id: str) -> Optional[StoredMessage]: ...

    @abstractmethod
    def _newest_first(self, query: Optional[Query]) -> Iterator[StoredMessage]: ...

    @abstractmethod
    def _oldest_first(self) -> Iterator[StoredMessage]: ...

    @abstractmethod
    def _remove(self, id: str) -> bool: ...

    @abstractmethod
    def _remove_all(self) -> None: ...

    @abstractmethod
    def _totals(self) -> Tuple[int, int]:
        """(number of messages, bytes of raw content)."""

    @abstractmethod
    def _oldest_id(self) -> Optional[str]: ...

    # -- public interface -------------------------------------------------------------

    def add(
        self,
        raw: bytes,
        *,
        mail_from: str,
        rcpt_tos: Sequence[str],
        peer: PeerType = None,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
        received: Optional[float] = None,
    ) -> StoredMessage:
        """Store a message; the oldest ones go first if a cap is exceeded."""
        if self.max_bytes is not None and len(raw) > self.max_bytes:
            raise MessageTooLarge(
                "message of {} bytes exceeds the store's {} bytes".format(len(raw), self.max_bytes)
            )
        when = time.time() if received is None else received

        def build(new_id: str) -> StoredMessage:
            return StoredMessage(
                new_id, when, peer, mail_from, rcpt_tos, mail_options, rcpt_options, raw
            )

        with self._lock:
            stored = self._insert(build)
            self._emit(StoreEvent("added", stored.id, stored))
            self._enforce_caps()
        return stored

    def get(self, id: str) -> Optional[StoredMessage]:
        with self._lock:
            return self._fetch(id)

    def list(
        self, query: Union[None, str, Query] = None, limit: Optional[int] = None
    ) -> List[StoredMessage]:
        """Messages newest first, those matching ``query`` only, at most ``limit`` of them."""
        if isinstance(query, str):
            query = Query(query)
        if limit is not None and limit <= 0:
            return []
        with self._lock:
            found: List[StoredMessage] = []
            for message in self._newest_first(query or None):
                found.append(message)
                if limit is not None and len(found) >= limit:
                    break
            return found

    def all(self) -> List[StoredMessage]:
        """Every message, oldest first."""
        with self._lock:
            return list(self._oldest_first())

    def __iter__(self) -> Iterator[StoredMessage]:
        return iter(self.all())

    def __len__(self) -> int:
        with self._lock:
            return self._totals()[0]

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._totals()[1]

    def delete(self, id: str) -> bool:
        with self._lock:
            if not self._remove(id):
                return False
            self._emit(StoreEvent("deleted", id))
            return True

    def clear(self) -> None:
        with self._lock:
            self._remove_all()
            self._emit(StoreEvent("cleared"))

    def close(self) -> None:
        """Release resources (the SQLite connection); the in-memory store has none."""

    # -- waiting and events ----------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` on every change; returns a function that removes it.

        Listeners run in the thread that made the change, with the store's lock
        held: they must be quick and must not wait for other threads.
        """
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def subscribe(self, max_pending: int = 1000) -> "Subscription":
        """A queue of events for one consumer thread (server-sent events use one each)."""
        return Subscription(self, max_pending)

    def wait_for(
        self,
        predicate: Optional[Predicate] = None,
        timeout: Optional[float] = 10.0,
        *,
        query: Union[None, str, Query] = None,
    ) -> StoredMessage:
        """The newest message matching ``predicate`` and ``query``; waits for one if none is stored.

        Raises ``TimeoutError`` after ``timeout`` seconds (``None``: wait forever);
        an exception raised by ``predicate`` is raised here.
        """
        arrived = threading.Event()
        outcome: List[Union[StoredMessage, BaseException]] = []

        def deliver(result: Union[StoredMessage, BaseException]) -> None:
            outcome.append(result)
            arrived.set()

        remove = self._watch(predicate, query, deliver)
        try:
            if not outcome and not arrived.wait(timeout):
                raise TimeoutError("no matching message within {} seconds".format(timeout))
        finally:
            remove()
        return _unwrap(outcome[0])

    async def wait_for_async(
        self,
        predicate: Optional[Predicate] = None,
        timeout: Optional[float] = 10.0,
        *,
        query: Union[None, str, Query] = None,
    ) -> StoredMessage:
        """``wait_for`` for coroutines: the event loop is never blocked."""
        loop = asyncio.get_running_loop()
        future: "asyncio.Future[Union[StoredMessage, BaseException]]" = loop.create_future()

        def settle(result: Union[StoredMessage, BaseException]) -> None:
            if not future.done():
                future.set_result(result)

        def deliver(result: Union[StoredMessage, BaseException]) -> None:
            if loop.is_closed():
                return
            loop.call_soon_threadsafe(settle, result)

        remove = self._watch(predicate, query, deliver)
        try:
            result = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError("no matching message within {} seconds".format(timeout)) from None
        finally:
            remove()
        return _unwrap(result)

    def _watch(
        self,
        predicate: Optional[Predicate],
        query: Union[None, str, Query],
        deliver: Callable[[Union[StoredMessage, BaseException]], None],
    ) -> Callable[[], None]:
        """Deliver the newest stored match now, or the first one added later (once)."""
        matcher = _matcher(predicate, query)
        delivered = False

        def on_event(event: StoreEvent) -> None:
            nonlocal delivered
            if delivered or event.kind != "added" or event.message is None:
                return
            try:
                if not matcher(event.message):
                    return
                result: Union[StoredMessage, BaseException] = event.message
            except Exception as exc:  # the waiter, not the SMTP thread, should see it
                result = exc
            delivered = True
            deliver(result)

        with self._lock:
            # Registered under the lock, after looking: nothing can slip between.
            try:
                for message in self._newest_first(None):
                    if matcher(message):
                        deliver(message)
                        return lambda: None
            except Exception as exc:
                deliver(exc)
                return lambda: None
            return self.add_listener(on_event)

    def _emit(self, event: StoreEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # one broken listener must not lose the message for others
                log.exception("inbox store listener failed")

    def _enforce_caps(self) -> None:
        count, size = self._totals()
        while (self.max_messages is not None and count > self.max_messages) or (
            self.max_bytes is not None and size > self.max_bytes
        ):
            oldest = self._oldest_id()
            if oldest is None:
                break
            self.delete(oldest)
            count, size = self._totals()


def _matcher(predicate: Optional[Predicate], query: Union[None, str, Query]) -> Predicate:
    parsed = Query(query) if isinstance(query, str) else query

    def matches(message: StoredMessage) -> bool:
        if parsed and not parsed.matches(message.search_fields):
            return False
        return predicate is None or bool(predicate(message))

    return matches


def _unwrap(result: Union[StoredMessage, BaseException]) -> StoredMessage:
    if isinstance(result, BaseException):
        raise result
    return result


class Subscription:
    """Events for one consumer, queued so a slow consumer never blocks the SMTP server."""

    def __init__(self, store: BaseStore, max_pending: int = 1000) -> None:
        self._pending: Deque[StoreEvent] = collections.deque()
        self._max_pending = max_pending
        self._overflowed = False
        self._ready = threading.Condition()
        self._remove = store.add_listener(self._queue)

    def _queue(self, event: StoreEvent) -> None:
        with self._ready:
            if len(self._pending) >= self._max_pending:
                self._pending.clear()
                self._overflowed = True
            else:
                self._pending.append(event)
            self._ready.notify()

    def get(self, timeout: Optional[float] = None) -> Optional[StoreEvent]:
        """The next event, or ``None`` if none came within ``timeout`` seconds."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._overflowed or bool(self._pending), timeout):
                return None
            if self._overflowed:
                self._overflowed = False
                return StoreEvent("overflow")
            return self._pending.popleft()

    def close(self) -> None:
        self._remove()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
