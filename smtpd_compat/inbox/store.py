"""Received messages, kept in memory or in SQLite, for the inbox and the pytest plugin.

Thread-safe: the SMTP server adds from its Controller thread while web
requests, tests and server-sent event streams read from others.  Every change
is announced to listeners (under the store's lock, in order), which is how
``wait_for`` and ``subscribe`` learn about new mail without polling.
"""

from __future__ import annotations

import asyncio
import collections
import email.policy
import functools
import json
import logging
import sqlite3
import threading
import time
from abc import ABCMeta, abstractmethod
from email.message import EmailMessage
from email.parser import BytesParser
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from smtpd_compat.modern.session import Envelope, PeerType, Session

__all__ = [
    "BaseStore",
    "MessageGone",
    "MessageStore",
    "MessageTooLarge",
    "Query",
    "SQLiteStore",
    "StoreEvent",
    "StoredMessage",
    "StoringHandler",
    "Subscription",
]

log = logging.getLogger("smtpd_compat.inbox")

Predicate = Callable[["StoredMessage"], bool]
Listener = Callable[["StoreEvent"], None]


class SearchFields(NamedTuple):
    """Case-folded text a query is matched against: headers and envelope together."""

    sender: str
    recipients: str
    subject: str


RawLoader = Callable[[], bytes]

#: Most of a header section kept apart for listings (longer ones are cut, bodies never read).
HEAD_LIMIT = 256 * 1024


def header_section(raw: bytes) -> bytes:
    """The header lines of a message, up to the first empty line."""
    # Keep the last header's line end: +2 after CRLF, +1 after a bare LF.
    ends = [
        found + keep
        for found, keep in ((raw.find(b"\r\n\r\n"), 2), (raw.find(b"\n\n"), 1))
        if found >= 0
    ]
    return raw[: min(ends) if ends else len(raw)][:HEAD_LIMIT]


