"""smtpd_compat.modern.handlers: aiosmtpd's ready-made handlers, over real sockets."""

from __future__ import annotations

import asyncio
import io
import logging
import smtplib
import sys
import threading
from email.message import Message as EmailMessage
from mailbox import Maildir
from operator import itemgetter
from pathlib import Path
from textwrap import dedent
from typing import Any, Iterator, List, Optional

import aiosmtplib
import pytest

from smtpd_compat.modern import handlers
from smtpd_compat.modern.controller import Controller
from smtpd_compat.modern.handlers import AsyncMessage, Debugging, Mailbox, Message, Proxy, Sink
from smtpd_compat.modern.smtp import SMTP, Envelope, Session

from ._periphery import FakeParser, RecordingHandler, connection_refused

SOURCE = dedent(
    """\
    From: Anne Person <anne@example.com>
    To: Bart Person <bart@example.com>
    Subject: A test

    Testing
    """
)


def serve(handler: Any, **kwargs: Any) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=0, **kwargs)
    controller.start()
    return controller


@pytest.fixture
def running() -> Iterator[List[Controller]]:
    """Controllers appended here are stopped after the test."""
    controllers: List[Controller] = []
    yield controllers
    for controller in reversed(controllers):
        controller.stop()


def test_module_exports_match_aiosmtpd() -> None:
    assert sorted(handlers.__all__) == ["AsyncMessage", "Debugging", "Mailbox", "Message", "Proxy", "Sink"]
    assert handlers.log.name == "mail.debug"
    assert handlers._format_peer(("1.2.3.4", 5)) == "X-Peer: ('1.2.3.4', 5)"
    assert [m.group() for m in handlers.NLCRE.finditer(b"a\r\nb\rc\nd")] == [b"\r\n", b"\r", b"\n"]
    parsed = handlers.message_from_bytes(b"Subject: x\r\n\r\nbody")
    assert parsed["Subject"] == "x" and parsed.get_payload() == "body"
    assert handlers.message_from_string("Subject: y\n\nz")["Subject"] == "y"


# -- Debugging -----------------------------------------------------------------


class TestDebugging:
    def run_session(
        self, running: List[Controller], *, helo: bool = False, mail_options: Any = (), **kwargs: Any
    ) -> str:
        stream = io.StringIO()
        controller = serve(Debugging(stream), **kwargs)
        running.append(controller)
        with smtplib.SMTP(controller.hostname, controller.port) as client:
            if helo:
                client.helo("me")
            self.peer = client.sock.getsockname()
            client.sendmail("anne@example.com", ["bart@example.com"], SOURCE, mail_options)
        return stream.getvalue()

    def test_bytes_with_size_option(self, running: List[Controller]) -> None:
        text = self.run_session(running)
        assert text == dedent(
            f"""\
            ---------- MESSAGE FOLLOWS ----------
            mail options: ['SIZE=102']

            From: Anne Person <anne@example.com>
            To: Bart Person <bart@example.com>
            Subject: A test
            X-Peer: {self.peer!r}

            Testing
            ------------ END MESSAGE ------------
            """
        )

    def test_decoded_data(self, running: List[Controller]) -> None:
        text = self.run_session(running, decode_data=True)
        assert text.splitlines()[1] == "mail options: ['SIZE=102']"
        assert f"X-Peer: {self.peer!r}\n\nTesting\n" in text

    def test_without_options_after_helo(self, running: List[Controller]) -> None:
        text = self.run_session(running, helo=True)
        assert text == dedent(
            f"""\
            ---------- MESSAGE FOLLOWS ----------
            From: Anne Person <anne@example.com>
            To: Bart Person <bart@example.com>
            Subject: A test
            X-Peer: {self.peer!r}

            Testing
            ------------ END MESSAGE ------------
            """
        )

    def test_with_extra_options(self, running: List[Controller]) -> None:
        text = self.run_session(running, mail_options=["BODY=7BIT"])
        assert text.splitlines()[:3] == [
            "---------- MESSAGE FOLLOWS ----------",
            "mail options: ['SIZE=102', 'BODY=7BIT']",
            "",
        ]

    def test_rcpt_options_and_undecodable_bytes(self) -> None:
        stream = io.StringIO()
        envelope = Envelope()
        envelope.rcpt_options = ["NOTIFY=NEVER"]
        envelope.content = b"Subject: \xff\r\n\r\nline\r\n"
        session = Session(asyncio.new_event_loop())
        session.loop.close()
        session.peer = ("10.0.0.1", 25)
        reply = asyncio.run(Debugging(stream).handle_DATA(None, session, envelope))  # type: ignore[arg-type]
        assert reply == "250 OK"
        assert stream.getvalue() == (
            "---------- MESSAGE FOLLOWS ----------\n"
            "rcpt options: ['NOTIFY=NEVER']\n"
            "\n"
            "Subject: \ufffd\n"
            "X-Peer: ('10.0.0.1', 25)\n"
            "\n"
            "line\n"
            "------------ END MESSAGE ------------\n"
        )

    @pytest.mark.parametrize(
        ("args", "stream"), [((), sys.stdout), (("stdout",), sys.stdout), (("stderr",), sys.stderr)]
    )
    def test_from_cli(self, args: Any, stream: Any) -> None:
        handler = Debugging.from_cli(FakeParser(), *args)  # type: ignore[arg-type]
        assert isinstance(handler, Debugging)
        assert handler.stream is stream

    @pytest.mark.parametrize("args", [("stdfoo",), ("stdout", "stderr")])
    def test_from_cli_errors(self, args: Any) -> None:
        parser = FakeParser()
        with pytest.raises(SystemExit):
            Debugging.from_cli(parser, *args)  # type: ignore[arg-type]
        assert parser.message == "Debugging usage: [stdout|stderr]"


