"""Gradual migration: one SMTPServer subclass on both faces, modern hooks on the legacy one."""

from __future__ import annotations

import asyncio
import smtplib
import socket
from typing import Any, Dict, Iterator, List, Optional, Tuple
from unittest import mock

import pytest

import smtpd_compat as smtpd
from smtpd_compat.modern.controller import Controller
from tests.conftest import read_smtp_reply
from tests.stdlib._legacy_support import LoopThread, converse

MESSAGES = [
    ("a@example.com", ["b@example.com"], b"Subject: one\r\n\r\nhello\r\n.leading dot\r\n"),
    ("", ["c@example.com", "d@example.com"], b"Subject: two\r\n\r\ncaf\xc3\xa9\r\n\r\n"),
    ("e@example.com", ["f@example.com"], b"reply:250 Kept as 7\r\n"),
]


class Recorder(smtpd.SMTPServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: List[Tuple[Any, ...]] = []

    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> Optional[str]:
        self.calls.append((peer[0], mailfrom, list(rcpttos), data, kwargs))
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        if text.startswith("reply:"):
            return text[len("reply:"):]
        return None


def _send(port: int) -> List[Tuple[int, bytes]]:
    replies = []
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("me")
        for sender, recipients, body in MESSAGES:
            client.mail(sender, ["BODY=8BITMIME"])
            for rcpt in recipients:
                client.rcpt(rcpt)
            replies.append(client.data(body))
    return replies


def test_smtpserver_subclass_served_by_the_modern_controller() -> None:
    with LoopThread(Recorder, None) as legacy:
        legacy_replies = _send(legacy.port)
        legacy_calls = legacy.server.calls
    handler = Recorder(None, None)
    assert handler.socket is None  # localaddr=None: a handler that does not listen
    controller = Controller(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        modern_replies = _send(controller.port)
    finally:
        controller.stop()
    assert handler.calls == legacy_calls
    assert legacy_calls[0][4] == {"mail_options": ["BODY=8BITMIME"], "rcpt_options": []}
    assert modern_replies == legacy_replies
    assert legacy_replies[2] == (250, b"Kept as 7")


def test_process_message_arguments_are_identical_on_both_faces() -> None:
    for decode_data in (False, True):
        with LoopThread(Recorder, None, decode_data=decode_data) as legacy:
            _send_plain(legacy.port)
            legacy_calls = legacy.server.calls
        handler = Recorder(None, None, decode_data=decode_data)
        controller = Controller(handler, hostname="127.0.0.1", port=0)
        controller.start()
        try:
            _send_plain(controller.port)
        finally:
            controller.stop()
        assert handler.calls == legacy_calls
        assert len(legacy_calls) == 3
        assert legacy_calls[0][3] == ("Subject: x\n\nbody\n..dot" if decode_data else b"Subject: x\n\nbody\n..dot")
        assert ("mail_options" in legacy_calls[0][4]) is not decode_data


def _send_plain(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("a@b", ["c@d"], b"Subject: x\r\n\r\nbody\r\n..dot\r\n")
        client.sendmail("<>", ["e@f", "g@h"], b"")
        client.sendmail("i@j", ["k@l"], "Subject: \u00fc\r\n\r\n\u00fcber\r\n".encode())


# -- modern hooks honoured by the legacy channel ----------------------------------------


class Hooked(Recorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: Dict[str, Any] = {}

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: List[str]) -> List[str]:
        session.host_name = hostname.upper()
        await server.push("250-X-GREETED %s" % hostname)
        return responses[:-1] + ["250-X-HOOKED", responses[-1]]

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        await asyncio.sleep(0)  # a real suspension point
        if address.startswith("spam"):
            return "550 No spammers"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 Sender %s ok" % address

    def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        if not address.endswith("@example.com"):
            return "550 Not relaying to %s" % address
        envelope.rcpt_tos.append(address)
        return "250 Recipient ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.seen.update(
            host_name=session.host_name, peer=session.peer[0], mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos), content=envelope.content, original=envelope.original_content,
            loop_ok=isinstance(session.loop, asyncio.AbstractEventLoop),
        )
        return "250 Accepted by the hook"

    def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: Optional[str]) -> str:
        return "250 Hooked NOOP"

    def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
        return "252 Maybe %s" % address

    def handle_RSET(self, server: Any, session: Any, envelope: Any) -> None:
        return None  # means 250 OK

    def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return "221 See you"


@pytest.fixture
def hooked() -> Iterator[LoopThread]:
    with LoopThread(Hooked, None) as loop:
        yield loop


