"""Fault injection on the modern face: replies, delays and a dropped connection.

``FaultySMTP`` wraps every ``smtp_*`` command of ``SMTP``: before the
command runs it waits for the configured delay, then answers with the
configured fault reply instead of running the command (so a refused RCPT
is not added to the envelope, exactly as when a handler refuses it).
``DATA`` is different on purpose: its delay and reply apply after the
content, where a real server decides on the message (the message is then
not stored).
"""

from __future__ import annotations

import asyncio
import collections
import functools
from typing import Any, Callable, Coroutine, Deque, Dict, List, Mapping, Optional, Tuple, Union

from smtpd_compat.engine.framing import DataEnd
from smtpd_compat.modern.hooks import class_functions
from smtpd_compat.modern.smtp import SMTP

from .options import FaultReply

__all__ = ["FaultPlan", "FaultySMTP"]

Command = Callable[[SMTP, Optional[str]], Coroutine[Any, Any, None]]


class FaultPlan:
    """The faults of one server, shared by its connections (all on its loop).

    A reply given as a sequence is used up one matching command at a time,
    across connections: ``{"MAIL": ["451 4.3.0 Try again later"]}`` fails
    the first attempt only, so a client's retry succeeds.
    """

    def __init__(
        self,
        replies: Mapping[str, FaultReply],
        delays: Mapping[str, float],
        drop_during_data: bool,
    ) -> None:
        self._replies: Dict[str, Union[str, Deque[Optional[str]]]] = {
            key: value if isinstance(value, str) else collections.deque(value) for key, value in replies.items()
        }
        self._delays = dict(delays)
        self.drop_during_data = drop_during_data

    def __bool__(self) -> bool:
        return bool(self._replies or self._delays or self.drop_during_data)

    def reply(self, verb: str, address: Optional[str] = None) -> Optional[str]:
        """The fault reply for this command, or None to answer normally.
        A per-address entry (``"RCPT bob@example.com"``) decides before the
        verb's own."""
        keys = (f"{verb} {address.lower()}", verb) if address else (verb,)
        for key in keys:
            entry = self._replies.get(key)
            if entry is None:
                continue
            if isinstance(entry, str):
                return entry
            return entry.popleft() if entry else None
        return None

    async def delay(self, verb: str) -> None:
        seconds = self._delays.get(verb, 0.0)
        if seconds > 0:
            await asyncio.sleep(seconds)


def _address(arg: Optional[str]) -> Optional[str]:
    """The ``<address>`` of a MAIL/RCPT argument, for per-address faults."""
    if not arg:
        return None
    start, end = arg.find("<"), arg.find(">")
    return arg[start + 1 : end] if 0 <= start < end else None


def _with_faults(verb: str, command: Command) -> Command:
    @functools.wraps(command)  # keeps the HELP syntax attributes
    async def run(self: SMTP, arg: Optional[str]) -> None:
        assert isinstance(self, FaultySMTP)
        plan = self.fault_plan
        await plan.delay(verb)
        reply = plan.reply(verb, _address(arg) if verb in ("MAIL", "RCPT") else None)
        if reply is None:
            await command(self, arg)
        else:
            await self.push(reply)

    return run


class FaultySMTP(SMTP):
    """``SMTP`` of the test servers: faults from ``fault_plan`` (none by default)."""

    fault_plan = FaultPlan({}, {}, False)

    def _greeting(self) -> str:
        return self.fault_plan.reply("CONNECT") or super()._greeting()

    async def _read_message(
        self, size_limit: Optional[int], line_limit: Optional[int]
    ) -> Tuple[List[bytes], Optional[DataEnd]]:
        if not self.fault_plan.drop_during_data:
            return await super()._read_message(size_limit, line_limit)
        # Hang up once the first content bytes are in: the client is mid-message.
        if not self._peek_input():
            await self._wait_for_input()
        if isinstance(self.transport, asyncio.WriteTransport):
            self.transport.abort()
        return [], None

    async def _deliver(self) -> Any:
        plan = self.fault_plan
        await plan.delay("DATA")
        reply = plan.reply("DATA")
        return await super()._deliver() if reply is None else reply


# One wrapper per command, DATA excepted (handled after the content above).
for _verb, _command in class_functions(SMTP, "smtp_").items():
    if _verb != "DATA":
        setattr(FaultySMTP, "smtp_" + _verb, _with_faults(_verb, _command))
del _verb, _command