# -- Sink ------------------------------------------------------------------------


def test_sink_accepts_mail_from_aiosmtplib(running: List[Controller]) -> None:
    controller = serve(Sink())
    running.append(controller)

    async def send() -> Any:
        return await aiosmtplib.send(
            SOURCE, sender="a@example.com", recipients=["b@example.com", "c@example.com"],
            hostname=controller.hostname, port=controller.port,
        )

    errors, reply = asyncio.run(send())
    assert errors == {}
    assert reply.startswith("OK")


def test_sink_from_cli() -> None:
    assert isinstance(Sink.from_cli(FakeParser()), Sink)  # type: ignore[arg-type]
    parser = FakeParser()
    with pytest.raises(SystemExit):
        Sink.from_cli(parser, "foo")  # type: ignore[arg-type]
    assert parser.message == "Sink handler does not accept arguments"


# -- Proxy -------------------------------------------------------------------------


class TestProxy:
    source = "From: Anne <anne@example.com>\nTo: Bart <bart@example.com>\nSubject: A test\n\nTesting\n"
    expected = (
        b"From: Anne <anne@example.com>\r\nTo: Bart <bart@example.com>\r\nSubject: A test\r\n"
        b"X-Peer: 127.0.0.1\r\n\r\nTesting\r\n"
    )

    @pytest.mark.parametrize("decode_data", [False, True])
    def test_relays_with_x_peer(self, running: List[Controller], decode_data: bool) -> None:
        upstream_handler = RecordingHandler()
        upstream = serve(upstream_handler)
        running.append(upstream)
        proxy = serve(Proxy(upstream.hostname, upstream.port), decode_data=decode_data)
        running.append(proxy)
        with smtplib.SMTP(proxy.hostname, proxy.port) as client:
            assert client.sendmail("anne@example.com", ["bart@example.com"], self.source) == {}
        (envelope,) = upstream_handler.envelopes
        assert envelope.content == self.expected
        assert envelope.mail_from == "anne@example.com"
        assert envelope.rcpt_tos == ["bart@example.com"]

    def test_refusals_are_logged_and_client_still_gets_250(
        self, running: List[Controller], caplog: pytest.LogCaptureFixture
    ) -> None:
        class Picky(RecordingHandler):
            async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                                  address: str, options: List[str]) -> str:
                if address == "bad@example.com":
                    return "550 Bad Bart"
                envelope.rcpt_tos.append(address)
                return "250 OK"

        upstream_handler = Picky()
        upstream = serve(upstream_handler)
        running.append(upstream)
        proxy = serve(Proxy(upstream.hostname, upstream.port))
        running.append(proxy)
        caplog.set_level(logging.INFO, logger="mail.debug")
        with smtplib.SMTP(proxy.hostname, proxy.port) as client:
            refused = client.sendmail("anne@example.com", ["bad@example.com", "good@example.com"], self.source)
        assert refused == {}
        assert upstream_handler.envelopes[0].rcpt_tos == ["good@example.com"]
        assert ("mail.debug", logging.INFO,
                "we got some refusals: {'bad@example.com': (550, b'Bad Bart')}") in caplog.record_tuples

    def test_all_refused_logged_in_order(
        self, running: List[Controller], caplog: pytest.LogCaptureFixture
    ) -> None:
        class Refuser:
            async def handle_RCPT(self, *args: Any) -> str:
                return "550 Bad Bart"

        upstream = serve(Refuser())
        running.append(upstream)
        proxy = serve(Proxy(upstream.hostname, upstream.port))
        running.append(proxy)
        caplog.set_level(logging.INFO, logger="mail.debug")
        with smtplib.SMTP(proxy.hostname, proxy.port) as client:
            client.sendmail("anne@example.com", ["bad@example.com"], self.source)
        messages = [msg for name, _, msg in caplog.record_tuples if name == "mail.debug"]
        assert messages == [
            "got SMTPRecipientsRefused",
            "we got some refusals: {'bad@example.com': (550, b'Bad Bart')}",
        ]

    def test_unreachable_upstream(self, running: List[Controller], free_port: int,
                                  caplog: pytest.LogCaptureFixture) -> None:
        assert connection_refused("127.0.0.1", free_port)
        proxy = serve(Proxy("127.0.0.1", free_port))
        running.append(proxy)
        caplog.set_level(logging.INFO, logger="mail.debug")
        with smtplib.SMTP(proxy.hostname, proxy.port) as client:
            assert client.sendmail("anne@example.com", ["bart@example.com"], self.source) == {}
        assert ("mail.debug", logging.INFO,
                "we got some refusals: {'bart@example.com': (-1, b'ignore')}") in caplog.record_tuples
        assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records
                   if r.name == "mail.debug")

    def test_delivery_does_not_block_the_event_loop(self, running: List[Controller]) -> None:
        gate = threading.Event()

        class StalledUpstream:
            async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
                await asyncio.get_running_loop().run_in_executor(None, gate.wait, 10)
                return "250 OK"

        upstream = serve(StalledUpstream())
        running.append(upstream)
        proxy = serve(Proxy(upstream.hostname, upstream.port))
        running.append(proxy)
        results: List[Any] = []

        def send_first() -> None:
            with smtplib.SMTP(proxy.hostname, proxy.port, timeout=10) as client:
                results.append(client.sendmail("a@example.com", ["b@example.com"], self.source))

        sender = threading.Thread(target=send_first)
        sender.start()
        try:
            # While the proxy waits on the upstream, it still serves others.
            with smtplib.SMTP(proxy.hostname, proxy.port, timeout=3) as other:
                assert other.noop()[0] == 250
                assert other.ehlo("again")[0] == 250
            assert results == []
        finally:
            gate.set()
            sender.join(10)
        assert results == [{}]


