"""The plain fixtures: smtp_server, the factory, the session server, wait_for."""
from __future__ import annotations

from tests.plugin.conftest import RunPlugin

BASICS = '''
import asyncio
import smtplib
import threading
import time
from email.message import EmailMessage

import aiosmtplib
import pytest

from smtpd_compat.testserver import MessageTimeout


def test_smtplib_messages_in_order_with_envelope(smtp_server):
    assert smtp_server.host == "127.0.0.1" and smtp_server.port > 0
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        client.sendmail("a@example.org", ["b@example.org", "c@example.org"], "Subject: one\\r\\n\\r\\n1\\r\\n")
        client.sendmail("<>", ["d@example.org"], "Subject: two\\r\\n\\r\\n2\\r\\n")
    first, second = smtp_server.messages
    assert isinstance(first, EmailMessage)
    assert (first["Subject"], second["Subject"]) == ("one", "two")
    assert first.envelope.mail_from == "a@example.org"
    assert first.envelope.rcpt_tos == ("b@example.org", "c@example.org")
    assert first.envelope.raw == b"Subject: one\\r\\n\\r\\n1\\r\\n"
    assert second.get_content() == "2\\n"
    assert len(smtp_server.store) == 2
    smtp_server.clear()
    assert smtp_server.messages == []


def test_aiosmtplib(smtp_server):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "async"
    message.set_content("hello")
    asyncio.run(aiosmtplib.send(message, hostname=smtp_server.host, port=smtp_server.port))
    assert smtp_server.wait_for()["Subject"] == "async"


def test_wait_for_a_message_sent_later_from_another_thread(smtp_server):
    def send_later():
        time.sleep(0.3)
        with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
            client.sendmail("a@example.org", ["x@example.org"], "Subject: noise\\r\\n\\r\\n.\\r\\n")
            client.sendmail("a@example.org", ["x@example.org"], "Subject: code 1234\\r\\n\\r\\n.\\r\\n")

    sender = threading.Thread(target=send_later)
    sender.start()
    try:
        found = smtp_server.wait_for(lambda m: "code" in m["Subject"], timeout=30)
    finally:
        sender.join()
    assert found["Subject"] == "code 1234"


def test_wait_for_timeout_says_what_came(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        client.sendmail("a@example.org", ["b@example.org"], "Subject: other\\r\\n\\r\\n.\\r\\n")

    def is_welcome(message):
        return message["Subject"] == "Welcome"

    with pytest.raises(MessageTimeout) as caught:
        smtp_server.wait_for(is_welcome, timeout=0.2)
    text = str(caught.value)
    assert text.startswith("no message matching test_wait_for_timeout_says_what_came.<locals>.is_welcome (")
    assert "arrived at 127.0.0.1:%d within 0.2 s; 1 received:" % smtp_server.port in text
    assert "from 'a@example.org' to ['b@example.org'] subject 'other'" in text


def test_factory_starts_independent_servers(smtp_server_factory):
    one, two = smtp_server_factory(), smtp_server_factory()
    assert one.port != two.port
    with smtplib.SMTP(two.host, two.port) as client:
        client.sendmail("a@example.org", ["b@example.org"], "Subject: to two\\r\\n\\r\\n.\\r\\n")
    assert two.wait_for()["Subject"] == "to two" and one.messages == []
'''

SESSION = '''
import smtplib

PORTS = []


def send(server, subject):
    with smtplib.SMTP(server.host, server.port) as client:
        client.sendmail("a@example.org", ["b@example.org"], "Subject: %s\\r\\n\\r\\n.\\r\\n" % subject)


def test_first(smtp_server_session):
    smtp_server_session.clear()
    PORTS.append(smtp_server_session.port)
    send(smtp_server_session, "first")
    assert [m["Subject"] for m in smtp_server_session.messages] == ["first"]


def test_second_sees_the_same_server_and_clears_it(smtp_server_session):
    assert PORTS == [smtp_server_session.port]
    assert [m["Subject"] for m in smtp_server_session.messages] == ["first"]
    smtp_server_session.clear()
    send(smtp_server_session, "second")
    assert [m["Subject"] for m in smtp_server_session.messages] == ["second"]
'''


def test_smtp_server_fixture(run_plugin: RunPlugin) -> None:
    run_plugin(BASICS).assert_outcomes(passed=5)


def test_session_server_is_shared_and_cleared(run_plugin: RunPlugin) -> None:
    run_plugin(SESSION).assert_outcomes(passed=2)
