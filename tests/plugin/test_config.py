"""Configuration: smtpdfix's SMTPD_* variables, markers over them, xdist."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict

import pytest

from smtpd_compat.testserver import CA_FILE, CERT_FILE, KEY_FILE
from smtpd_compat.testserver.options import ServerOptions, env_options, resolve_options
from tests.plugin.conftest import RunPlugin


def test_env_options_read_smtpdfix_names(tmp_path: Path) -> None:
    environ = {
        "SMTPD_HOST": "::1",
        "SMTPD_PORT": "2525",
        "SMTPD_USE_STARTTLS": "True",
        "SMTPD_USE_SSL": "true",  # STARTTLS wins, as in smtpdfix
        "SMTPD_ENFORCE_AUTH": "yes",
        "SMTPD_AUTH_REQUIRE_TLS": "off",
        "SMTPD_SSL_CERTS_PATH": str(tmp_path),
        "SMTPD_SSL_KEY_FILE": "private.pem",
    }
    assert env_options(environ) == {
        "host": "::1",
        "port": 2525,
        "tls": "starttls",
        "require_starttls": True,
        "auth": ("user", "password"),  # smtpdfix's default login
        "auth_required": True,
        "auth_require_tls": False,
        "certfile": str(tmp_path / "cert.pem"),
        "keyfile": str(tmp_path / "private.pem"),
    }
    assert env_options({"SMTPD_USE_TLS": "1", "SMTPD_LOGIN_NAME": "bob"}) == {"tls": "smtps", "auth": ("bob", "password")}
    assert env_options({"SMTPD_USE_SSL": "0", "SMTPD_ENFORCE_AUTH": "n"}) == {"auth_required": False}
    assert env_options({}) == {}


@pytest.mark.parametrize(
    "explicit, environ, expected",
    [
        ({}, {"SMTPD_USE_STARTTLS": "1"}, {"tls": "starttls", "require_starttls": True}),
        # An explicit tls drops what the variable implied along with it.
        ({"tls": "smtps"}, {"SMTPD_USE_STARTTLS": "1"}, {"tls": "smtps", "require_starttls": False}),
        ({"tls": None, "auth": ("a", "b")}, {"SMTPD_USE_SSL": "1", "SMTPD_LOGIN_NAME": "x"}, {"tls": None, "auth": ("a", "b")}),
        ({"port": 0}, {"SMTPD_PORT": "2525"}, {"port": 0}),
    ],
)
def test_explicit_options_win_over_the_environment(
    explicit: Dict[str, Any], environ: Dict[str, str], expected: Dict[str, Any]
) -> None:
    options = resolve_options(explicit, environ)
    assert {key: getattr(options, key) for key in expected} == expected


@pytest.mark.parametrize(
    "explicit, environ, error",
    [
        ({"colour": "red"}, {}, "unknown smtp_server option\\(s\\): colour"),
        ({}, {"SMTPD_USE_SSL": "maybe"}, "SMTPD_USE_SSL='maybe' is neither true nor false"),
        ({"tls": "ssl"}, {}, "tls must be one of"),
        ({"auth_required": True}, {}, "auth_required needs auth="),
        ({"require_starttls": True}, {}, 'require_starttls needs tls="starttls"'),
        ({"face": "legacy", "drop_during_data": True}, {}, "needs face='modern'"),
    ],
)
def test_bad_options_are_clear_errors(explicit: Dict[str, Any], environ: Dict[str, str], error: str) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        resolve_options(explicit, environ)


def test_auth_needs_tls_only_where_tls_exists() -> None:
    assert not ServerOptions(auth=("a", "b")).requires_tls_for_auth
    assert ServerOptions(auth=("a", "b"), tls="starttls").requires_tls_for_auth
    assert ServerOptions(auth=("a", "b"), tls="smtps", auth_require_tls=False).requires_tls_for_auth is False


ENV_CONFIGURED = '''
import smtplib

import pytest

from smtpd_compat.testserver import CA_FILE, client_ssl_context


def test_function_server(smtp_server):
    assert smtp_server.options.tls == "starttls" and smtp_server.options.auth == ("bob", "pw")
    send(smtp_server)


def test_session_server(smtp_server_session):
    smtp_server_session.clear()
    send(smtp_server_session)


@pytest.mark.smtp_server(tls=None, auth_required=False)
def test_marker_wins(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        client.sendmail("a@example.org", ["b@example.org"], "Subject: plain\\r\\n\\r\\n.\\r\\n")
    assert smtp_server.wait_for()["Subject"] == "plain"


def send(server):
    with smtplib.SMTP("localhost", server.port) as client:
        with pytest.raises(smtplib.SMTPSenderRefused):  # STARTTLS first (SMTPD_USE_STARTTLS)
            client.sendmail("a@example.org", ["b@example.org"], "Subject: x\\r\\n\\r\\n.\\r\\n")
        client.starttls(context=client_ssl_context(CA_FILE))
        client.ehlo()
        with pytest.raises(smtplib.SMTPSenderRefused):  # then AUTH (SMTPD_ENFORCE_AUTH)
            client.sendmail("a@example.org", ["b@example.org"], "Subject: x\\r\\n\\r\\n.\\r\\n")
        client.login("bob", "pw")
        client.sendmail("a@example.org", ["b@example.org"], "Subject: env\\r\\n\\r\\n.\\r\\n")
    assert [m["Subject"] for m in server.messages] == ["env"]
'''


def test_environment_configures_every_fixture(run_plugin: RunPlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SMTPD_USE_STARTTLS": "true",
        "SMTPD_ENFORCE_AUTH": "true",
        "SMTPD_LOGIN_NAME": "bob",
        "SMTPD_LOGIN_PASSWORD": "pw",
    }.items():
        monkeypatch.setenv(name, value)
    run_plugin(ENV_CONFIGURED).assert_outcomes(passed=3)


ENV_CERTS_AND_PORT = '''
import os
import smtplib

from smtpd_compat.testserver import CA_FILE, client_ssl_context


def test_smtps_with_certificates_from_a_directory(smtp_server):
    assert smtp_server.port == int(os.environ["SMTPD_PORT"])
    assert smtp_server.options.certfile == os.path.join(os.environ["SMTPD_SSL_CERTS_PATH"], "server.crt")
    with smtplib.SMTP_SSL("localhost", smtp_server.port, context=client_ssl_context(CA_FILE)) as client:
        client.sendmail("a@example.org", ["b@example.org"], "Subject: x\\r\\n\\r\\n.\\r\\n")
    assert len(smtp_server.messages) == 1
'''


def test_environment_certificates_and_port(
    run_plugin: RunPlugin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, free_port: int
) -> None:
    shutil.copy(CERT_FILE, tmp_path / "server.crt")
    shutil.copy(KEY_FILE, tmp_path / "key.pem")
    for name, value in {
        "SMTPD_USE_SSL": "1",
        "SMTPD_SSL_CERTS_PATH": str(tmp_path),
        "SMTPD_SSL_CERTIFICATE_FILE": "server.crt",
        "SMTPD_PORT": str(free_port),
    }.items():
        monkeypatch.setenv(name, value)
    run_plugin(ENV_CERTS_AND_PORT).assert_outcomes(passed=1)
    assert Path(CA_FILE).is_file()


XDIST = '''
import smtplib

import pytest


@pytest.mark.parametrize("n", range(6))
def test_send(smtp_server, smtp_server_session, n):
    for server in (smtp_server, smtp_server_session):
        with smtplib.SMTP(server.host, server.port) as client:
            client.sendmail("a@example.org", ["b@example.org"], "Subject: %d\\r\\n\\r\\n.\\r\\n" % n)
    assert [m["Subject"] for m in smtp_server.messages] == [str(n)]
    assert str(n) in [m["Subject"] for m in smtp_server_session.messages]
'''


def test_under_xdist(run_plugin: RunPlugin) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist comes with the test extra (tox installs it)")
    result = run_plugin(XDIST, "-p", "xdist", "-n", "2", subprocess=True)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*2 workers*"])
