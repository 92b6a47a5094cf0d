"""LMTP (RFC 2033): the SMTP protocol with LHLO instead of HELO/EHLO, and
one reply per accepted recipient once a message ends (RFC 2033 4.2).

``handle_DATA`` may return one status per recipient, as a list in
``envelope.rcpt_tos`` order, or a single status that then applies to every
recipient, so aiosmtpd handlers written for SMTP work unchanged.  aiosmtpd's
LMTP sent a single reply whatever the number of recipients (its issue #517).
"""

from __future__ import annotations

from typing import Any, Optional

from .hooks import syntax
from .session import MISSING, Envelope
from .smtp import ALLOWED_BEFORE_STARTTLS, SMTP

__all__ = ["LMTP"]


class LMTP(SMTP):
    #: Declared by aiosmtpd's LMTP too; kept for API parity.
    show_smtp_greeting: bool = False
    #: aiosmtpd left LHLO out, so an LMTP client could not greet before
    #: STARTTLS under require_starttls.
    allowed_before_starttls = ALLOWED_BEFORE_STARTTLS | {"LHLO"}

    @syntax("LHLO hostname")
    async def smtp_LHLO(self, arg: Optional[str]) -> None:
        """The LMTP greeting: EHLO under another name (same hook)."""
        await super().smtp_EHLO(arg)

    async def smtp_HELO(self, hostname: Optional[str]) -> None:
        await self.push('500 Error: command "HELO" not recognized')

    async def smtp_EHLO(self, hostname: Optional[str]) -> None:
        await self.push('500 Error: command "EHLO" not recognized')

    async def _deliver(self) -> Any:
        # A handler failure must still produce one reply per recipient, so it
        # becomes a status here rather than a single reply in the command loop.
        assert self.envelope is not None
        try:
            status = await super()._deliver()
            _check_statuses(status, len(self.envelope.rcpt_tos))
        except Exception as error:
            status = await self._exception_status(error)
        return status

    async def _push_data_reply(self, envelope: Envelope, status: Any) -> None:
        statuses = status if isinstance(status, (list, tuple)) else [status] * len(envelope.rcpt_tos)
        for each in statuses:
            await self.push(each)


def _check_statuses(status: Any, recipients: int) -> None:
    """Refuse what cannot become one reply per recipient."""
    if status is MISSING:
        return
    if isinstance(status, (list, tuple)):
        if len(status) != recipients:
            raise ValueError(f"handle_DATA returned {len(status)} statuses for {recipients} recipients")
        items = list(status)
    else:
        items = [status]
    for item in items:
        if not isinstance(item, (str, bytes)):
            raise TypeError(f"handle_DATA returned {item!r}, not a status")
