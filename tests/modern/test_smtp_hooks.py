"""Handler hooks of the modern SMTP class: every hook's contract, written as
aiosmtpd 1.4.6 code and run unchanged on both servers where they agree.

Side-by-side tests run one handler class on aiosmtpd and on
smtpd_compat.modern and compare the replies byte for byte, plus what the
hooks saw.  Where we deliberately differ, the docstring says so.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any, List, Optional, Tuple

import pytest

from smtpd_compat.modern.smtp import SMTP, Envelope, Session

from ._servers import Step
from ._smtp_support import HOST, Client, Recorder, dialog, mail_transaction, serve, side_by_side


def line(text: str, replies: int = 1) -> Step:
    return (text.encode() + b"\r\n", replies)


def data(body: bytes) -> Step:
    return (body + b".\r\n", 1)


class EveryHook:
    """Implements every SMTP hook, each with an observable effect."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Any, ...]] = []

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        self.calls.append(("HELO", hostname))
        session.host_name = hostname
        return f"250 hi {hostname}"

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: List[str]) -> List[str]:
        self.calls.append(("EHLO", hostname, list(responses)))
        session.host_name = hostname
        session.greeted_as = hostname  # hooks may keep state on the session
        return [responses[0], "250-X-CUSTOM yes", "250 HELP"]

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        self.calls.append(("MAIL", address, list(options)))
        if address.startswith("deny"):
            return "550 5.7.1 sender refused"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return f"250 sender {address} ok"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        self.calls.append(("RCPT", address, list(options)))
        if address.startswith("nobody"):
            return "550 5.1.1 unknown user"
        envelope.rcpt_tos.append(address)
        return f"250 rcpt {address} ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.calls.append(
            ("DATA", envelope.mail_from, list(envelope.rcpt_tos), envelope.content, envelope.original_content,
             session.greeted_as)
        )
        return "250-queued as 1\r\n250-and 2\r\n250 done"

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        self.calls.append(("RSET", envelope.mail_from))
        return "250 reset done"

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: Optional[str]) -> str:
        self.calls.append(("NOOP", arg))
        return f"250 noop {arg}"

    async def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
        self.calls.append(("VRFY", address))
        return f"250 <{address}> exists"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.calls.append(("QUIT",))
        return "221 see you"


EVERY_HOOK_DIALOG = [
    line("HELO c.test"), line("NOOP"), line("NOOP some thing"), line("VRFY <u@x.test>"), line("VRFY u2@x.test"),
    line("EHLO client.test"), line("MAIL FROM:<deny@x.test>"), line("MAIL FROM:<a@x.test> size=10 BODY=8bitmime"),
    line("RCPT TO:<nobody@x.test>"), line("DATA"), line("RCPT TO:<b@x.test>"), line("RCPT TO:<c@x.test>"),
    line("DATA"), data(b"Subject: t\r\n\r\n..dot\r\nend\r\n"), line("MAIL FROM:<a@x.test>"), line("RSET"),
    line("QUIT"),
]


def test_every_hook_same_bytes_and_same_calls_as_aiosmtpd() -> None:
    run = side_by_side(EveryHook, EVERY_HOOK_DIALOG)
    assert run.mine == run.theirs
    assert run.my_handler.calls == run.their_handler.calls


def test_every_hook_replies() -> None:
    handler = EveryHook()
    replies = dialog(handler, EVERY_HOOK_DIALOG)
    assert replies[1:6] == [
        b"250 hi c.test\r\n", b"250 noop None\r\n", b"250 noop some thing\r\n",
        b"250 <u@x.test> exists\r\n", b"250 <u2@x.test> exists\r\n",
    ]
    # The 5-argument EHLO hook replaces the whole reply.
    assert replies[6] == f"250-{HOST}\r\n250-X-CUSTOM yes\r\n250 HELP\r\n".encode()
    assert replies[7:13] == [
        b"550 5.7.1 sender refused\r\n", b"250 sender a@x.test ok\r\n", b"550 5.1.1 unknown user\r\n",
        b"503 Error: need RCPT command\r\n", b"250 rcpt b@x.test ok\r\n", b"250 rcpt c@x.test ok\r\n",
    ]
    # A multi-line DATA status is written verbatim.
    assert replies[14] == b"250-queued as 1\r\n250-and 2\r\n250 done\r\n"
    assert replies[15:] == [b"250 sender a@x.test ok\r\n", b"250 reset done\r\n", b"221 see you\r\n"]
    ehlo = handler.calls[5]
    assert ehlo == ("EHLO", "client.test", [f"250-{HOST}", "250-SIZE 33554432", "250-8BITMIME", "250 HELP"])
    # Options reach the hook upper-cased, in order.
    assert ("MAIL", "a@x.test", ["SIZE=10", "BODY=8BITMIME"]) in handler.calls
    delivered = [c for c in handler.calls if c[0] == "DATA"]
    assert delivered == [
        ("DATA", "a@x.test", ["b@x.test", "c@x.test"], b"Subject: t\r\n\r\n.dot\r\nend\r\n",
         b"Subject: t\r\n\r\n.dot\r\nend\r\n", "client.test")
    ]
    # RSET hook runs after the envelope was reset.
    assert handler.calls[-2] == ("RSET", None)


