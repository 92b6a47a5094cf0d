"""Server classes for the command-line tests (``-c tests.modern._pid_classes.X``):
NOOP answers with the pid of the process serving the connection (and the
modern handler's VRFY with the module of the event loop serving it); a
Maildir handler that records the PROXY header's client."""

from __future__ import annotations

import asyncio
import os
from email.message import Message
from typing import Any, Optional

import smtpd_compat as smtpd
from smtpd_compat.modern.handlers import Mailbox


class PidHandler:
    """A modern handler."""

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: Any) -> str:
        return f"250 pid {os.getpid()}"

    async def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
        return f"252 loop {type(asyncio.get_running_loop()).__module__}"


class PidChannel(smtpd.SMTPChannel):
    def smtp_NOOP(self, arg: Optional[str]) -> None:
        self.push(f"250 pid {os.getpid()}")


class PidServer(smtpd.SMTPServer):
    """A legacy server (the modern handler's NOOP, a sink otherwise)."""

    channel_class = PidChannel

    def process_message(self, *args: Any, **kwargs: Any) -> None:
        return None


class ProxyMailbox(Mailbox):
    """The stock Maildir handler, also noting where the client really was
    (the PROXY header's source address) in ``X-Client``."""

    def prepare_message(self, session: Any, envelope: Any) -> Message:
        message = super().prepare_message(session, envelope)
        if session.proxy_data:
            message["X-Client"] = str(session.proxy_data.src_addr)
        return message
