"""The modern-face handler that files every received message in a store."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from smtpd_compat.inbox.base_store import BaseStore, MessageTooLarge
from smtpd_compat.modern.session import Envelope, Session

__all__ = ["StoringHandler"]


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
