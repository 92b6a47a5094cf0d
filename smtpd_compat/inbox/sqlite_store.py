"""The message store in an SQLite file (stdlib ``sqlite3``): survives restarts."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable, Iterator, Optional, Tuple

from smtpd_compat.inbox.base_store import BaseStore
from smtpd_compat.inbox.message import MessageGone, RawLoader, StoredMessage, header_section
from smtpd_compat.inbox.search import Query, SearchFields

__all__ = ["SQLiteStore"]

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