class NoHooks:
    pass


def test_missing_hooks_give_the_defaults() -> None:
    steps = [
        line("HELO c.test"), line("NOOP x"), line("VRFY <u@x.test>"), line("EHLO c.test"),
        line("MAIL FROM:<a@x.test>"), line("RCPT TO:<b@x.test>"), line("DATA"), data(b"hi\r\n"), line("RSET"),
        line("QUIT"),
    ]
    replies = dialog(NoHooks(), steps)
    assert replies == [
        f"220 {HOST} Python SMTP 1.4.6\r\n".encode(), f"250 {HOST}\r\n".encode(), b"250 OK\r\n",
        b"252 Cannot VRFY user, but will accept message and attempt delivery\r\n",
        f"250-{HOST}\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250 HELP\r\n".encode(),
        b"250 OK\r\n", b"250 OK\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n", b"250 OK\r\n", b"250 OK\r\n",
        b"221 Bye\r\n",
    ]
    run = side_by_side(NoHooks, steps)
    assert run.mine == run.theirs


class ForgetfulGreeter:
    """HELO/EHLO/MAIL hooks that do not record what they must."""

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        return "250 fine"

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: List[str]) -> List[str]:
        return responses


class ForgetfulMail:
    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        return "250 OK"


def test_helo_and_ehlo_hooks_must_set_host_name() -> None:
    steps = [line("HELO c"), line("MAIL FROM:<a@x.test>"), line("EHLO c"), line("MAIL FROM:<a@x.test>")]
    run = side_by_side(ForgetfulGreeter, steps)
    assert run.mine == run.theirs
    assert run.mine[2] == run.mine[4] == b"503 Error: send HELO first\r\n"


def test_mail_hook_must_set_mail_from() -> None:
    steps = [line("EHLO c"), line("MAIL FROM:<a@x.test>"), line("RCPT TO:<b@x.test>")]
    run = side_by_side(ForgetfulMail, steps)
    assert run.mine == run.theirs
    assert run.mine[2:] == [b"250 OK\r\n", b"503 Error: need MAIL command\r\n"]


class OldEhlo:
    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        session.host_name = hostname
        return "250 old style"


def make_protocol(handler: Any, **kwargs: Any) -> SMTP:
    loop = asyncio.new_event_loop()
    try:
        return SMTP(handler, loop=loop, hostname=HOST, **kwargs)
    finally:
        loop.close()


