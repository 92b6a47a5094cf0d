"""CPython 3.11's own Lib/test/test_asyncore.py and test_asynchat.py, run
against smtpd_compat.asyncore and smtpd_compat.asynchat, as they are and
once more without ``select.poll`` (Windows, simulated).

The two files are read from a Python 3.11 installation (this interpreter's,
or a ``python3.11`` on PATH), copied with their module imports pointed at this
package, and run with unittest in a child process.  They need the
``test.support`` of Python 3.11 or later, so 3.9 and 3.10 skip; 3.12 and 3.13,
whose stdlib no longer has asyncore, run them too.  Nothing is left out.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests._peer_suites import copy_rewritten, run_python, tail
from tests.portability._platforms import NO_POLL, run_module
from tests.stdlib._legacy_support import python311_test_dir

SUITES = ("test_asyncore", "test_asynchat")


def suites_dir() -> Path:
    test_dir = python311_test_dir()
    if test_dir is None or not all((test_dir / (name + ".py")).exists() for name in SUITES):
        pytest.skip("no Python 3.11 with its test package to take test_asyncore.py and test_asynchat.py from")
    return test_dir


def rewrite_imports(source: str) -> str:
    # The 3.11 files import the modules through test.support, by name.
    return re.sub(r"import_deprecated\((['\"])(asyncore|asynchat)\1\)", r"import_deprecated('smtpd_compat.\2')", source)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the 3.11 test files need test.support from 3.11 or later")
@pytest.mark.parametrize(("prelude", "at_least"), [("", 120), (NO_POLL, 80)], ids=["poll", "no-poll"])
def test_cpython_asyncore_and_asynchat_suites_pass(tmp_path: Path, prelude: str, at_least: int) -> None:
    pytest.importorskip("test.support")
    test_dir = suites_dir()
    for name in SUITES:
        target = tmp_path / (name + ".py")
        copy_rewritten(test_dir / (name + ".py"), target, rewrite_imports)
        assert "smtpd_compat." in target.read_text(), "the import to rewrite was not found in %s" % name
    result = run_python(["-c", prelude + run_module("unittest"), *SUITES], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, tail(result.stdout)
    ran = re.search(r"^Ran (\d+) tests", result.stdout, re.MULTILINE)
    # 126 with 8 skipped (AF_UNIX cases that do not apply) on Linux; without poll()
    # 83 with 47 skipped: the TestAPI_UsePoll classes skip as they do on Windows.
    assert ran is not None and int(ran.group(1)) >= at_least, tail(result.stdout)
    assert re.search(r"^OK\b", result.stdout, re.MULTILINE), tail(result.stdout)