def test_hooks_run_on_the_legacy_channel(hooked: LoopThread) -> None:
    replies = converse(hooked.port, [
        b"EHLO client\r\n", b"MAIL FROM:<spam@x>\r\n", b"MAIL FROM:<a@b> BODY=8BITMIME\r\n",
        b"RCPT TO:<x@elsewhere.org>\r\n", b"RCPT TO:<r@example.com>\r\n", (b"DATA\r\n", False),
        b"Subject: s\r\n\r\n..body\r\n.\r\n", b"NOOP\r\n", b"VRFY <v@w>\r\n", b"RSET\r\n",
    ], quit=False)
    assert replies[1].startswith(b"250-X-GREETED client\r\n250-")
    assert replies[1].endswith(b"250-8BITMIME\r\n250-X-HOOKED\r\n250 HELP\r\n")
    assert replies[2:5] == [b"550 No spammers\r\n", b"250 Sender a@b ok\r\n", b"550 Not relaying to x@elsewhere.org\r\n"]
    assert replies[5] == b"250 Recipient ok\r\n"
    assert replies[6] == b"354 End data with <CR><LF>.<CR><LF>\r\n250 Accepted by the hook\r\n"
    assert replies[7:] == [b"250 Hooked NOOP\r\n", b"252 Maybe v@w\r\n", b"250 OK\r\n"]
    assert hooked.server.seen == {
        "host_name": "CLIENT", "peer": "127.0.0.1", "mail_from": "a@b", "rcpt_tos": ["r@example.com"],
        "content": b"Subject: s\r\n\r\n.body\r\n", "original": b"Subject: s\r\n\r\n.body\r\n", "loop_ok": True,
    }
    assert hooked.server.calls == []  # handle_DATA replaced process_message
    assert converse(hooked.port, [])[-1] == b"221 See you\r\n"


def test_hook_refusals_reach_an_smtplib_client(hooked: LoopThread) -> None:
    with smtplib.SMTP("127.0.0.1", hooked.port, timeout=10) as client:
        refused = client.sendmail("a@b", ["ok@example.com", "no@other.net"], b"x")
    assert refused == {"no@other.net": (550, b"Not relaying to no@other.net")}


class OldStyleEhlo(Recorder):
    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        session.host_name = hostname
        return "250 HELP"

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        session.host_name = hostname
        return "250 Hello %s" % hostname


def test_old_style_ehlo_and_helo_hooks() -> None:
    with LoopThread(OldStyleEhlo, None) as loop:
        ehlo = converse(loop.port, [b"EHLO c\r\n", b"MAIL FROM:<a@b>\r\n"])
        helo = converse(loop.port, [b"HELO c\r\n", b"MAIL FROM:<a@b>\r\n"])
    assert ehlo[1].endswith(b"250-SIZE 33554432\r\n250-8BITMIME\r\n250 HELP\r\n")
    assert ehlo[2] == b"250 OK\r\n"
    assert helo[1:3] == [b"250 Hello c\r\n", b"250 OK\r\n"]


class ForgetfulHelo(Recorder):
    def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        return "250 Hi"  # does not set session.host_name: as on aiosmtpd, HELO did not count


def test_greeting_hook_must_set_host_name() -> None:
    with LoopThread(ForgetfulHelo, None) as loop:
        replies = converse(loop.port, [b"HELO c\r\n", b"MAIL FROM:<a@b>\r\n"])
    assert replies[1:3] == [b"250 Hi\r\n", b"503 Error: send HELO first\r\n"]


def _lockstep(port: int, commands: List[bytes]) -> List[bytes]:
    """Send each command and read its one reply (works on both faces)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        replies = [read_smtp_reply(sock)]
        for command in commands:
            sock.sendall(command)
            replies.append(read_smtp_reply(sock))
        return replies


def test_same_hooks_give_the_same_replies_on_the_modern_face() -> None:
    dialog = [b"HELO client\r\n", b"MAIL FROM:<spam@x>\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<x@y.org>\r\n",
              b"RCPT TO:<r@example.com>\r\n", b"DATA\r\n", b"hi\r\n.\r\n", b"NOOP\r\n", b"VRFY <v@w>\r\n",
              b"QUIT\r\n"]  # (not RSET: its hook returns None, which only the legacy face takes for 250 OK)
    with LoopThread(Hooked, None) as loop:
        legacy = _lockstep(loop.port, dialog)
    controller = Controller(Hooked(None, None), hostname="127.0.0.1", port=0)
    controller.start()
    try:
        modern = _lockstep(controller.port, dialog)
    finally:
        controller.stop()
    # Greeting, HELO and the DATA prompt are each face's own; the hooks' replies agree.
    assert legacy[2:6] == modern[2:6] == [
        b"550 No spammers\r\n", b"250 Sender a@b ok\r\n", b"550 Not relaying to x@y.org\r\n", b"250 Recipient ok\r\n",
    ]
    assert legacy[7:] == modern[7:] == [
        b"250 Accepted by the hook\r\n", b"250 Hooked NOOP\r\n", b"252 Maybe v@w\r\n", b"221 See you\r\n",
    ]


def test_test_double_servers_have_no_hooks() -> None:
    from tests.stdlib.test_legacy_channel_styles import FakeSocket

    server = mock.Mock()
    server.process_message.return_value = None
    fake = FakeSocket([b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nbody\r\n.\r\n"])
    channel = smtpd.SMTPChannel(server, fake, ("192.0.2.1", 25), map={})
    channel.handle_read()
    assert b"".join(fake.sent).split(b"\r\n")[-2] == b"250 OK"
    server.process_message.assert_called_once_with(
        ("192.0.2.1", 4321), "a@b", ["c@d"], b"body", mail_options=[], rcpt_options=[]
    )