# -- Message / AsyncMessage -------------------------------------------------------------


class KeepingMessage(Message):
    def __init__(self, message_class: Optional[type] = None) -> None:
        super().__init__(message_class)
        self.messages: List[EmailMessage] = []

    def handle_message(self, message: EmailMessage) -> None:
        self.messages.append(message)


class KeepingAsyncMessage(AsyncMessage):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.messages: List[EmailMessage] = []

    async def handle_message(self, message: EmailMessage) -> None:
        await asyncio.sleep(0)
        self.messages.append(message)


class CustomMessage(EmailMessage):
    pass


class TestMessage:
    @pytest.mark.parametrize("decode_data", [False, True])
    def test_sync_message_headers(self, running: List[Controller], decode_data: bool) -> None:
        handler = KeepingMessage(CustomMessage)
        controller = serve(handler, decode_data=decode_data)
        running.append(controller)
        with smtplib.SMTP(controller.hostname, controller.port) as client:
            peer = client.sock.getsockname()
            client.sendmail("anne@example.com", ["bart@example.com", "cate@example.com"], SOURCE)
        (message,) = handler.messages
        assert isinstance(message, CustomMessage)
        assert message["Subject"] == "A test"
        assert message["X-Peer"] == str(peer)
        assert message["X-MailFrom"] == "anne@example.com"
        assert message["X-RcptTo"] == "bart@example.com, cate@example.com"
        assert message.get_payload() == "Testing\r\n"

    def test_async_message(self, running: List[Controller]) -> None:
        loop = asyncio.new_event_loop()
        try:
            handler = KeepingAsyncMessage(loop)
            assert handler.loop is loop
            controller = serve(handler)
            running.append(controller)
            with smtplib.SMTP(controller.hostname, controller.port) as client:
                client.sendmail("anne@example.com", ["bart@example.com"], SOURCE)
        finally:
            loop.close()
        (message,) = handler.messages
        assert type(message) is EmailMessage
        assert message["X-MailFrom"] == "anne@example.com"
        assert message["X-RcptTo"] == "bart@example.com"

    @pytest.mark.parametrize("content", [b"", bytearray(), ""], ids=["bytes", "bytearray", "str"])
    def test_prepare_message_adds_headers_even_when_empty(self, content: Any) -> None:
        envelope = Envelope()
        envelope.content = content
        session = Session(None)  # type: ignore[arg-type]
        message = KeepingMessage().prepare_message(session, envelope)
        assert message.keys() == ["X-Peer", "X-MailFrom", "X-RcptTo"]
        assert message["X-Peer"] == "None"
        assert message.get_payload() == ""

    @pytest.mark.parametrize("content", [None, [], {}, ()])
    def test_prepare_message_rejects_other_types(self, content: Any) -> None:
        envelope = Envelope()
        envelope.content = content
        with pytest.raises(TypeError, match=rf"Expected str or bytes, got {type(content)}"):
            KeepingMessage().prepare_message(Session(None), envelope)  # type: ignore[arg-type]

    def test_abstract_classes_need_handle_message(self) -> None:
        with pytest.raises(TypeError):
            Message()  # type: ignore[abstract]
        with pytest.raises(TypeError):
            AsyncMessage()  # type: ignore[abstract]


