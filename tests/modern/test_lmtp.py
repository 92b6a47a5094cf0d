"""LMTP (RFC 2033) on the modern face: LHLO, and one reply per accepted
recipient after DATA, with smtplib.LMTP (TCP and Unix socket) and Postfix's
smtp-source as real clients."""

from __future__ import annotations

import contextlib
import shutil
import smtplib
import subprocess
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest

from smtpd_compat.modern.controller import UnixSocketController
from smtpd_compat.modern.lmtp import LMTP

from ._extensions import HANDSHAKE, Dialog, HookRecorder, replies_of_both, serve
from ._periphery import CertPair, cert_pair  # noqa: F401  (fixture)

MESSAGE = b"Subject: lmtp\r\n\r\nlocal delivery\r\n"
RECIPIENTS = ["a@x", "full@x", "c@x"]


class PerRecipient(HookRecorder):
    """Delivers to every mailbox but full@x: a status per recipient."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> Any:
        await super().handle_DATA(server, session, envelope)
        return ["452 4.2.2 Mailbox full" if rcpt == "full@x" else f"250 2.0.0 <{rcpt}> delivered"
                for rcpt in envelope.rcpt_tos]


def lmtp_transaction(client: smtplib.LMTP, recipients: List[str]) -> List[Tuple[int, bytes]]:
    """smtplib reads one reply after DATA; LMTP sends one per recipient, so the
    others are read with getreply()."""
    client.ehlo_or_helo_if_needed()
    assert client.mail("sender@x")[0] == 250
    for rcpt in recipients:
        assert client.rcpt(rcpt)[0] == 250
    replies = [client.data(MESSAGE)]
    replies += [client.getreply() for _ in recipients[1:]]
    return replies


EXPECTED = [(250, b"2.0.0 <a@x> delivered"), (452, b"4.2.2 Mailbox full"), (250, b"2.0.0 <c@x> delivered")]


def test_smtplib_lmtp_gets_one_reply_per_recipient() -> None:
    handler = PerRecipient()
    with serve(handler, cls=LMTP) as server:
        with smtplib.LMTP("127.0.0.1", server.port, timeout=5) as client:
            assert client.ehlo_or_helo_if_needed() is None and client.does_esmtp
            assert lmtp_transaction(client, RECIPIENTS) == EXPECTED
            assert client.noop() == (250, b"OK")  # nothing left over: replies are in step
    assert handler.envelopes[0].rcpt_tos == RECIPIENTS
    assert handler.envelopes[0].content == MESSAGE


class LMTPUnixController(UnixSocketController):
    def factory(self) -> LMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


def test_smtplib_lmtp_over_a_unix_socket(tmp_path: Path) -> None:
    handler = PerRecipient()
    path = tmp_path / "lmtp.sock"
    controller = LMTPUnixController(handler, unix_socket=path, server_hostname="mx.test")
    controller.start()
    try:
        with smtplib.LMTP(str(path), timeout=5) as client:
            code, text = client.ehlo()
            assert code == 250 and text.startswith(b"mx.test")
            assert lmtp_transaction(client, RECIPIENTS) == EXPECTED
    finally:
        controller.stop()
    assert handler.envelopes[0].rcpt_tos == RECIPIENTS


def test_single_status_applies_to_every_recipient() -> None:
    """An aiosmtpd handler written for SMTP returns one status: LMTP repeats it."""
    for handler in (HookRecorder(), object()):  # a status, and no handle_DATA at all
        with serve(handler, cls=LMTP) as server, smtplib.LMTP("127.0.0.1", server.port, timeout=5) as client:
            assert lmtp_transaction(client, ["a@x", "b@x"]) == [(250, b"OK"), (250, b"OK")]


class Failing(HookRecorder):
    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> Any:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.mark.parametrize("result", [RuntimeError("disk on fire"), ["250 OK"], [250, 250], None])
def test_handler_errors_still_answer_every_recipient(result: Any) -> None:
    """A hook that raises, or returns what cannot be one status per recipient,
    gets handle_exception's status once per recipient; the session goes on."""
    handler = Failing(result)
    with serve(handler, cls=LMTP) as server, smtplib.LMTP("127.0.0.1", server.port, timeout=5) as client:
        assert lmtp_transaction(client, ["a@x", "b@x"]) == [(451, b"4.3.0 Error")] * 2
        assert client.noop() == (250, b"OK")
    assert len(handler.errors) == 1 and isinstance(handler.errors[0], (RuntimeError, ValueError, TypeError))


def test_refused_message_is_refused_for_every_recipient() -> None:
    with serve(HookRecorder(), cls=LMTP, data_size_limit=100) as server, Dialog(server.port) as dialog:
        dialog.cmd(b"LHLO c.test")
        for line in (b"MAIL FROM:<s@x>", b"RCPT TO:<a@x>", b"RCPT TO:<b@x>", b"DATA"):
            dialog.cmd(line)
        dialog.send(b"x" * 200 + b"\r\n.\r\n")
        assert [dialog.reply(), dialog.reply()] == [b"552 Error: Too much mail data\r\n"] * 2
        assert dialog.cmd(b"NOOP") == b"250 OK\r\n"


