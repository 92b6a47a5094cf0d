"""aiosmtpd 1.4.6's own test suite, run against smtpd_compat.modern.

The tests come from the installed aiosmtpd (a test extra; skipped without
it).  They are copied to a temporary package, ``aiosmtpd`` becomes
``smtpd_compat.modern`` in them, and pytest runs them in a child process.
The only tests left out are listed below, each with the reason: they probe
aiosmtpd internals this project replaced, behaviour it changed on purpose
(README: "Where the modern face deliberately differs"), or fail for aiosmtpd
itself on that Python.  The suite also needs pytest-mock.

The suite listens on aiosmtpd's default port 8025 and on 9025: both move to
ports free for this run (its sources and the modern face's defaults, see
``tests/_port_moves.py``), and the run holds 8025 and 9025 itself to prove
that a program holding them does not matter.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict

import pytest

from tests._peer_suites import WELL_KNOWN_PORTS, copy_rewritten, free_ports, holding_well_known_ports, run_python, tail

PACKAGE = "aiosmtpd_peer_tests"

_SMTP = PACKAGE + "/test_smtp.py::"
LEFT_OUT: Dict[str, str] = {
    _SMTP + "TestProtocol::test_honors_mail_delimiters":
        "counts transport.write() calls on a Mock transport: replies to pipelined commands leave in one write",
    _SMTP + "TestProtocol::test_empty_email":
        "counts transport.write() calls on a Mock transport: replies to pipelined commands leave in one write",
    _SMTP + "TestSMTPWithController::test_long_line_leak":
        "patches smtp.EMPTY_BARR, aiosmtpd's StreamReader line-joining buffer; DATA framing is the engine's",
    _SMTP + "TestSleepingHandler::test_close_after_helo":
        "expects no reply to a command sent before the client's half-close; we answer what was received",
    _SMTP + "TestTimeout::test_timeout":
        "expects a silent close on idle timeout; we send 421 4.4.2 first (RFC 5321 4.2.2)",
    PACKAGE + "/test_server.py::TestController::test_testconn_raises":
        "breaks socket.recv to fail the Controller's self-connection at start(); there is none",
}
if sys.version_info >= (3, 13):
    LEFT_OUT[PACKAGE + "/test_server.py::TestUnthreaded::test_unixsocket"] = (
        "fails for aiosmtpd itself on 3.13: asyncio now deletes the socket file when the server closes"
    )

# Replaces pkg_resources (gone from Python 3.12 without setuptools) for the
# one use the suite makes of it: the path of its certificate files.
RESOURCES_SHIM = '''
import importlib.util
import os


def resource_filename(package, name):
    spec = importlib.util.find_spec(package)
    return os.path.join(list(spec.submodule_search_locations)[0], name)
'''


def rewrite_imports(source: str) -> str:
    source = source.replace("from pkg_resources import", "from _peer_resources import")
    source = source.replace("aiosmtpd.tests", PACKAGE)
    return re.sub(r"\baiosmtpd\b", "smtpd_compat.modern", source)


def rewrite_ports(source: str, moves: Dict[int, int]) -> str:
    return re.sub(r"\b(%s)\b" % "|".join(map(str, moves)), lambda match: str(moves[int(match.group(1))]), source)


MOVE_PORTS_CONFTEST = """
from _port_moves import move_default_ports

move_default_ports(%r)
"""


def installed_aiosmtpd_tests() -> Path:
    spec = importlib.util.find_spec("aiosmtpd")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("aiosmtpd (a test extra) is not installed")
    tests = Path(list(spec.submodule_search_locations)[0]) / "tests"
    if not (tests / "conftest.py").exists():
        pytest.skip("this aiosmtpd installation has no tests")
    if importlib.util.find_spec("pytest_mock") is None:
        pytest.skip("aiosmtpd's suite needs pytest-mock")
    return tests


@pytest.mark.timeout(600)
def test_aiosmtpd_suite_passes(tmp_path: Path) -> None:
    moves = dict(zip(WELL_KNOWN_PORTS, free_ports(len(WELL_KNOWN_PORTS))))
    copy_rewritten(installed_aiosmtpd_tests(), tmp_path / PACKAGE,
                   lambda source: rewrite_ports(rewrite_imports(source), moves))
    (tmp_path / "_peer_resources.py").write_text(RESOURCES_SHIM)
    shutil.copyfile(Path(__file__).resolve().parents[1] / "_port_moves.py", tmp_path / "_port_moves.py")
    (tmp_path / "conftest.py").write_text(MOVE_PORTS_CONFTEST % moves)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\ntimeout = 30\nmarkers =\n    controller_data\n    handler_data\n    client_data\n"
    )
    report = tmp_path / "report.xml"
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "--junitxml", str(report)]
    for node in LEFT_OUT:
        args += ["--deselect", node]
    with holding_well_known_ports():
        result = run_python(args + [PACKAGE], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, tail(result.stdout)
    counts = ET.parse(str(report)).getroot().iter("testsuite")
    suite = next(counts)
    ran = int(suite.get("tests", 0)) - int(suite.get("skipped", 0))
    # 551 pass on Linux; a collapse to a handful would mean the run went wrong.
    assert ran > 500 and suite.get("failures") == "0" and suite.get("errors") == "0", tail(result.stdout)
    deselected = re.search(r"(\d+) deselected", result.stdout)
    assert deselected is not None and int(deselected.group(1)) == len(LEFT_OUT), tail(result.stdout)



def test_testing_helpers_match_aiosmtpd_names_and_replies() -> None:
    their_codes = pytest.importorskip("aiosmtpd.testing.statuscodes")
    their_helpers = pytest.importorskip("aiosmtpd.testing.helpers")
    from smtpd_compat.modern.testing import helpers, statuscodes

    def table(module: object) -> Dict[str, object]:
        codes = vars(getattr(module, "SMTP_STATUS_CODES"))
        return {name: value for name, value in codes.items() if name.startswith("S")}

    assert len(table(statuscodes)) == 79 and table(statuscodes) == table(their_codes)
    for name in ("SUPPORTED_COMMANDS_NOTLS", "SUPPORTED_COMMANDS_TLS", "SUPPORTED_COMMANDS_LMTP"):
        assert getattr(statuscodes, name) == getattr(their_codes, name)
    unrecognised = statuscodes.SMTP_STATUS_CODES.S500_CMD_UNRECOG(b"XYZZY")
    assert unrecognised.to_bytes(crlf=True) == b'500 Error: command "XYZZY" not recognized\r\n'
    assert unrecognised.to_str() == '500 Error: command "XYZZY" not recognized'
    # Every name their helpers module defines (rather than imports) is ours too.
    defined_there = {
        name for name, value in vars(their_helpers).items()
        if not name.startswith("_") and getattr(value, "__module__", their_helpers.__name__) == their_helpers.__name__
        and not isinstance(value, type(their_helpers))
    }
    assert {"ASYNCIO_CATCHUP_DELAY", "ReceivingHandler", "reset_connection", "send_recv"} <= defined_there
    assert all(hasattr(helpers, name) for name in defined_there), defined_there - set(vars(helpers))
