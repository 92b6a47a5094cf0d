"""The opt-in extensions on the modern face: CHUNKING/BINARYMIME, DSN,
ENHANCEDSTATUSCODES, PIPELINING (the BDAT probes of both faces are in
tests/hostile/test_bdat.py)."""

from __future__ import annotations

from typing import Any, List

import pytest

from smtpd_compat.engine.dsn import MailDsn, RcptDsn
from smtpd_compat.modern.lmtp import LMTP
from smtpd_compat.modern.smtp import SMTP

from ._periphery import cert_pair  # noqa: F401  (fixture)
from ._smtp_support import Client, Recorder, dialog, serve

ALL = dict(enable_CHUNKING=True, enable_BINARYMIME=True, enable_PIPELINING=True, enable_ENHANCEDSTATUSCODES=True,
           enable_DSN=True)


def test_ehlo_and_help_unchanged_by_default() -> None:
    replies = dialog(Recorder(), [(b"EHLO c\r\nHELP\r\nBDAT 3 LAST\r\n", 3)])
    assert replies[1] == b"250-mx.test\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250 HELP\r\n"
    assert b"BDAT" not in replies[2]
    assert replies[3] == b'500 Error: command "BDAT" not recognized\r\n'


def test_ehlo_lhlo_and_help_offer_them() -> None:
    keywords = b"250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250 HELP\r\n"
    replies = dialog(Recorder(), [(b"EHLO c\r\nHELP\r\nHELP BDAT\r\n", 3)], **ALL)
    assert replies[1] == b"250-mx.test\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n" + keywords
    assert b" BDAT " in replies[2] and replies[2].startswith(b"250 2.0.0 Supported commands:")
    assert replies[3] == b"250 2.0.0 Syntax: BDAT <size> [LAST]\r\n"
    lmtp = dialog(Recorder(), [(b"LHLO c\r\n", 1)], protocol=LMTP, **ALL)
    assert lmtp[1].endswith(keywords)


def test_binarymime_needs_chunking_and_8bitmime() -> None:
    with pytest.raises(ValueError, match="BINARYMIME"):
        SMTP(Recorder(), enable_BINARYMIME=True)
    with pytest.raises(ValueError, match="BINARYMIME"):
        SMTP(Recorder(), enable_BINARYMIME=True, enable_CHUNKING=True, decode_data=True)


def test_bdat_message_reaches_the_handler_as_after_data() -> None:
    recorder = Recorder()
    body = b"Subject: x\r\n\r\n.leading dot\r\nbare\nLF\x00\xff"
    with serve(recorder, enable_CHUNKING=True) as server, Client(server.port) as client:
        client.cmd("EHLO c")
        client.cmd("MAIL FROM:<a@x.test> BODY=8BITMIME")
        client.cmd("RCPT TO:<b@x.test>")
        client.send(b"BDAT 10\r\n" + body[:10] + b"BDAT %d LAST\r\n" % (len(body) - 10) + body[10:])
        assert client.reply() == b"250 2.0.0 10 octets received\r\n"
        assert client.reply() == b"250 OK\r\n"
        assert client.cmd("MAIL FROM:<c@x.test>") == b"250 OK\r\n", "the transaction ended"
    (got,) = recorder.delivered
    assert got.content == got.original_content == body
    assert (got.mail_from, got.rcpt_tos, got.mail_options) == ("a@x.test", ["b@x.test"], ["BODY=8BITMIME"])


def test_bdat_decoded_and_lmtp_replies_per_recipient() -> None:
    recorder = Recorder()
    script = b"LHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nBDAT 4 LAST\r\nh\xc3\xa9\n"
    replies = dialog(recorder, [(script, 6)], protocol=LMTP, enable_CHUNKING=True, decode_data=True,
                     enable_SMTPUTF8=True)
    assert replies[-2:] == [b"250 OK\r\n", b"250 OK\r\n"]
    assert recorder.delivered[0].content == "hé\n"


def test_binarymime_only_by_bdat() -> None:
    recorder = Recorder()
    script = b"EHLO c\r\nMAIL FROM:<a@x.test> BODY=BINARYMIME\r\nRCPT TO:<b@x.test>\r\nDATA\r\nBDAT 2 LAST\r\n\x00\x01"
    replies = dialog(recorder, [(script, 5)], enable_CHUNKING=True, enable_BINARYMIME=True)
    assert replies[4:] == [b"503 5.5.1 Error: BODY=BINARYMIME requires BDAT\r\n", b"250 OK\r\n"]
    assert recorder.delivered[0].content == b"\x00\x01"
    refused = dialog(Recorder(), [(b"EHLO c\r\nMAIL FROM:<a@x.test> BODY=BINARYMIME\r\n", 2)], enable_CHUNKING=True)
    assert refused[2] == b"501 Error: BODY can only be one of 7BIT, 8BITMIME\r\n"