def test_rejected_recipients_get_no_reply_after_data() -> None:
    class Picky(HookRecorder):
        async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
            if address.startswith("no"):
                return "550 5.1.1 No such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    with serve(Picky(), cls=LMTP) as server, Dialog(server.port) as dialog:
        dialog.cmd(b"LHLO c.test")
        dialog.cmd(b"MAIL FROM:<s@x>")
        assert [dialog.cmd(b"RCPT TO:<%s@x>" % name) for name in (b"a", b"nobody", b"b")] == [
            b"250 OK\r\n", b"550 5.1.1 No such user\r\n", b"250 OK\r\n"]
        dialog.cmd(b"DATA")
        dialog.send(MESSAGE + b".\r\nNOOP\r\n")
        assert [dialog.reply() for _ in range(3)] == [b"250 OK\r\n", b"250 OK\r\n", b"250 OK\r\n"]


def lmtp_both(lines: List[bytes], client_tls: Any = None, **kwargs: Any) -> Tuple[List[bytes], List[bytes]]:
    """The replies of aiosmtpd's LMTP and of ours to one dialog."""
    (theirs, _), (mine, _) = replies_of_both(
        lines, lambda module: (HookRecorder(), kwargs), client_tls, module_name="lmtp", class_name="LMTP"
    )
    return theirs, mine


def test_same_dialog_as_aiosmtpd_for_one_recipient() -> None:
    lines = [b"HELO c.test", b"EHLO c.test", b"HELP", b"MAIL FROM:<s@x>", b"LHLO c.test", b"HELP",
             b"MAIL FROM:<s@x>", b"RCPT TO:<a@x>", b"DATA", MESSAGE + b".", b"QUIT"]
    theirs, mine = lmtp_both(lines)
    assert mine == theirs
    assert mine[1] == b'500 Error: command "HELO" not recognized\r\n'
    assert mine[2] == b'500 Error: command "EHLO" not recognized\r\n'
    assert mine[3] == b"250 Supported commands: AUTH DATA HELP LHLO MAIL NOOP QUIT RCPT RSET VRFY\r\n"
    assert mine[4] == b"503 Error: send HELO first\r\n"
    assert mine[10] == b"250 OK\r\n"


def test_aiosmtpd_sends_one_reply_for_many_recipients() -> None:
    """aiosmtpd issue #517, shown side by side: its second reply never comes."""
    lines = [b"LHLO c.test", b"MAIL FROM:<s@x>", b"RCPT TO:<a@x>", b"RCPT TO:<b@x>", b"DATA", MESSAGE + b"."]
    theirs, mine = lmtp_both(lines + [b"NOOP"])
    assert theirs[-1] == b"250 OK\r\n"  # the NOOP's reply
    assert mine[-1] == b"250 OK\r\n"  # the second recipient's reply; the NOOP's is still queued
    assert theirs[:-1] == mine[:-1]


def test_lhlo_is_allowed_before_starttls(cert_pair: CertPair) -> None:
    lines = [b"LHLO c.test", b"MAIL FROM:<s@x>", b"STARTTLS", HANDSHAKE, b"LHLO c.test", b"MAIL FROM:<s@x>"]
    theirs, mine = lmtp_both(lines, tls_context=cert_pair.server_context(), require_starttls=True,
                             client_tls=cert_pair.client_context())
    assert theirs[1] == b"530 Must issue a STARTTLS command first\r\n"
    assert mine[1].startswith(b"250-mx.test\r\n") and b"250-STARTTLS\r\n" in mine[1]
    assert mine[2] == b"530 Must issue a STARTTLS command first\r\n"
    assert mine[4].endswith(b"250 HELP\r\n") and mine[5] == b"250 OK\r\n"


@contextlib.contextmanager
def lmtp_target(handler: Any, transport: str, directory: Path) -> Iterator[str]:
    """An LMTP server for ``handler``, as smtp-source names it."""
    if transport == "unix":
        path = directory / "lmtp.sock"
        controller = LMTPUnixController(handler, unix_socket=path, server_hostname="mx.test")
        controller.start()
        try:
            yield f"unix:{path}"
        finally:
            controller.stop()
    else:
        with serve(handler, cls=LMTP) as server:
            yield f"127.0.0.1:{server.port}"


@pytest.mark.skipif(shutil.which("smtp-source") is None, reason="smtp-source (Postfix) is not installed")
@pytest.mark.parametrize("transport", ["inet", "unix"])
@pytest.mark.parametrize("handler_class", [PerRecipient, HookRecorder])
def test_postfix_smtp_source_lmtp(transport: str, handler_class: Any, tmp_path: Path) -> None:
    """smtp-source -L waits for one reply per recipient (with aiosmtpd's single
    reply it hangs after the first message)."""
    handler = handler_class()
    with lmtp_target(handler, transport, tmp_path) as target:
        result = subprocess.run(
            ["smtp-source", "-L", "-m", "20", "-r", "3", "-s", "4", "-f", "s@x.test", "-t", "rcpt@y.test", target],
            capture_output=True, timeout=20,
        )
    assert result.returncode == 0, result.stderr
    assert len(handler.envelopes) == 20
    assert all(len(envelope.rcpt_tos) == 3 for envelope in handler.envelopes)
