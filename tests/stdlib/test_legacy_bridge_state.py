"""The bridge keeps one copy of a transaction's state, and one event loop per
channel: hooks see what stdlib code assigns, stdlib code sees what hooks
assign, and no loop is shared between connections."""

from __future__ import annotations

import asyncio
from typing import Any, List, Tuple

import smtpd_compat as smtpd
from tests.stdlib.test_legacy_channel_styles import FakeSocket


class Hooked(smtpd.SMTPServer):
    def __init__(self) -> None:
        super().__init__(None, None)
        self.loops: List[Tuple[Any, Any]] = []
        self.seen: List[Any] = []

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        await asyncio.sleep(0.001)  # a suspension that needs a running loop
        self.loops.append((asyncio.get_running_loop(), session.loop))
        envelope.mail_from = address.upper()
        envelope.mail_options.extend(options)
        return "250 hooked"

    def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # type: ignore[override]
        self.seen.append((session.host_name, envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 delivered"


class AddsRecipients(smtpd.SMTPChannel):
    """A stdlib-style subclass that keeps the transaction in the channel's attributes."""

    def smtp_RCPT(self, arg: Any) -> None:
        self.rcpttos.append(arg.partition(":")[2].strip("<>"))
        self.push("250 noted")


def run(server: Hooked, data: bytes, channel_class: Any = smtpd.SMTPChannel) -> Tuple[Any, List[bytes]]:
    fake = FakeSocket([data])
    channel = channel_class(server, fake, ("192.0.2.1", 25), map={})
    channel.handle_read()
    return channel, b"".join(fake.sent).split(b"\r\n")[1:-1]


def test_hook_and_channel_share_the_transaction() -> None:
    server = Hooked()
    channel, replies = run(
        server, b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\n", AddsRecipients
    )
    assert replies[1:] == [b"250 hooked", b"250 noted", b"354 End data with <CR><LF>.<CR><LF>", b"250 delivered"]
    assert server.seen == [("x", "A@B", ["c@d"], b"hi\r\n")]
    assert channel.mail_options == []  # set through the hook's envelope
    assert channel.mailfrom is None  # the transaction ended
    channel.close()


def test_each_channel_runs_its_hooks_on_its_own_loop() -> None:
    server = Hooked()
    first, _ = run(server, b"HELO x\r\nMAIL FROM:<a@b>\r\nRSET\r\nMAIL FROM:<e@f>\r\n")
    second, _ = run(server, b"HELO x\r\nMAIL FROM:<a@b>\r\n")
    (one, one_session), (again, _), (two, two_session) = server.loops
    assert one is one_session is again, "one loop for all hooks of a connection"
    assert two is two_session and two is not one, "no loop shared between connections"
    first.close()
    second.close()
    assert one.is_closed() and two.is_closed()
