"""Fault injection, each kind observed by a real client."""
from __future__ import annotations

from tests.plugin.conftest import RunPlugin

FAULTS = '''
import smtplib
import socket

import pytest

MESSAGE = "Subject: s\\r\\n\\r\\n.\\r\\n"


@pytest.mark.smtp_server(faults={"RCPT": "550 5.1.1 No such user"})
def test_every_recipient_refused(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert b"RCPT" in client.help()  # the wrapped commands keep their HELP text
    assert refused.value.recipients == {"b@example.org": (550, b"5.1.1 No such user")}
    assert smtp_server.messages == []


@pytest.mark.smtp_server(faults={"RCPT Gone@Example.org": "550 5.1.1 No such user"})
def test_one_recipient_refused_the_others_get_the_message(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        refused = client.sendmail("a@example.org", ["gone@example.org", "here@example.org"], MESSAGE)
    assert refused == {"gone@example.org": (550, b"5.1.1 No such user")}
    assert smtp_server.wait_for().envelope.rcpt_tos == ("here@example.org",)


@pytest.mark.smtp_server(faults={"MAIL": ["451 4.3.0 Try again later", None], "DATA": "554 5.7.1 Spam"})
def test_a_sequence_fails_once_then_the_data_reply(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as first:
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert first.value.smtp_code == 451
        with pytest.raises(smtplib.SMTPDataError) as data:
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert (data.value.smtp_code, data.value.smtp_error) == (554, b"5.7.1 Spam")
    assert smtp_server.messages == []


@pytest.mark.smtp_server(faults={"CONNECT": "554 5.3.2 Not now"})
def test_greeting(smtp_server):
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP(smtp_server.host, smtp_server.port)
    assert refused.value.smtp_code == 554


@pytest.mark.smtp_server(delays={"MAIL": 0.5})
def test_delay_trips_a_client_timeout(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        client.ehlo()
        client.sock.settimeout(0.1)  # the server waits 0.5 s at least: always too long
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
            client.mail("a@example.org")


@pytest.mark.smtp_server(delays={"DATA": 0.5})
def test_delay_after_the_content(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        client.ehlo()
        client.mail("a@example.org")
        client.rcpt("b@example.org")
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(b"Subject: s\\r\\n\\r\\n.\\r\\n")
        client.sock.settimeout(0.05)  # the server waits 0.5 s at least before its reply
        with pytest.raises(socket.timeout):
            client.sock.recv(1)
        client.sock.settimeout(None)
        assert client.getreply()[0] == 250
    assert len(smtp_server.messages) == 1


@pytest.mark.smtp_server(drop_during_data=True)
def test_connection_dropped_during_data(smtp_server):
    client = smtplib.SMTP(smtp_server.host, smtp_server.port)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    client.close()
    assert smtp_server.messages == []


def test_faults_need_the_modern_face(smtp_server_factory):
    with pytest.raises(ValueError, match="fault injection .* needs face='modern'"):
        smtp_server_factory(face="legacy", faults={"RCPT": "550 no"})
'''


def test_fault_injection(run_plugin: RunPlugin) -> None:
    run_plugin(FAULTS).assert_outcomes(passed=8)
