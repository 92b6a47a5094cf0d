"""STARTTLS, SMTPS and AUTH variants, driven by smtplib and aiosmtplib with
certificate verification on (the shipped CA)."""
from __future__ import annotations

from tests.plugin.conftest import RunPlugin

TLS_AUTH = '''
import asyncio
import smtplib
import ssl

import aiosmtplib
import pytest

MESSAGE = "Subject: secret\\r\\n\\r\\n.\\r\\n"


def test_starttls_fixture_verifies_against_the_shipped_ca(smtp_server_starttls):
    with smtplib.SMTP("localhost", smtp_server_starttls.port) as client:
        client.starttls(context=smtp_server_starttls.client_ssl_context())
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    assert smtp_server_starttls.wait_for().envelope.rcpt_tos == ("b@example.org",)


def test_smtps_fixture_with_aiosmtplib(smtp_server_smtps):
    async def send():
        await aiosmtplib.send(
            MESSAGE, sender="a@example.org", recipients=["b@example.org"],
            hostname="127.0.0.1", port=smtp_server_smtps.port,
            use_tls=True, tls_context=smtp_server_smtps.client_ssl_context(),
        )

    asyncio.run(send())
    assert smtp_server_smtps.wait_for()["Subject"] == "secret"


def test_smtps_refuses_an_unverified_client(smtp_server_smtps):
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL("localhost", smtp_server_smtps.port, context=ssl.create_default_context())


@pytest.mark.smtp_server(tls="starttls", require_starttls=True)
def test_require_starttls(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert refused.value.smtp_code == 530


@pytest.mark.smtp_server(auth=("alice", "s3cret"), auth_required=True)
def test_auth_success_over_plain_connection(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        client.login("alice", "s3cret")
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    assert smtp_server.wait_for()["Subject"] == "secret"


@pytest.mark.smtp_server(auth=("alice", "s3cret"), auth_required=True)
def test_auth_failure_and_auth_required(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.login("alice", "wrong")
        assert failed.value.smtp_code == 535
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert refused.value.smtp_code == 530
    assert smtp_server.messages == []


@pytest.mark.smtp_server(auth=("alice", "s3cret"), auth_required=True)
def test_auth_over_starttls_is_offered_only_inside_tls(smtp_server_starttls):
    with smtplib.SMTP("localhost", smtp_server_starttls.port) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        client.starttls(context=smtp_server_starttls.client_ssl_context())
        client.login("alice", "s3cret")
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    assert len(smtp_server_starttls.messages) == 1


@pytest.mark.smtp_server(tls="smtps")
def test_a_marker_contradicting_the_fixture_is_an_error(smtp_server_starttls):
    pass
'''


def test_tls_and_auth_variants(run_plugin: RunPlugin) -> None:
    result = run_plugin(TLS_AUTH)
    result.assert_outcomes(passed=7, errors=1)
    result.stdout.fnmatch_lines(["*ValueError: smtp_server_starttls fixes {'tls': 'starttls'}; the marker asks {'tls': 'smtps'}"])