def test_four_argument_ehlo_hook_pushes_lines_then_its_status() -> None:
    with pytest.warns(DeprecationWarning, match="5-argument handle_EHLO"):
        make_protocol(OldEhlo())
    steps = [line("EHLO c"), line("MAIL FROM:<a@x.test>")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        replies = dialog(OldEhlo(), steps)
        run = side_by_side(OldEhlo, steps)
    assert replies[1] == f"250-{HOST}\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250 old style\r\n".encode()
    assert replies[2] == b"250 OK\r\n"
    assert run.mine == run.theirs


def test_ehlo_hook_with_other_arity_is_refused() -> None:
    class Odd:
        async def handle_EHLO(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 ?"

    with pytest.raises(RuntimeError, match="Unsupported EHLO Hook"):
        make_protocol(Odd())


def test_data_content_per_decode_data() -> None:
    body = "Subject: x\r\n\r\n..caf\u00e9\r\n".encode()
    for options, expected in (
        ({}, "Subject: x\r\n\r\n.caf\u00e9\r\n".encode()),
        ({"decode_data": True, "enable_SMTPUTF8": True}, "Subject: x\r\n\r\n.caf\u00e9\r\n"),
    ):
        recorder = Recorder()
        with serve(recorder, **options) as server, Client(server.port) as client:
            client.cmd("EHLO c")
            assert mail_transaction(client, body) == b"250 OK\r\n"
        (got,) = recorder.delivered
        assert got.content == expected
        assert got.original_content == "Subject: x\r\n\r\n.caf\u00e9\r\n".encode()


class Exploding:
    """handle_NOOP raises; handle_exception says what to answer."""

    def __init__(self, answer: Any = "451 4.3.0 try later") -> None:
        self.answer = answer
        self.errors: List[BaseException] = []

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: Optional[str]) -> str:
        raise ValueError("boom\r\n250 fake")

    async def handle_exception(self, error: BaseException) -> Any:
        self.errors.append(error)
        if self.answer is RuntimeError:
            raise RuntimeError("handler broke too")
        return self.answer


def test_handle_exception_status_is_the_reply() -> None:
    run = side_by_side(Exploding, [line("NOOP"), line("NOOP")])
    assert run.mine == run.theirs == [
        f"220 {HOST} Python SMTP 1.4.6\r\n".encode(), b"451 4.3.0 try later\r\n", b"451 4.3.0 try later\r\n"
    ]
    (error, _) = run.my_handler.errors
    assert isinstance(error, ValueError) and str(error) == "boom\r\n250 fake"


def test_handle_exception_raising_gives_500_with_its_class() -> None:
    run = side_by_side(lambda: Exploding(RuntimeError), [line("NOOP"), line("NOOP")])
    assert run.mine == run.theirs
    assert run.mine[1] == b"500 Error: (RuntimeError) handler broke too\r\n"


def test_without_handle_exception_the_error_is_logged_and_named(caplog: pytest.LogCaptureFixture) -> None:
    """aiosmtpd echoes the exception text verbatim; we replace control
    characters so it cannot forge reply lines (deliberate difference)."""

    class NoHandler:
        async def handle_NOOP(self, *args: Any) -> str:
            raise KeyError("k")

        async def handle_VRFY(self, *args: Any) -> str:
            raise ValueError("multi\r\n250 forged")

    with caplog.at_level(logging.ERROR, logger="mail.log"):
        replies = dialog(NoHandler(), [line("NOOP"), line("VRFY <a@x.test>"), line("NOOP")])
    assert replies[1:] == [
        b"500 Error: (KeyError) 'k'\r\n", b"500 Error: (ValueError) multi??250 forged\r\n",
        b"500 Error: (KeyError) 'k'\r\n",
    ]
    logged = [r for r in caplog.records if "SMTP session exception" in r.getMessage()]
    assert len(logged) == 3 and logged[0].exc_info is not None


def test_handle_exception_returning_none_gives_451(caplog: pytest.LogCaptureFixture) -> None:
    """Deliberate difference: aiosmtpd's session task dies on None and the
    client hangs; we log it and answer 451 (what aiosmtpd's docs promise)."""
    handler = Exploding(None)
    with caplog.at_level(logging.ERROR, logger="mail.log"):
        replies = dialog(handler, [line("NOOP"), line("NOOP")])
    assert replies[1:] == [b"451 Requested action aborted: local error in processing\r\n"] * 2
    assert any("handle_exception() returned None" in r.getMessage() for r in caplog.records)


class SyncHooks:
    """Plain functions instead of coroutines (aiosmtpd awaits every hook and
    so fails on these; we accept both, an extension)."""

    def __init__(self) -> None:
        self.content: Optional[bytes] = None

    def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: List[str]) -> List[str]:
        session.host_name = hostname
        return responses[:1] + ["250 SYNC"]

    def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        envelope.mail_from = address
        return "250 sync sender"

    def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        envelope.rcpt_tos.append(address)
        return "250 sync rcpt"

    def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.content = envelope.content
        return "250 sync data"

    def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: Optional[str]) -> str:
        raise OSError("disk")

    def handle_exception(self, error: BaseException) -> str:
        return f"451 sync {type(error).__name__}"


def test_sync_hooks_are_accepted() -> None:
    handler = SyncHooks()
    replies = dialog(handler, [
        line("EHLO c"), line("MAIL FROM:<a@x.test>"), line("RCPT TO:<b@x.test>"), line("DATA"), data(b"x\r\n"),
        line("NOOP"),
    ])
    assert replies[1:] == [
        f"250-{HOST}\r\n250 SYNC\r\n".encode(), b"250 sync sender\r\n", b"250 sync rcpt\r\n",
        b"354 End data with <CR><LF>.<CR><LF>\r\n", b"250 sync data\r\n", b"451 sync OSError\r\n",
    ]
    assert handler.content == b"x\r\n"


