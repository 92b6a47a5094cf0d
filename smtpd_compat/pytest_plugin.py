"""pytest fixtures for code that sends mail (registered as the ``pytest11``
entry point ``smtpd_compat``; ``-p no:smtpd_compat`` turns it off).

Fixtures: ``smtp_server`` (one server per test), ``smtp_server_starttls``,
``smtp_server_smtps``, ``smtp_server_legacy`` (the same with one option
preset), ``smtp_server_session`` (one per session, per xdist worker) and
``smtp_server_factory`` (``factory(**options)``: any number per test).
Each is an ``smtpd_compat.testserver.SMTPTestServer``.

Options come from the ``smtp_server`` marker (or the factory's keywords),
over smtpdfix's ``SMTPD_*`` environment variables, over the defaults.

Importing this module costs nothing beyond pytest itself: the servers are
imported when a fixture first runs, since every pytest run in an
environment with smtpd_compat installed loads the plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List

import pytest

if TYPE_CHECKING:
    from smtpd_compat.testserver import SMTPTestServer

__all__ = [
    "smtp_server",
    "smtp_server_factory",
    "smtp_server_legacy",
    "smtp_server_session",
    "smtp_server_smtps",
    "smtp_server_starttls",
]

MARKER = "smtp_server"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): configure the smtp_server fixtures of this test "
        "(tls='starttls'|'smtps', auth=(login, password), auth_required, faults, delays, "
        "drop_during_data, face='legacy', ...; see smtpd_compat.testserver.ServerOptions)",
    )


def _marker_options(request: pytest.FixtureRequest) -> Dict[str, Any]:
    """The options of the closest ``smtp_server`` marker (test over class over module)."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return {}
    if marker.args:
        raise TypeError(f"@pytest.mark.{MARKER} takes keyword arguments only, got {marker.args!r}")
    return dict(marker.kwargs)


def _serve(request: pytest.FixtureRequest, **preset: Any) -> Iterator["SMTPTestServer"]:
    from smtpd_compat.testserver import SMTPTestServer

    options = _marker_options(request)
    clashing = {key for key, value in preset.items() if options.get(key, value) != value}
    if clashing:
        raise ValueError(f"{request.fixturename} fixes {preset}; the marker asks {options}")
    with SMTPTestServer(**{**options, **preset}) as server:
        yield server


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> Iterator["SMTPTestServer"]:
    """A running SMTP server (modern face) on 127.0.0.1, a free port, for this test."""
    yield from _serve(request)


@pytest.fixture
def smtp_server_starttls(request: pytest.FixtureRequest) -> Iterator["SMTPTestServer"]:
    """``smtp_server`` offering STARTTLS with the shipped localhost certificate."""
    yield from _serve(request, tls="starttls")


@pytest.fixture
def smtp_server_smtps(request: pytest.FixtureRequest) -> Iterator["SMTPTestServer"]:
    """``smtp_server`` speaking TLS from the first byte (SMTPS, RFC 8314)."""
    yield from _serve(request, tls="smtps")


@pytest.fixture
def smtp_server_legacy(request: pytest.FixtureRequest) -> Iterator["SMTPTestServer"]:
    """``smtp_server`` served by a stdlib-style ``SMTPServer`` subclass on an asyncore loop."""
    yield from _serve(request, face="legacy")


@pytest.fixture(scope="session")
def smtp_server_session() -> Iterator["SMTPTestServer"]:
    """One server for the whole session (per xdist worker), configured by
    the ``SMTPD_*`` variables only.  It keeps every message: call
    ``clear()`` at the start of each test that reads ``messages``."""
    from smtpd_compat.testserver import SMTPTestServer

    with SMTPTestServer() as server:
        yield server


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., "SMTPTestServer"]]:
    """``smtp_server_factory(**options)``: start a server; all stop after the test."""
    from smtpd_compat.testserver import SMTPTestServer

    started: List[SMTPTestServer] = []

    def start(**options: Any) -> SMTPTestServer:
        server = SMTPTestServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()
