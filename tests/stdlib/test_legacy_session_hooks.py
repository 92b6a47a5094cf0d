"""handle_CONNECT / handle_DISCONNECT and 421-closes on an SMTPServer
subclass, the same on the legacy face and through the modern Controller."""

from __future__ import annotations

import socket
import time
from typing import Any, Callable, Iterator, List, Optional

import pytest

import smtpd_compat as smtpd
from smtpd_compat.modern.controller import Controller
from tests.stdlib._legacy_support import LoopThread


class Gatekeeper(smtpd.SMTPServer):
    refuse: Optional[str] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: List[str] = []

    async def handle_CONNECT(self, server: Any, session: Any) -> Optional[str]:
        self.events.append("connect %s" % session.peer[0])
        return self.refuse

    def handle_DISCONNECT(self, server: Any, session: Any) -> None:
        self.events.append("disconnect")

    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> str:
        return "421 4.3.2 going down"


def both_faces(server_class: type) -> Iterator[Any]:
    with LoopThread(server_class, None) as legacy:
        yield legacy.server, legacy.port
    handler = server_class(None, None)
    controller = Controller(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def talk(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk


def settled(events: List[str], count: int) -> List[str]:
    deadline = time.monotonic() + 5
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return events


@pytest.mark.parametrize("refuse", [None, "554 5.7.1 Access denied"])
def test_connect_and_disconnect_hooks(refuse: Optional[str]) -> None:
    server_class = type("Gate", (Gatekeeper,), {"refuse": refuse})
    for server, port in both_faces(server_class):
        out = talk(port, b"" if refuse else b"QUIT\r\n")  # a client reads the greeting first
        if refuse:
            assert out == b"554 5.7.1 Access denied\r\n", out
        else:
            assert out.startswith(b"220 ") and out.endswith(b"221 Bye\r\n"), out
        assert settled(server.events, 2) == ["connect 127.0.0.1", "disconnect"]


def test_a_process_message_421_closes_the_session() -> None:
    for _, port in both_faces(Gatekeeper):
        out = talk(port, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\nNOOP\r\n")
        assert out.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n421 4.3.2 going down\r\n"), out


class DsnRecorder(smtpd.SMTPServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: List[Any] = []

    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> None:
        self.calls.append((mailfrom, rcpttos, data, kwargs))


def test_legacy_dsn_keywords_and_binarymime_by_bdat() -> None:
    from smtpd_compat.engine.dsn import MailDsn, RcptDsn

    with pytest.raises(ValueError, match="BINARYMIME"):
        DsnRecorder(None, None, enable_BINARYMIME=True)
    with LoopThread(DsnRecorder, None, enable_DSN=True, enable_CHUNKING=True, enable_BINARYMIME=True) as legacy:
        out = talk(legacy.port, b"EHLO c\r\nMAIL FROM:<a@b> RET=hdrs ENVID=X+2BY BODY=BINARYMIME\r\n"
                   b"RCPT TO:<c@d> NOTIFY=FAILURE ORCPT=rfc822;C@D\r\nDATA\r\nBDAT 4 LAST\r\n\x00\r\n\xffQUIT\r\n")
        assert out.endswith(b"250 OK\r\n250 OK\r\n503 5.5.1 Error: BODY=BINARYMIME requires BDAT\r\n"
                            b"250 OK\r\n221 Bye\r\n"), out
        ((mailfrom, rcpttos, data, kwargs),) = legacy.server.calls
    assert (mailfrom, rcpttos, data) == ("a@b", ["c@d"], b"\x00\n\xff")
    assert kwargs == {
        "mail_options": ["RET=HDRS", "ENVID=X+2BY", "BODY=BINARYMIME"],
        "rcpt_options": ["NOTIFY=FAILURE", "ORCPT=RFC822;C@D"],
        "dsn": MailDsn("HDRS", "X+Y"),
        "rcpt_dsn": {"c@d": RcptDsn(("FAILURE",), ("rfc822", "C@D"))},
    }


def test_smtplib_sends_dsn_parameters_to_the_legacy_face() -> None:
    import smtplib

    from smtpd_compat.engine.dsn import MailDsn, RcptDsn

    with LoopThread(DsnRecorder, None, enable_DSN=True) as legacy:
        with smtplib.SMTP("127.0.0.1", legacy.port) as client:
            client.ehlo("c")
            assert client.has_extn("dsn")
            client.sendmail("a@b", ["c@d"], b"hi\r\n", mail_options=["ENVID=e1"], rcpt_options=["NOTIFY=NEVER"])
        ((_, _, data, kwargs),) = legacy.server.calls
    assert data == b"hi"
    assert (kwargs["dsn"], kwargs["rcpt_dsn"]) == (MailDsn(None, "e1"), {"c@d": RcptDsn(("NEVER",), None)})


def _greeting(port: int) -> Any:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock, sock.recv(4096)


def test_connection_limit_per_client() -> None:
    with LoopThread(smtpd.DebuggingServer, None, connection_limit_per_client=2) as legacy:
        (first, hello1), (second, hello2) = _greeting(legacy.port), _greeting(legacy.port)
        assert hello1.startswith(b"220 ") and hello2.startswith(b"220 ")
        third, refused = _greeting(legacy.port)
        with third:
            assert refused == b"421 Error: too many connections from your address\r\n"
            assert third.recv(4096) == b"", "closed"
        with second:
            second.sendall(b"NOOP\r\n")
            assert second.recv(4096) == b"250 OK\r\n"
        first.sendall(b"QUIT\r\n")
        assert first.recv(4096) == b"221 Bye\r\n"
        assert first.recv(4096) == b""
        first.close()
        greeting = b""
        for _ in range(100):  # the server may see the close a moment after the client
            again, greeting = _greeting(legacy.port)
            again.close()
            if greeting.startswith(b"220"):
                break
            time.sleep(0.01)
        assert greeting.startswith(b"220 "), greeting


def test_connection_limit_counts_per_server_and_address() -> None:
    class Limited(smtpd.DebuggingServer):
        connection_limit_per_client = 1

    with LoopThread(Limited, None) as one, LoopThread(Limited, None) as other:
        held, hello = _greeting(one.port)
        with held:
            assert hello.startswith(b"220 ")
            for port, expected in ((one.port, b"421 "), (other.port, b"220 ")):
                sock, reply = _greeting(port)
                sock.close()
                assert reply.startswith(expected), (port, reply)
