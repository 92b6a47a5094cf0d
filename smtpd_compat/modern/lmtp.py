"""LMTP (RFC 2033): the SMTP protocol with LHLO and no HELO/EHLO."""

from __future__ import annotations

from typing import Optional

from .hooks import syntax
from .smtp import SMTP

__all__ = ["LMTP"]


class LMTP(SMTP):
    #: Declared by aiosmtpd's LMTP too; kept for API parity.
    show_smtp_greeting: bool = False

    @syntax("LHLO hostname")
    async def smtp_LHLO(self, arg: Optional[str]) -> None:
        """The LMTP greeting: EHLO under another name (same hook)."""
        await super().smtp_EHLO(arg)

    async def smtp_HELO(self, hostname: Optional[str]) -> None:
        await self.push('500 Error: command "HELO" not recognized')

    async def smtp_EHLO(self, hostname: Optional[str]) -> None:
        await self.push('500 Error: command "EHLO" not recognized')
