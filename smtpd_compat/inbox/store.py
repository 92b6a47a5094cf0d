"""Received messages, kept in memory or in SQLite, for the inbox and the pytest plugin.

The public names in one place; each lives in the module of its concern:
``message`` (the stored message), ``search`` (``Query``), ``base_store``
(locking, caps, events, subscriptions, waiting), ``memory_store``,
``sqlite_store`` and ``handler`` (the SMTP handler that fills a store).
"""

from __future__ import annotations

from smtpd_compat.inbox.base_store import BaseStore, MessageTooLarge, StoreEvent, Subscription
from smtpd_compat.inbox.base_store import Listener as Listener
from smtpd_compat.inbox.base_store import Predicate as Predicate
from smtpd_compat.inbox.handler import StoringHandler
from smtpd_compat.inbox.memory_store import MessageStore
from smtpd_compat.inbox.message import HEAD_LIMIT as HEAD_LIMIT
from smtpd_compat.inbox.message import MessageGone, StoredMessage
from smtpd_compat.inbox.message import RawLoader as RawLoader
from smtpd_compat.inbox.message import header_section as header_section
from smtpd_compat.inbox.message import header_text as header_text
from smtpd_compat.inbox.search import Query
from smtpd_compat.inbox.search import SearchFields as SearchFields
from smtpd_compat.inbox.sqlite_store import SQLiteStore

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
