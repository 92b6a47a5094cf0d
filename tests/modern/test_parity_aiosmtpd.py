"""Side by side: aiosmtpd 1.4.6 and smtpd_compat.modern give the same replies
to the same dialogs, byte for byte, and hand handlers the same envelopes.

aiosmtpd is a test-only dependency; these tests skip where it is absent.
Deliberate differences (bare-LF command endings, timeouts with 421, a second
STARTTLS) are tested elsewhere, not here.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any, Dict, List, Tuple

import pytest

from smtpd_compat.modern import smtp as ours

from ._servers import LoopServer, Step, converse

aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")


class Recorder:
    def __init__(self) -> None:
        self.envelopes: List[Tuple[Any, ...]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(
            (envelope.mail_from, envelope.rcpt_tos, envelope.mail_options, envelope.rcpt_options,
             envelope.content, envelope.original_content, envelope.smtp_utf8)
        )
        return "250 OK"


def run_both(steps: List[Step], **kwargs: Any) -> Tuple[List[bytes], List[bytes], Recorder, Recorder]:
    results = []
    for module in (aiosmtpd_smtp, ours):
        recorder = Recorder()

        def factory(loop: asyncio.AbstractEventLoop, module: Any = module, recorder: Recorder = recorder) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return module.SMTP(recorder, hostname="mx.test", loop=loop, **kwargs)

        with LoopServer(factory) as server:
            results.append((converse(server.port, steps), recorder))
    (theirs, their_rec), (mine, my_rec) = results
    return theirs, mine, their_rec, my_rec


def greet(verb: bytes = b"EHLO") -> Step:
    return (verb + b" client.test\r\n", 1)


def line(text: bytes, replies: int = 1) -> Step:
    return (text + b"\r\n", replies)


DIALOGS: Dict[str, List[Step]] = {
    "plain transaction": [
        greet(), line(b"MAIL FROM:<a@example.com>"), line(b"RCPT TO:<b@example.com>"),
        line(b"RCPT TO:<c@example.com>"), line(b"DATA"),
        (b"Subject: hi\r\n\r\n.leading dot\r\n..two dots\r\nlast\r\n.\r\n", 1), line(b"QUIT"),
    ],
    "helo transaction": [
        greet(b"HELO"), line(b"MAIL FROM:<a@example.com> SIZE=10"), line(b"MAIL FROM: a@example.com"),
        line(b"RCPT TO:b@example.com"), line(b"DATA"), (b"x\r\n.\r\n", 1),
    ],
    "ordering errors": [
        line(b"MAIL FROM:<a@x>"), line(b"RCPT TO:<b@x>"), line(b"DATA"), greet(),
        line(b"RCPT TO:<b@x>"), line(b"DATA"), line(b"MAIL FROM:<a@x>"), line(b"MAIL FROM:<a@x>"),
        line(b"DATA"), line(b"RCPT TO:<b@x>"), line(b"DATA extra"), line(b"RSET"), line(b"RCPT TO:<b@x>"),
    ],
    "mail parameters": [
        greet(), line(b"MAIL FROM:<>"), line(b"RSET"), line(b"MAIL FROM:<a@x> SIZE=99999999999"),
        line(b"MAIL FROM:<a@x> SIZE=abc"), line(b"MAIL FROM:<a@x> BODY=BAD"), line(b"MAIL FROM:<a@x> SMTPUTF8"),
        line(b"MAIL FROM:<a@x> SMTPUTF8=yes"), line(b"MAIL FROM:<a@x> FOO=bar"), line(b"MAIL FROM:<a@x> X-Y=1"),
        line(b"MAIL FROM:<a@x> SIZE="), line(b"MAIL TO:<a@x>"), line(b"MAIL"), line(b"MAIL FROM:"),
        line(b"MAIL FROM:<a@x> body=8bitmime size=100"), line(b"RCPT TO:<b@x> NOTIFY=NEVER"),
        line(b"RCPT TO:"), line(b"RCPT FROM:<b@x>"), line(b"RCPT TO:<b@x>"), line(b"DATA"), (b".\r\n", 1),
    ],
    "help and misc": [
        line(b"HELP"), line(b"HELP MAIL"), greet(), line(b"HELP mail"), line(b"HELP RCPT"), line(b"HELP FOO"),
        line(b"HELP STARTTLS"), line(b"HELP AUTH"), line(b"VRFY"), line(b"VRFY <a@x>"), line(b"VRFY a b c"),
        line(b"EXPN a"), line(b"NOOP"), line(b"NOOP anything"), line(b"RSET x"), line(b"QUIT x"),
        line(b"STARTTLS"), line(b"HELO"), line(b"EHLO"), line(b""), line(b"   "),
    ],
    "unknown commands": [line(b"FOO"), line(b"BAR 1"), line(b"baz"), line(b"QUX"), line(b"ZAP")],
    "auth gates": [
        line(b"AUTH PLAIN"), greet(b"HELO"), line(b"AUTH PLAIN"), greet(), line(b"AUTH PLAIN AAAA"),
    ],
    "command length": [
        line(b"NOOP " + b"x" * 507), line(b"NOOP " + b"x" * 508), greet(),
        line(b"MAIL FROM:<" + b"a" * 520 + b"@x>"), line(b"RSET"),
        line(b"MAIL FROM:<" + b"a" * 540 + b"@x>"), line(b"NOOP " + b"y" * 600),
    ],
    "strict ascii": [greet(), line("MAIL FROM:<é@x>".encode()), line(b"NOOP \xff")],
    "data line too long": [
        greet(), line(b"MAIL FROM:<a@x>"), line(b"RCPT TO:<b@x>"), line(b"DATA"),
        (b"a" * 999 + b"\r\n" + b"b" * 1000 + b"\r\nok\r\n.\r\n", 1), line(b"MAIL FROM:<a@x>"),
    ],
    "data line at limit": [
        greet(), line(b"MAIL FROM:<a@x>"), line(b"RCPT TO:<b@x>"), line(b"DATA"),
        (b"." + b"a" * 998 + b"\r\n.\r\n", 1),
    ],
    "empty message and empty line": [
        greet(), line(b"MAIL FROM:<a@x>"), line(b"RCPT TO:<b@x>"), line(b"DATA"), (b".\r\n", 1),
        line(b"MAIL FROM:<a@x>"), line(b"RCPT TO:<b@x>"), line(b"DATA"), (b"\r\n.\r\n", 1),
    ],
    "pipelined burst": [
        (b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n", 5),
        (b"hello\r\n.\r\nMAIL FROM:<d@x>\r\nRCPT TO:<e@x>\r\nDATA\r\nbye\r\n.\r\nQUIT\r\n", 6),
    ],
    "bare newlines stay in content": [
        greet(), line(b"MAIL FROM:<a@x>"), line(b"RCPT TO:<b@x>"), line(b"DATA"),
        (b"one\nstill one\rthree\r\n\n.\r\nnot the end\r\n.\r\n", 1),
    ],
}


@pytest.mark.parametrize("name", sorted(DIALOGS))
def test_same_replies(name: str) -> None:
    theirs, mine, their_rec, my_rec = run_both(DIALOGS[name])
    assert mine == theirs
    assert my_rec.envelopes == their_rec.envelopes


def test_same_replies_small_size_limit() -> None:
    steps = [
        greet(), line(b"MAIL FROM:<a@x> SIZE=101"), line(b"MAIL FROM:<a@x> SIZE=100"), line(b"RCPT TO:<b@x>"),
        line(b"DATA"), (b"x" * 120 + b"\r\n.\r\n", 1), line(b"MAIL FROM:<a@x>"),
    ]
    theirs, mine, their_rec, my_rec = run_both(steps, data_size_limit=100)
    assert mine == theirs
    assert my_rec.envelopes == their_rec.envelopes == []


@pytest.mark.parametrize("kwargs", [{"enable_SMTPUTF8": True}, {"decode_data": True}, {"data_size_limit": None}])
def test_same_replies_options(kwargs: Dict[str, Any]) -> None:
    steps = [
        greet(), line("MAIL FROM:<δ@x> SMTPUTF8 BODY=8BITMIME".encode()), line(b"RSET"),
        line(b"MAIL FROM:<a@x> BODY=8BITMIME"), line(b"RCPT TO:<b@x>"), line(b"DATA"),
        ("grüße\r\n.\r\n".encode(), 1), line(b"MAIL FROM:<a@x>"), line(b"RCPT TO:<b@x>"), line(b"DATA"),
        (b"ascii\r\n.\r\n", 1),
    ]
    theirs, mine, their_rec, my_rec = run_both(steps, **kwargs)
    assert mine == theirs
    assert my_rec.envelopes == their_rec.envelopes


def test_strict_ascii_body_ends_the_transaction() -> None:
    """aiosmtpd keeps the envelope after "500 Error: strict ASCII mode", so
    its next MAIL gets "503 nested MAIL"; we end the failed transaction."""
    steps = [
        greet(), line(b"MAIL FROM:<a@x>"), line(b"RCPT TO:<b@x>"), line(b"DATA"),
        ("grüße\r\n.\r\n".encode(), 1), line(b"MAIL FROM:<a@x>"),
    ]
    theirs, mine, _, my_rec = run_both(steps, decode_data=True)
    assert mine[:6] == theirs[:6]
    assert mine[5] == b"500 Error: strict ASCII mode\r\n"
    assert theirs[6] == b"503 Error: nested MAIL command\r\n"
    assert mine[6] == b"250 OK\r\n"
    assert my_rec.envelopes == []


@pytest.mark.parametrize("command", [b"MAIL FROM:<", b"VRFY <"])
def test_unparsable_path_is_a_clean_reply(command: bytes) -> None:
    """aiosmtpd leaks "500 Error: (IndexError) string index out of range"
    for a lone "<" (where the stdlib parser raises IndexError, before 3.13);
    we answer like any other malformed address."""
    steps = [greet(), line(command)]
    theirs, mine, _, _ = run_both(steps)
    assert theirs[2].startswith(b"500 Error: (IndexError)") or theirs[2] == mine[2]
    assert mine[2] in (b"553 5.1.3 Error: malformed address\r\n", b"502 Could not VRFY <\r\n")
