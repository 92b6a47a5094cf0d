"""Real SMTP clients against the modern server: smtplib, aiosmtplib, swaks.
Each check compares what the handler received with what was sent, byte
for byte."""

from __future__ import annotations

import asyncio
import io
import random
import shutil
import smtplib
import subprocess
from email.generator import BytesGenerator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, List

import pytest

from ._smtp_support import Delivered, Recorder, serve


def message(subject: str = "hello", body: str = "Hi,\n.a line starting with a dot\n..two dots\nbye\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@x.test>"
    msg["To"] = "rcpt@x.test"
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def flattened(msg: EmailMessage, utf8: bool = False) -> bytes:
    """The bytes smtplib/aiosmtplib put on the wire before dot-stuffing."""
    out = io.BytesIO()
    policy = msg.policy.clone(utf8=True) if utf8 else msg.policy  # type: ignore[call-arg]
    BytesGenerator(out, policy=policy).flatten(msg, linesep="\r\n")
    return out.getvalue()


def only(recorder: Recorder) -> Delivered:
    (delivered,) = recorder.delivered
    return delivered


def raw(delivered: Delivered) -> bytes:
    assert isinstance(delivered.content, bytes)
    return delivered.content


def test_smtplib_send_message() -> None:
    recorder = Recorder()
    msg = message()
    with serve(recorder) as server, smtplib.SMTP("127.0.0.1", server.port) as client:
        assert client.send_message(msg) == {}
    got = only(recorder)
    assert (got.mail_from, got.rcpt_tos) == ("sender@x.test", ["rcpt@x.test"])
    assert got.mail_options == [f"SIZE={len(flattened(msg))}"]
    assert got.content == flattened(msg)
    assert b"\r\n.a line starting with a dot\r\n..two dots\r\n" in got.content


def test_smtplib_sendmail_many_recipients_and_refusals() -> None:
    class Picky(Recorder):
        async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
            if address.startswith("bad"):
                return "550 5.1.1 unknown"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    recorder = Picky()
    rcpts = [f"r{n}@x.test" for n in range(150)] + ["bad@x.test"]
    body = b"Subject: many\r\n\r\n" + b"".join(b".line %d\r\n" % n for n in range(100))
    with serve(recorder) as server, smtplib.SMTP("127.0.0.1", server.port) as client:
        refused = client.sendmail("s@x.test", rcpts, body)
        assert refused == {"bad@x.test": (550, b"5.1.1 unknown")}
        # A second transaction on the same connection.
        assert client.sendmail("<>", ["r0@x.test"], b"second\r\n") == {}
    first, second = recorder.delivered
    assert first.rcpt_tos == rcpts[:-1]
    assert first.content == body
    assert (second.mail_from, second.content) == ("<>", b"second\r\n")


def test_smtplib_smtputf8() -> None:
    recorder = Recorder()
    msg = message("gr\u00fc\u00dfe", "\u00fcber alles\n")
    msg.replace_header("From", "\u00e9l\u00e8ve@x.test")
    msg.replace_header("To", "\u0434\u0440\u0443\u0433@x.test")
    with serve(recorder, enable_SMTPUTF8=True) as server, smtplib.SMTP("127.0.0.1", server.port) as client:
        client.send_message(msg)  # non-ASCII addresses: smtplib asks for SMTPUTF8 itself
        client.sendmail("\u00e9@x.test", ["\u00fc@x.test"], "plain\r\n", mail_options=["SMTPUTF8"])
    international, plain = recorder.delivered
    assert international.mail_from == "\u00e9l\u00e8ve@x.test"
    assert international.rcpt_tos == ["\u0434\u0440\u0443\u0433@x.test"]
    assert international.smtp_utf8 is True
    assert international.mail_options[1:] == ["SMTPUTF8", "BODY=8BITMIME"]
    assert international.content == flattened(msg, utf8=True)
    assert (plain.mail_from, plain.rcpt_tos, plain.smtp_utf8) == ("\u00e9@x.test", ["\u00fc@x.test"], True)


def test_smtplib_refused_smtputf8_when_disabled() -> None:
    with serve(Recorder()) as server, smtplib.SMTP("127.0.0.1", server.port) as client:
        with pytest.raises(smtplib.SMTPNotSupportedError):
            client.sendmail("\u00e9@x.test", ["b@x.test"], b"x", mail_options=["SMTPUTF8"])


def test_smtplib_8bitmime() -> None:
    recorder = Recorder()
    body = "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nna\u00efve caf\u00e9\r\n".encode()
    with serve(recorder) as server, smtplib.SMTP("127.0.0.1", server.port) as client:
        client.ehlo()
        assert client.has_extn("8bitmime")
        client.sendmail("a@x.test", ["b@x.test"], body, mail_options=["BODY=8BITMIME"])
    got = only(recorder)
    assert got.content == body
    assert got.mail_options == [f"SIZE={len(body)}", "BODY=8BITMIME"]


def test_smtplib_helo_only_client() -> None:
    recorder = Recorder()
    with serve(recorder) as server, smtplib.SMTP("127.0.0.1", server.port) as client:
        client.helo("old.client")
        client.sendmail("a@x.test", ["b@x.test"], b"from an old client\r\n")
    assert only(recorder).content == b"from an old client\r\n"


def test_smtplib_vrfy_noop_rset_help() -> None:
    with serve(Recorder()) as server, smtplib.SMTP("127.0.0.1", server.port) as client:
        assert client.noop() == (250, b"OK")
        assert client.verify("a@x.test")[0] == 252
        assert client.rset() == (250, b"OK")
        client.ehlo()
        assert client.help("MAIL") == b"Syntax: MAIL FROM: <address> [SP <mail-parameters>]"


def test_aiosmtplib_send_message() -> None:
    aiosmtplib = pytest.importorskip("aiosmtplib")
    recorder = Recorder()
    msg = message()
    with serve(recorder) as server:
        errors, reply = asyncio.run(aiosmtplib.send(msg, hostname="127.0.0.1", port=server.port, start_tls=False))
    assert (errors, reply) == ({}, "OK")
    got = only(recorder)
    assert got.content == flattened(msg)
    assert got.rcpt_tos == ["rcpt@x.test"]


def test_aiosmtplib_concurrent_clients() -> None:
    """aiosmtplib 5 no longer pipelines (swaks does, below); many clients at
    once on one server loop must all be served."""
    aiosmtplib = pytest.importorskip("aiosmtplib")
    recorder = Recorder()

    async def send_all(port: int) -> List[Any]:
        async def one(n: int) -> Any:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as client:
                for k in range(3):
                    await client.send_message(message(f"m{n}-{k}"))
                return await client.noop()

        return await asyncio.gather(*(one(n) for n in range(20)))

    with serve(recorder) as server:
        replies = asyncio.run(send_all(server.port))
    assert all(reply.code == 250 for reply in replies)
    subjects = sorted(raw(d).split(b"Subject: ")[1].split(b"\r\n")[0] for d in recorder.delivered)
    assert subjects == sorted(b"m%d-%d" % (n, k) for n in range(20) for k in range(3))


SWAKS = shutil.which("swaks")
needs_swaks = pytest.mark.skipif(SWAKS is None, reason="swaks is not installed")


class Pipelining(Recorder):
    """Advertises PIPELINING through the EHLO hook, as a handler may."""

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: List[str]) -> List[str]:
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING", responses[-1]]