class DsnRecorder:
    def __init__(self) -> None:
        self.seen: List[Any] = []
        self.options: List[List[str]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: List[str]) -> str:
        self.options.append(options)
        if address.startswith("no"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.seen.append((envelope.dsn, dict(envelope.rcpt_dsn)))
        return "250 OK"


def test_dsn_into_the_envelope() -> None:
    handler = DsnRecorder()
    script = (
        b"EHLO c\r\nMAIL FROM:<a@x.test> RET=hdrs ENVID=Id+2BMixed\r\n"
        b"RCPT TO:<b@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+40X.test\r\n"
        b"RCPT TO:<no@x.test> NOTIFY=NEVER\r\nRCPT TO:<c@x.test>\r\nRCPT TO:<d@x.test> NOTIFY=SOMETIMES\r\n"
        b"DATA\r\nhi\r\n.\r\n"
    )
    replies = dialog(handler, [(script, 8)], enable_DSN=True)
    assert replies[2:] == [b"250 OK\r\n", b"250 OK\r\n", b"550 no such user\r\n", b"250 OK\r\n",
                           b"501 5.5.4 Error: bad NOTIFY parameter syntax\r\n",
                           b"354 End data with <CR><LF>.<CR><LF>\r\n", b"250 OK\r\n"]
    ((mail_dsn, rcpt_dsn),) = handler.seen
    assert mail_dsn == MailDsn("HDRS", "Id+Mixed")
    assert rcpt_dsn == {"b@x.test": RcptDsn(("SUCCESS", "FAILURE"), ("rfc822", "B@X.test")), "c@x.test": RcptDsn()}
    assert handler.options[0] == ["NOTIFY=SUCCESS,FAILURE", "ORCPT=RFC822;B+40X.TEST"], "aiosmtpd's upper case"
    unknown = dialog(Recorder(), [(b"EHLO c\r\nMAIL FROM:<a@x.test> RET=FULL\r\n", 2)])
    assert unknown[2] == b"555 MAIL FROM parameters not recognized or not implemented\r\n"


def test_enhanced_status_codes_after_ehlo_only() -> None:
    script = (
        b"HELO c\r\nNOOP\r\nEHLO c\r\nNOOP\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<\r\n"
        b"DATA\r\nhi\r\n.\r\nFOO\r\nQUIT\r\n"
    )
    replies = dialog(Recorder(), [(script, 11)], enable_ENHANCEDSTATUSCODES=True)
    assert replies[1:3] == [b"250 mx.test\r\n", b"250 OK\r\n"]
    assert replies[3].startswith(b"250-mx.test\r\n") and replies[3].endswith(b"250 HELP\r\n")
    assert replies[4:] == [b"250 2.0.0 OK\r\n", b"250 2.1.0 OK\r\n", b"250 2.1.5 OK\r\n",
                           b"553 5.1.3 Error: malformed address\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n",
                           b"250 2.0.0 OK\r\n", b'500 5.5.2 Error: command "FOO" not recognized\r\n',
                           b"221 2.0.0 Bye\r\n"]


class Gate:
    def __init__(self, reply: Any = None) -> None:
        self.reply = reply
        self.events: List[str] = []

    async def handle_CONNECT(self, server: Any, session: Any) -> Any:
        self.events.append(f"connect {session.peer[0]}")
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply

    async def handle_DISCONNECT(self, server: Any, session: Any) -> None:
        self.events.append("disconnect")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "421 4.3.2 shutting down"


def wait_for(events: List[str], count: int) -> List[str]:
    import time

    deadline = time.monotonic() + 5
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return events


def test_connect_hook_refuses_or_proceeds_and_disconnect_runs_once() -> None:
    refusing = Gate("554 5.7.1 Access denied")
    with serve(refusing) as server, Client(server.port) as client:
        assert client.greeting == b"554 5.7.1 Access denied\r\n"
        assert client.rest() == b""
        assert wait_for(refusing.events, 2) == ["connect 127.0.0.1", "disconnect"]
    proceeding = Gate()
    with serve(proceeding) as server, Client(server.port) as client:
        assert client.greeting.startswith(b"220 mx.test ")
        assert client.cmd("QUIT") == b"221 Bye\r\n"
    assert wait_for(proceeding.events, 2) == ["connect 127.0.0.1", "disconnect"]
    failing = Gate(RuntimeError("no database"))
    with serve(failing) as server, Client(server.port) as client:
        assert client.greeting == b"421 Error: (RuntimeError) no database\r\n"


def test_a_handler_421_closes_the_session() -> None:
    with serve(Gate()) as server, Client(server.port) as client:
        client.cmd("HELO c")
        client.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nhi\r\n.\r\nNOOP\r\n")
        assert [client.reply() for _ in range(4)][3] == b"421 4.3.2 shutting down\r\n"
        assert client.rest() == b"", "closed; the pipelined NOOP is not run"


def test_ssl_handshake_timeout_closes_a_silent_starttls(cert_pair: Any) -> None:
    slow = type("SlowTLS", (SMTP,), {"ssl_handshake_timeout": 0.2})
    handler = Recorder()
    with serve(handler, protocol=slow, tls_context=cert_pair.server_context()) as server:
        with Client(server.port, timeout=30) as client:
            client.cmd("EHLO c")
            assert client.cmd("STARTTLS") == b"220 Ready to start TLS\r\n"
            assert client.rest() == b"", "closed without a ClientHello, long before the idle timeout"


@pytest.mark.parametrize("how", ["controller keyword", "SMTP class attribute"])
def test_ssl_handshake_timeout_drops_a_silent_smtps_client(cert_pair: Any, how: str, monkeypatch: Any) -> None:
    import socket

    from smtpd_compat.modern.controller import Controller

    keywords = {"ssl_handshake_timeout": 0.2} if how == "controller keyword" else {}
    if how == "SMTP class attribute":
        monkeypatch.setattr(SMTP, "ssl_handshake_timeout", 0.2)
    controller = Controller(Recorder(), hostname="127.0.0.1", port=0, ssl_context=cert_pair.server_context(),
                            **keywords)
    controller.start()
    try:
        with socket.create_connection(("127.0.0.1", controller.port), timeout=30) as silent:
            try:
                closed = silent.recv(1) == b""  # no ClientHello ever sent
            except ConnectionResetError:
                closed = True
        assert closed, "dropped after the handshake timeout, long before asyncio's 60 s"
    finally:
        controller.stop()


def test_command_log_level(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    quiet = type("Quiet", (SMTP,), {"command_log_level": logging.DEBUG})
    caplog.set_level(logging.INFO, logger="mail.log")
    dialog(Recorder(), [(b"NOOP\r\n", 1)], protocol=quiet)
    dialog(Recorder(), [(b"RSET\r\n", 1)])
    commands = [r.getMessage() for r in caplog.records if " >> " in r.getMessage()]
    assert len(commands) == 1 and commands[0].endswith(">> b'RSET'"), commands


def test_connection_limit_per_client() -> None:
    limited = type("Limited", (SMTP,), {"connection_limit_per_client": 2})
    with serve(Recorder(), protocol=limited) as server:
        first, second = Client(server.port), Client(server.port)
        with Client(server.port) as third:
            assert third.greeting == b"421 4.7.0 mx.test Error: too many connections from your address\r\n"
            assert third.rest() == b""
        assert first.cmd("NOOP") == b"250 OK\r\n" and second.cmd("NOOP") == b"250 OK\r\n"
        assert first.cmd("QUIT") == b"221 Bye\r\n"
        assert first.rest() == b""
        first.close()
        greeting = b""
        for _ in range(100):  # the server may see the close a moment after the client
            with Client(server.port) as again:
                greeting = again.greeting
            if greeting.startswith(b"220"):
                break
        assert greeting.startswith(b"220 mx.test"), greeting
        second.close()


def test_smtplib_sends_dsn_parameters() -> None:
    import smtplib

    handler = DsnRecorder()
    with serve(handler, enable_DSN=True, enable_ENHANCEDSTATUSCODES=True) as server:
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo("c")
            assert client.has_extn("dsn") and client.has_extn("enhancedstatuscodes")
            client.sendmail("a@x.test", ["b@x.test"], b"Subject: x\r\n\r\nhi\r\n",
                            mail_options=["RET=FULL", "ENVID=QQ+2B1"], rcpt_options=["NOTIFY=DELAY"])
    assert handler.seen == [(MailDsn("FULL", "QQ+1"), {"b@x.test": RcptDsn(("DELAY",), None)})]
