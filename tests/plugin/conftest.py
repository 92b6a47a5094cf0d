"""Run the pytest plugin's fixtures in inner pytest sessions (``pytester``)."""
from __future__ import annotations

from typing import Callable

import pytest

from smtpd_compat.testserver.options import ENV_VARIABLES

RunPlugin = Callable[..., pytest.RunResult]


@pytest.fixture
def run_plugin(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> RunPlugin:
    """``run_plugin(source, *args)``: run ``source`` as a test module with only
    our plugin loaded (the entry point exists only once installed, and other
    installed plugins must not leak in); no ``SMTPD_*`` variable leaks in either."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def run(source: str, *args: str, subprocess: bool = False) -> pytest.RunResult:
        pytester.makepyfile(source)
        options = ("-p", "smtpd_compat.pytest_plugin", "-p", "no:cacheprovider", *args)
        if subprocess:
            return pytester.runpytest_subprocess(*options)
        return pytester.runpytest_inprocess(*options)

    return run
