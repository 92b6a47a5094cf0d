"""smtpdfix's own test suite, run against smtpd_compat.modern as its aiosmtpd.

smtpdfix, the most used pytest fixture built on aiosmtpd, subclasses
aiosmtpd's ``Controller`` (its own ``_run(ready_event)`` and
``_trigger_server()``) and ``SMTP`` (STARTTLS through ``loop.start_tls()``,
``_reader``/``_writer``/``_tls_protocol``).  Its sdist is fetched from PyPI at
test time with its dependencies (never aiosmtpd) into a temporary directory;
its 88 tests run unchanged in a child pytest, where the
``tests/peer_plugins/aiosmtpd_alias.py`` plugin makes ``aiosmtpd`` our
modern face.  All 88 must pass; they all pass on aiosmtpd 1.4.6 itself.

Python >= 3.11 only: the pinned wheels (pycparser 3.12, cffi 2.1.1,
pytest-asyncio 1.5.0) need it, and three interpreters cover what issue 8
asks (3.12 and 3.13) at about 10 s each.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests._peer_suites import junit_totals, pip, run_python, tail, unpack_sdist

SMTPDFIX = "smtpdfix==0.5.3"
# smtpdfix's dependencies and test extras, less aiosmtpd (ours stands in)
# and what the test environment already has (pytest, pytest-timeout).
DEPENDENCIES = (
    "cryptography==50.0.2",
    "cffi==2.1.1",
    "pycparser==3.12",
    "portpicker==1.6.0",
    "psutil==7.2.2",
    "pytest-asyncio==1.5.0",
    "typing-extensions==4.16.0",
)
TESTS = 88
ALIAS_PLUGIN = Path(__file__).resolve().parent.parent / "peer_plugins" / "aiosmtpd_alias.py"

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="the pinned wheels need Python >= 3.11 (module docstring)"
)


@pytest.mark.timeout(600)
def test_smtpdfix_suite_passes_on_the_modern_face(tmp_path: Path) -> None:
    site = tmp_path / "site"
    pip(["download", "--no-deps", "--no-binary", ":all:", "--dest", str(tmp_path), SMTPDFIX], tmp_path)
    pip(["install", "--no-deps", "--only-binary", ":all:", "--target", str(site), *DEPENDENCIES], tmp_path)
    shutil.copy(str(ALIAS_PLUGIN), str(site))
    (archive,) = tmp_path.glob("smtpdfix-*.tar.gz")
    source = unpack_sdist(archive, tmp_path)
    report = tmp_path / "report.xml"
    # smtpdfix's package and tests/ sit side by side in its sdist: run there.
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "aiosmtpd_alias", "--junitxml", str(report)]
    result = run_python(args + ["tests"], cwd=source, timeout=300, path=[site])
    assert result.returncode == 0, tail(result.stdout)
    assert junit_totals(report) == {"tests": TESTS, "failures": 0, "errors": 0, "skipped": 0}, tail(result.stdout)

    alias = json.loads((source / "aiosmtpd-alias.json").read_text())
    assert alias["served"]["aiosmtpd"] == "smtpd_compat.modern"
    assert alias["served"]["aiosmtpd.controller"] == "smtpd_compat.modern.controller"
    assert alias["served"]["aiosmtpd.smtp"] == "smtpd_compat.modern.smtp"
    real = [path for path in alias["files"] if Path(path).parent.name == "aiosmtpd"]
    assert real == [], "the real aiosmtpd was loaded"
    assert any(path.startswith(str(source / "smtpdfix")) for path in alias["files"])  # from the sdist