class Bare:
    """Hooks get attached to the instance, not defined on the class."""


def instance_hooked() -> Bare:
    handler = Bare()

    async def handle_NOOP(server: Any, session: Any, envelope: Any, arg: Optional[str]) -> str:
        return "250 instance noop"

    handler.handle_NOOP = handle_NOOP  # type: ignore[attr-defined]
    return handler


def test_hooks_set_on_the_handler_instance() -> None:
    run = side_by_side(instance_hooked, [line("NOOP")])
    assert run.mine == run.theirs
    assert run.mine[1] == b"250 instance noop\r\n"


def test_hook_added_later_applies_to_the_next_connection() -> None:
    handler = Bare()
    with serve(handler) as server:
        with Client(server.port) as client:
            assert client.cmd("NOOP") == b"250 OK\r\n"
            handler.handle_NOOP = instance_hooked().handle_NOOP  # type: ignore[attr-defined]
            assert client.cmd("NOOP") == b"250 OK\r\n"  # hooks are bound per connection
        with Client(server.port) as client:
            assert client.cmd("NOOP") == b"250 instance noop\r\n"


class SyncProcessMessage:
    def __init__(self) -> None:
        self.got: List[Tuple[Any, ...]] = []

    def process_message(self, peer: Any, mail_from: str, rcpt_tos: List[str], content: Any) -> Optional[str]:
        self.got.append((peer[0], mail_from, list(rcpt_tos), content))
        return None if b"default" in content else "250 legacy sync"


class AsyncProcessMessage(SyncProcessMessage):
    async def process_message(  # type: ignore[override]
        self, peer: Any, mail_from: str, rcpt_tos: List[str], content: Any
    ) -> Optional[str]:
        self.got.append((peer[0], mail_from, list(rcpt_tos), content))
        return None if b"default" in content else "250 legacy async"


@pytest.mark.parametrize("cls", [SyncProcessMessage, AsyncProcessMessage])
def test_process_message_fallback(cls: Any) -> None:
    steps = [
        line("HELO c"), line("MAIL FROM:<a@x.test>"), line("RCPT TO:<b@x.test>"), line("DATA"), data(b"mine\r\n"),
        line("MAIL FROM:<a@x.test>"), line("RCPT TO:<b@x.test>"), line("DATA"), data(b"default\r\n"),
    ]
    with pytest.warns(DeprecationWarning, match="process_message"):
        run = side_by_side(cls, steps)
    assert run.mine == run.theirs
    kind = "sync" if cls is SyncProcessMessage else "async"
    assert run.mine[5] == f"250 legacy {kind}\r\n".encode()
    assert run.mine[9] == b"250 OK\r\n"
    assert run.my_handler.got == run.their_handler.got == [
        ("127.0.0.1", "a@x.test", ["b@x.test"], b"mine\r\n"), ("127.0.0.1", "a@x.test", ["b@x.test"], b"default\r\n")
    ]


def test_handle_data_wins_over_process_message() -> None:
    class Both(Recorder):
        def process_message(self, *args: Any) -> str:
            raise AssertionError("not called when handle_DATA exists")

    handler = Both()
    with serve(handler) as server, Client(server.port) as client:
        client.cmd("HELO c")
        assert mail_transaction(client, b"x\r\n") == b"250 OK\r\n"
    assert len(handler.delivered) == 1


class Inspector:
    """Records the Session and Envelope state the hooks see."""

    def __init__(self) -> None:
        self.seen: List[Any] = []

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        self.seen.append(("MAIL", envelope))
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.seen.append(("DATA", server, session, envelope, dict(vars(envelope)), dict(vars(session))))
        return "250 OK"