class StoredMessage:
    """One received message.  Immutable; ``message`` is parsed on first use and cached.

    A message listed from an SQLite store reads its ``raw`` content on first
    use; if it was deleted in between, that raises ``MessageGone``.
    """

    __slots__ = (
        "id",
        "received",
        "peer",
        "mail_from",
        "rcpt_tos",
        "mail_options",
        "rcpt_options",
        "size",
        "_raw",
        "_head",
        "_headers",
        "_message",
    )

    id: str
    received: float
    peer: PeerType
    mail_from: str
    rcpt_tos: Tuple[str, ...]
    mail_options: Tuple[str, ...]
    rcpt_options: Tuple[str, ...]
    size: int
    _raw: Union[bytes, RawLoader]
    _head: Optional[bytes]
    _headers: Optional[EmailMessage]
    _message: Optional[EmailMessage]

    def __init__(
        self,
        id: str,
        received: float,
        peer: PeerType,
        mail_from: str,
        rcpt_tos: Iterable[str],
        mail_options: Iterable[str],
        rcpt_options: Iterable[str],
        raw: Union[bytes, RawLoader],
        *,
        size: Optional[int] = None,
        head: Optional[bytes] = None,
    ) -> None:
        if size is None:
            assert isinstance(raw, bytes), "a raw loader needs the size"
            size = len(raw)
        setattr_ = object.__setattr__
        setattr_(self, "id", id)
        setattr_(self, "received", received)
        setattr_(self, "peer", peer)
        setattr_(self, "mail_from", mail_from)
        setattr_(self, "rcpt_tos", tuple(rcpt_tos))
        setattr_(self, "mail_options", tuple(mail_options))
        setattr_(self, "rcpt_options", tuple(rcpt_options))
        setattr_(self, "size", size)
        setattr_(self, "_raw", bytes(raw) if isinstance(raw, (bytearray, memoryview)) else raw)
        setattr_(self, "_head", head)
        setattr_(self, "_headers", None)
        setattr_(self, "_message", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("StoredMessage is immutable")

    def __repr__(self) -> str:
        return "<StoredMessage id={} from={!r} to={!r} size={}>".format(
            self.id, self.mail_from, self.rcpt_tos, self.size
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoredMessage):
            return NotImplemented
        return self.id == other.id and self.size == other.size and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def raw(self) -> bytes:
        """The content as received: after dot-unstuffing, CRLF line ends."""
        if not isinstance(self._raw, bytes):
            object.__setattr__(self, "_raw", self._raw())
            assert isinstance(self._raw, bytes)
        return self._raw

    @property
    def message(self) -> EmailMessage:
        """The whole message (``email.policy.default``); its ``envelope`` attribute is this object.

        Parsed once and shared by every caller: treat it as read-only.
        """
        if self._message is None:
            parsed = BytesParser(policy=email.policy.default).parsebytes(self.raw)
            assert isinstance(parsed, EmailMessage)
            parsed.envelope = self  # type: ignore[attr-defined]
            object.__setattr__(self, "_message", parsed)
            assert self._message is not None
        return self._message

    @property
    def headers(self) -> EmailMessage:
        """Only the header section, parsed without the body (cheap for large messages)."""
        if self._headers is None:
            if self._message is not None:
                parsed = self._message
            else:
                head = self._head if self._head is not None else header_section(self.raw)
                parsed = BytesParser(policy=email.policy.default).parsebytes(head, headersonly=True)
                assert isinstance(parsed, EmailMessage)
            object.__setattr__(self, "_headers", parsed)
            assert self._headers is not None
        return self._headers

    def header(self, name: str) -> str:
        """One header as text ("" when absent), even when it is too broken to parse."""
        return header_text(self.headers, name)

    @property
    def subject(self) -> str:
        return self.header("Subject")

    @property
    def sender(self) -> str:
        """The From header as shown in the message (not the envelope's MAIL FROM)."""
        return self.header("From")

    @property
    def recipients(self) -> Tuple[str, ...]:
        """The To, Cc and Bcc headers, one entry per header present."""
        return tuple(text for text in map(self.header, ("To", "Cc", "Bcc")) if text)

    @property
    def search_fields(self) -> SearchFields:
        return SearchFields(
            sender=" ".join((self.sender, self.mail_from)).casefold(),
            recipients=" ".join(self.recipients + self.rcpt_tos).casefold(),
            subject=self.subject.casefold(),
        )


def header_text(message: EmailMessage, name: str) -> str:
    """``message[name]`` as one line of text; the raw value when the header registry chokes."""
    try:
        value = message[name]
    except Exception:  # the header registry has raised on hostile input before
        raw = [v for k, v in message.raw_items() if k.lower() == name.lower()]
        value = raw[0] if raw else None
    if value is None:
        return ""
    return " ".join(str(value).split())


class Query:
    """A search: words all of which must match, each optionally ``from:``, ``to:`` or ``subject:``.

    Matching is a case-insensitive substring test; a bare word matches sender,
    recipients or subject (headers and envelope).  ``"..."`` groups words.
    """

    FIELDS = ("from", "to", "subject")

    def __init__(self, text: str) -> None:
        self.text = text
        self.terms: List[Tuple[Optional[str], str]] = []
        for word in _split_words(text):
            field, sep, rest = word.partition(":")
            if sep and field.lower() in self.FIELDS:
                if rest:
                    self.terms.append((field.lower(), rest.casefold()))
            else:
                self.terms.append((None, word.casefold()))

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, fields: SearchFields) -> bool:
        by_name = {"from": fields.sender, "to": fields.recipients, "subject": fields.subject}
        for field, needle in self.terms:
            haystacks = [by_name[field]] if field else list(by_name.values())
            if not any(needle in haystack for haystack in haystacks):
                return False
        return True