# -- Mailbox -------------------------------------------------------------------------


class TestMailbox:
    def send_three(self, controller: Controller) -> None:
        with smtplib.SMTP(controller.hostname, controller.port) as client:
            for sender, ident in (("anne", "ant"), ("cate", "bee"), ("elle", "cat")):
                client.sendmail(
                    f"{sender}@example.com", ["x@example.com"],
                    f"From: {sender}@example.com\nSubject: A test\nMessage-ID: <{ident}>\n\nHi.\n",
                )

    def test_messages_land_in_new(self, running: List[Controller], tmp_path: Path) -> None:
        maildir = tmp_path / "maildir"
        handler = Mailbox(maildir)
        assert handler.mail_dir == maildir
        controller = serve(handler)
        running.append(controller)
        self.send_three(controller)
        messages = sorted(Maildir(maildir), key=itemgetter("message-id"))
        assert [m["message-id"] for m in messages] == ["<ant>", "<bee>", "<cat>"]
        assert messages[0]["X-MailFrom"] == "anne@example.com"
        assert len(list((maildir / "new").iterdir())) == 3
        assert list((maildir / "tmp").iterdir()) == []
        handler.reset()
        assert list(Maildir(maildir)) == []

    def test_message_is_written_in_tmp_then_moved(self, running: List[Controller], tmp_path: Path) -> None:
        maildir = tmp_path / "maildir"
        handler = Mailbox(maildir)
        seen_while_writing: List[Any] = []
        dump = handler.mailbox._dump_message

        def watching_dump(message: Any, target: Any, mangle_from_: bool = False) -> None:
            dump(message, target, mangle_from_)
            target.flush()
            seen_while_writing.append(
                (sorted(p.name for p in (maildir / "new").iterdir()),
                 Path(target.name).parent.name, Path(target.name).stat().st_size > 0)
            )

        handler.mailbox._dump_message = watching_dump  # type: ignore[method-assign]
        controller = serve(handler)
        running.append(controller)
        with smtplib.SMTP(controller.hostname, controller.port) as client:
            client.sendmail("a@example.com", ["b@example.com"], SOURCE)
        # Fully written in tmp/ while new/ was still empty; afterwards only in new/.
        assert seen_while_writing == [([], "tmp", True)]
        assert list((maildir / "tmp").iterdir()) == []
        assert len(list((maildir / "new").iterdir())) == 1

    def test_from_cli(self, tmp_path: Path) -> None:
        handler = Mailbox.from_cli(FakeParser(), str(tmp_path / "md"))  # type: ignore[arg-type]
        assert isinstance(handler, Mailbox)
        assert isinstance(handler.mailbox, Maildir)
        assert handler.mail_dir == str(tmp_path / "md")
        assert (tmp_path / "md" / "new").is_dir()

    @pytest.mark.parametrize(
        ("args", "message"),
        [((), "The directory for the maildir is required"),
         (("a", "b", "c"), "Too many arguments for Mailbox handler")],
    )
    def test_from_cli_errors(self, args: Any, message: str) -> None:
        parser = FakeParser()
        with pytest.raises(SystemExit):
            Mailbox.from_cli(parser, *args)  # type: ignore[arg-type]
        assert parser.message == message
