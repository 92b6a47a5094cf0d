"""The message store in memory: lost when the process ends."""

from __future__ import annotations

import collections
from typing import Callable, Dict, Iterator, Optional, Tuple

from smtpd_compat.inbox.base_store import BaseStore
from smtpd_compat.inbox.message import StoredMessage
from smtpd_compat.inbox.search import Query, SearchFields

__all__ = ["MessageStore"]


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