def _split_words(text: str) -> Iterator[str]:
    # Like shlex, but an unbalanced quote just runs to the end instead of raising.
    word: List[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char.isspace() and not quoted:
            if word:
                yield "".join(word)
            word = []
        else:
            word.append(char)
    if word:
        yield "".join(word)


class StoreEvent(NamedTuple):
    """``added`` (with the message), ``deleted`` (with its id), ``cleared``, or ``overflow``.

    ``overflow`` is only ever seen by a ``Subscription`` that fell too far behind:
    it has lost events and should reload what it shows.
    """

    kind: str
    id: Optional[str] = None
    message: Optional[StoredMessage] = None


class MessageGone(LookupError):
    """A listed message's content was asked for after the message was deleted."""


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


class MessageStore(BaseStore):
    """Messages in memory, lost when the process ends."""

    def __init__(self, max_messages: Optional[int] = None, max_bytes: Optional[int] = None) -> None:
        super().__init__(max_messages, max_bytes)
        self._messages: "collections.OrderedDict[str, StoredMessage]" = collections.OrderedDict()
        self._search: Dict[str, SearchFields] = {}
        self._bytes = 0
        self._last_id = 0

    def _insert(self, message: Callable[[str], StoredMessage]) -> StoredMessage:
        self._last_id += 1
        stored = message(str(self._last_id))
        self._messages[stored.id] = stored
        self._search[stored.id] = stored.search_fields
        self._bytes += stored.size
        return stored

    def _fetch(self, id: str) -> Optional[StoredMessage]:
        return self._messages.get(id)

    def _newest_first(self, query: Optional[Query]) -> Iterator[StoredMessage]:
        for message in reversed(list(self._messages.values())):
            if query is None or query.matches(self._search[message.id]):
                yield message

    def _oldest_first(self) -> Iterator[StoredMessage]:
        return iter(list(self._messages.values()))

    def _remove(self, id: str) -> bool:
        message = self._messages.pop(id, None)
        if message is None:
            return False
        del self._search[id]
        self._bytes -= message.size
        return True

    def _remove_all(self) -> None:
        self._messages.clear()
        self._search.clear()
        self._bytes = 0

    def _totals(self) -> Tuple[int, int]:
        return len(self._messages), self._bytes

    def _oldest_id(self) -> Optional[str]:
        return next(iter(self._messages), None)


_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received REAL NOT NULL,
    peer TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt_tos TEXT NOT NULL,
    mail_options TEXT NOT NULL,
    rcpt_options TEXT NOT NULL,
    search_sender TEXT NOT NULL,
    search_recipients TEXT NOT NULL,
    search_subject TEXT NOT NULL,
    size INTEGER NOT NULL,
    head BLOB NOT NULL,
    raw BLOB NOT NULL
)
"""
# Everything but the content: listings read the header section only.
_COLUMNS = "id, received, peer, mail_from, rcpt_tos, mail_options, rcpt_options, size, head"


class SQLiteStore(BaseStore):
    """Messages in an SQLite file (stdlib ``sqlite3``) that survive restarts.

    One connection, used under the store's lock from whichever thread calls.
    Ids keep increasing across restarts and deletions (``AUTOINCREMENT``).
    ``get()`` reads the whole message; ``list()`` and ``all()`` read only
    headers, and each message's content when first used.
    """

    def __init__(
        self, path: str, max_messages: Optional[int] = None, max_bytes: Optional[int] = None
    ) -> None:
        super().__init__(max_messages, max_bytes)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # The SQL side of a search calls back into Query, so matching has one definition.
        self._query: Optional[Query] = None
        self._db.create_function("inbox_match", 3, self._sql_match, deterministic=True)
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            self._db.close()
            raise ValueError("{}: unknown inbox schema version {}".format(path, version))
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._db.execute("PRAGMA user_version = {}".format(_SCHEMA_VERSION))
        with self._lock:
            self._enforce_caps()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _insert(self, message: Callable[[str], StoredMessage]) -> StoredMessage:
        # The row decides the id: insert from a draft, then build the real one.
        draft = message("")
        fields = draft.search_fields
        cursor = self._db.execute(
            "INSERT INTO messages (received, peer, mail_from, rcpt_tos, mail_options, rcpt_options,"
            " search_sender, search_recipients, search_subject, size, head, raw)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                draft.received,
                json.dumps(draft.peer),
                draft.mail_from,
                json.dumps(draft.rcpt_tos),
                json.dumps(draft.mail_options),
                json.dumps(draft.rcpt_options),
                fields.sender,
                fields.recipients,
                fields.subject,
                draft.size,
                header_section(draft.raw),
                draft.raw,
            ),
        )
        return message(str(cursor.lastrowid))

    def _fetch(self, id: str) -> Optional[StoredMessage]:
        if not id.isdigit():
            return None
        row = self._db.execute(
            "SELECT {}, raw FROM messages WHERE id = ?".format(_COLUMNS), (int(id),)
        ).fetchone()
        return None if row is None else self._message(row[:-1], row[-1])

    def _newest_first(self, query: Optional[Query]) -> Iterator[StoredMessage]:
        if query is None:
            rows = self._db.execute("SELECT {} FROM messages ORDER BY id DESC".format(_COLUMNS))
        else:
            self._query = query
            rows = self._db.execute(
                "SELECT {} FROM messages WHERE inbox_match(search_sender, search_recipients,"
                " search_subject) ORDER BY id DESC".format(_COLUMNS)
            )
        # Lazily: callers stop at their limit, under the lock, so later rows are never read.
        return map(self._message, rows)

    def _sql_match(self, sender: str, recipients: str, subject: str) -> bool:
        assert self._query is not None
        return self._query.matches(SearchFields(sender, recipients, subject))

    def _oldest_first(self) -> Iterator[StoredMessage]:
        rows = self._db.execute("SELECT {} FROM messages ORDER BY id".format(_COLUMNS))
        return map(self._message, rows)

    def _remove(self, id: str) -> bool:
        if not id.isdigit():
            return False
        return self._db.execute("DELETE FROM messages WHERE id = ?", (int(id),)).rowcount > 0

    def _remove_all(self) -> None:
        self._db.execute("DELETE FROM messages")

    def _totals(self) -> Tuple[int, int]:
        count, size = self._db.execute("SELECT COUNT(*), TOTAL(size) FROM messages").fetchone()
        return int(count), int(size)

    def _oldest_id(self) -> Optional[str]:
        row = self._db.execute("SELECT MIN(id) FROM messages").fetchone()
        return None if row[0] is None else str(row[0])

    def _message(self, row: Tuple[Any, ...], raw: Optional[bytes] = None) -> StoredMessage:
        id_, received, peer, mail_from, rcpt_tos, mail_options, rcpt_options, size, head = row
        peer_value = json.loads(peer)
        return StoredMessage(
            str(id_),
            received,
            tuple(peer_value) if isinstance(peer_value, list) else peer_value,
            mail_from,
            json.loads(rcpt_tos),
            json.loads(mail_options),
            json.loads(rcpt_options),
            self._loader(id_) if raw is None else raw,
            size=size,
            head=head,
        )

    def _loader(self, id: int) -> RawLoader:
        def load() -> bytes:
            with self._lock:
                row = self._db.execute("SELECT raw FROM messages WHERE id = ?", (id,)).fetchone()
            if row is None:
                raise MessageGone("message {} was deleted from {}".format(id, self.path))
            return bytes(row[0])

        return load


class StoringHandler:
    """A modern-face handler that keeps every message in ``store``.

    Answers ``250 OK: queued as <id>`` (Postfix's wording, so clients log the
    inbox id), or ``552 5.3.4`` when the message alone exceeds the store's
    ``max_bytes``.  The store is written from the loop's executor so an SQLite
    write never stalls other sessions.
    """

    def __init__(self, store: BaseStore) -> None:
        self.store = store

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        if raw is None:  # only a handler-built envelope lacks it
            content = envelope.content
            raw = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else b""
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(
                None,
                functools.partial(
                    self.store.add,
                    raw,
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=envelope.rcpt_tos,
                    peer=session.peer,
                    mail_options=envelope.mail_options,
                    rcpt_options=envelope.rcpt_options,
                ),
            )
        except MessageTooLarge:
            return "552 5.3.4 Error: message too big for the inbox"
        return "250 OK: queued as {}".format(stored.id)