def test_session_and_envelope_attributes() -> None:
    handler = Inspector()
    with serve(handler) as server, Client(server.port) as client:
        client.cmd("EHLO client.test")
        client.cmd("MAIL FROM:<> body=8bitmime SIZE=100")
        client.cmd("RSET")
        assert mail_transaction(client, b"x\r\n", sender="<a@x.test> body=7bit") == b"250 OK\r\n"
        local = client.sock.getsockname()
    (_, first), (_, second), (_, smtp, session, envelope, env_vars, session_vars) = handler.seen
    assert first.mail_from == "<>" and first.mail_options == ["BODY=8BITMIME", "SIZE=100"]
    assert second is envelope and first is not envelope  # RSET made a new Envelope
    assert isinstance(smtp, SMTP) and isinstance(session, Session) and isinstance(envelope, Envelope)
    assert smtp.session is session
    assert env_vars == {
        "mail_from": "a@x.test", "mail_options": ["BODY=7BIT"], "smtp_utf8": False, "content": b"x\r\n",
        "original_content": b"x\r\n", "rcpt_tos": ["b@x.test"], "rcpt_options": [],
    }
    assert session.peer == local
    assert session.host_name == "client.test" and session.extended_smtp is True
    assert session.loop is smtp.loop
    assert (session.ssl, session.proxy_data, session.auth_data, session.authenticated) == (None, None, None, None)
    assert {"peer", "ssl", "host_name", "extended_smtp", "loop", "proxy_data", "auth_data", "authenticated"} <= set(
        session_vars
    )


def test_envelope_and_session_defaults() -> None:
    envelope = Envelope()
    assert (envelope.mail_from, envelope.mail_options, envelope.smtp_utf8, envelope.content,
            envelope.original_content, envelope.rcpt_tos, envelope.rcpt_options) == (None, [], False, None, None, [], [])
    loop = asyncio.new_event_loop()
    try:
        session = Session(loop)
        assert (session.peer, session.ssl, session.host_name, session.extended_smtp, session.loop) == (
            None, None, None, False, loop
        )
    finally:
        loop.close()


def test_session_login_data_is_deprecated(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        session = Session(loop)
        with caplog.at_level(logging.WARNING, logger="mail.log"):
            session.login_data = b"user"
            assert session.login_data == b"user"
    finally:
        loop.close()
    warned = [r for r in caplog.records if "login_data is deprecated" in r.getMessage()]
    assert len(warned) == 2


class TaggedSession(Session):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.tag = "custom session"


class TaggedEnvelope(Envelope):
    count = 0

    def __init__(self) -> None:
        super().__init__()
        TaggedEnvelope.count += 1
        self.serial = TaggedEnvelope.count


class CustomFactories:
    """An SMTP subclass body (aiosmtpd's documented override points)."""

    def _create_session(self) -> Session:
        return TaggedSession(self.loop)  # type: ignore[attr-defined]

    def _create_envelope(self) -> Envelope:
        return TaggedEnvelope()


class SeesFactories:
    def __init__(self) -> None:
        self.seen: List[Tuple[str, Any, Any]] = []

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        self.seen.append((type(session).__name__, session.tag, type(envelope).__name__))
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.seen.append((type(session).__name__, session.tag, type(envelope).__name__))
        return "250 OK"


def test_custom_session_and_envelope_factories() -> None:
    steps = [line("HELO c"), line("RSET"), line("MAIL FROM:<a@x.test>"), line("RCPT TO:<b@x.test>"), line("DATA"),
             data(b"x\r\n"), line("RSET")]
    run = side_by_side(SeesFactories, steps, mixin=CustomFactories)
    assert run.mine == run.theirs
    assert run.my_handler.seen == [("TaggedSession", "custom session", "TaggedEnvelope")] * 3
    assert run.my_handler.seen == run.their_handler.seen


def test_a_hook_returning_none_is_an_error_reply() -> None:
    """Hooks must return a status; None is a handler bug, answered with a
    500 naming it (as aiosmtpd does), and the session goes on."""

    class Silent:
        async def handle_NOOP(self, *args: Any) -> None:
            return None

    replies = dialog(Silent(), [line("NOOP"), line("HELO c")])
    assert replies[1].startswith(b"500 Error: (AssertionError)")
    assert replies[2] == f"250 {HOST}\r\n".encode()


def test_hook_added_to_the_class_later_applies_to_the_next_connection() -> None:
    from unittest import mock

    class Patched:
        pass

    async def handle_NOOP(self: Any, server: Any, session: Any, envelope: Any, arg: Optional[str]) -> str:
        return "250 patched"

    with serve(Patched()) as server:
        with Client(server.port) as client:
            assert client.cmd("NOOP") == b"250 OK\r\n"
        with mock.patch.object(Patched, "handle_NOOP", handle_NOOP, create=True):
            with Client(server.port) as client:
                assert client.cmd("NOOP") == b"250 patched\r\n"