def swaks(port: int, *args: str) -> str:
    assert SWAKS is not None
    done = subprocess.run(
        [SWAKS, "--server", f"127.0.0.1:{port}", "--from", "c@d.test", "--to", "a@b.test", "--suppress-data", *args],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@needs_swaks
def test_swaks_pipelined() -> None:
    recorder = Pipelining()
    with serve(recorder) as server:
        transcript = swaks(server.port, "--pipeline", "--to", "a@b.test,e@f.test", "--body", "hello\n.dot\nbye")
    # swaks sent MAIL, RCPT, RCPT and DATA before reading a reply.
    assert " -> MAIL FROM:<c@d.test>\n -> RCPT TO:<a@b.test>\n -> RCPT TO:<e@f.test>\n -> DATA\n<-  250 OK\n" in transcript
    got = only(recorder)
    assert (got.mail_from, got.rcpt_tos) == ("c@d.test", ["a@b.test", "e@f.test"])
    assert raw(got).endswith(b"\r\n\r\nhello\r\n.dot\r\nbye\r\n\r\n\r\n")


@pytest.fixture(scope="module")
def big_message(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 2 MB of 76-byte lines, every seventh starting with a dot."""
    rnd = random.Random(7)
    lines = [
        ("." if n % 7 == 0 else "") + "".join(rnd.choice("abcdefghij .,") for _ in range(75)) for n in range(27000)
    ]
    path = tmp_path_factory.mktemp("swaks") / "message.txt"
    path.write_bytes(("Subject: big\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode())
    return path


@needs_swaks
def test_swaks_2_mb_data_exact_bytes(big_message: Path) -> None:
    recorder = Recorder()
    with serve(recorder) as server:
        swaks(server.port, "--data", f"@{big_message}")
    # swaks ends the data with <CRLF>.<CRLF> after the file's own last CRLF.
    assert only(recorder).content == big_message.read_bytes() + b"\r\n"
    theirs = pytest.importorskip("aiosmtpd.smtp")
    their_recorder = Recorder()
    with serve(their_recorder, theirs.SMTP) as server:
        swaks(server.port, "--data", f"@{big_message}")
    assert only(their_recorder).content == only(recorder).content


@needs_swaks
def test_swaks_2_mb_body(big_message: Path) -> None:
    recorder = Recorder()
    with serve(recorder) as server:
        swaks(server.port, "--pipeline", "--body", f"@{big_message}")
    content = raw(only(recorder))
    assert len(content) > 2_000_000
    # swaks puts the body after its headers and adds an empty line.
    assert content.endswith(b"\r\n\r\n" + big_message.read_bytes() + b"\r\n\r\n")
