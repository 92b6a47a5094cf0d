"""CPython 3.11's Lib/test/test_smtpd.py, exactly as shipped, against the top-level ``smtpd`` of a fresh venv.

The file comes from a Python 3.11 installation at test time and runs,
unmodified, under the venv's own ``test.support``: it does
``warnings_helper.import_deprecated('smtpd')``, which the installed hook answers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.dropin._installs import ALIASES_ACTIVE, Venv
from tests.stdlib._legacy_support import python311_test_dir

pytestmark = pytest.mark.skipif(
    not ALIASES_ACTIVE, reason="on Python <= 3.11 `import smtpd` is the stdlib's (3.11 runs the suite in tests/stdlib)"
)


def stdlib_311_test_file(name: str) -> Path:
    """``Lib/test/<name>`` of a Python 3.11 installation, or skip."""
    test_dir = python311_test_dir()
    if test_dir is None or not (test_dir / name).exists():
        pytest.skip("no Python 3.11 with its test package (test/%s) to take the suite from" % name)
    return test_dir / name


def test_cpython_311_test_smtpd_passes_against_toplevel_smtpd(dropin_venv: Venv, tmp_path: Path) -> None:
    if dropin_venv.run("-c", "import test.support.warnings_helper, test.mock_socket").returncode != 0:
        pytest.skip("this Python was installed without its test package (test.support, test.mock_socket)")
    source = stdlib_311_test_file("test_smtpd.py")
    shutil.copyfile(source, tmp_path / "test_smtpd.py")
    assert (tmp_path / "test_smtpd.py").read_bytes() == source.read_bytes()
    result = dropin_venv.run("-W", "error", "-m", "unittest", "-v", "test_smtpd", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "test__all__ (test_smtpd.MiscTestCase" in result.stderr  # the one the in-process run once left out
    ran = int(result.stderr.split("\nRan ")[1].split()[0])
    assert ran >= 150 and result.stderr.rstrip().endswith("OK"), result.stderr[-2000:]
