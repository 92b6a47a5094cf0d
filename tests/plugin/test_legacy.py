"""The legacy-face variant: a stdlib-style SMTPServer subclass on an asyncore loop."""
from __future__ import annotations

from tests.plugin.conftest import RunPlugin

LEGACY = '''
import smtplib
import threading

import pytest

import smtpd_compat
from smtpd_compat.testserver.faces import LegacyFace


def test_same_api_as_the_modern_server(smtp_server_legacy):
    assert isinstance(smtp_server_legacy._face, LegacyFace)
    assert isinstance(smtp_server_legacy._face.server, smtpd_compat.SMTPServer)
    with smtplib.SMTP(smtp_server_legacy.host, smtp_server_legacy.port) as client:
        client.sendmail("a@example.org", ["b@example.org"], "Subject: old\\r\\n\\r\\nline 1\\r\\nline 2\\r\\n")
    message = smtp_server_legacy.wait_for()
    assert message["Subject"] == "old"
    assert message.envelope.raw == b"Subject: old\\r\\n\\r\\nline 1\\r\\nline 2\\r\\n"
    assert message.envelope.mail_from == "a@example.org"
    smtp_server_legacy.clear()
    assert smtp_server_legacy.messages == []


def test_wait_for_from_another_thread(smtp_server_legacy):
    def send():
        with smtplib.SMTP(smtp_server_legacy.host, smtp_server_legacy.port) as client:
            client.sendmail("a@example.org", ["b@example.org"], "Subject: later\\r\\n\\r\\n.\\r\\n")

    threading.Timer(0.2, send).start()
    assert smtp_server_legacy.wait_for(lambda m: m["Subject"] == "later", timeout=30)


@pytest.mark.smtp_server(tls="starttls", auth=("alice", "pw"), auth_required=True)
def test_starttls_and_auth(smtp_server_legacy):
    with smtplib.SMTP("localhost", smtp_server_legacy.port) as client:
        client.starttls(context=smtp_server_legacy.client_ssl_context())
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("alice", "wrong")
        client.login("alice", "pw")
        client.sendmail("a@example.org", ["b@example.org"], "Subject: tls\\r\\n\\r\\n.\\r\\n")
    assert smtp_server_legacy.wait_for()["Subject"] == "tls"


@pytest.mark.smtp_server(tls="smtps")
def test_smtps(smtp_server_legacy):
    with smtplib.SMTP_SSL("localhost", smtp_server_legacy.port, context=smtp_server_legacy.client_ssl_context()) as client:
        client.sendmail("a@example.org", ["b@example.org"], "Subject: smtps\\r\\n\\r\\n.\\r\\n")
    assert smtp_server_legacy.wait_for()["Subject"] == "smtps"
'''


def test_legacy_face_variant(run_plugin: RunPlugin) -> None:
    run_plugin(LEGACY).assert_outcomes(passed=4)
