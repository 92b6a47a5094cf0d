"""The installed distribution declares the plugin and ships its certificates."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import smtpd_compat.pytest_plugin


def _installed() -> metadata.Distribution:
    try:
        return metadata.distribution("smtpd_compat")
    except metadata.PackageNotFoundError:
        pytest.skip("needs smtpd_compat installed (tox installs the wheel); here it is only on PYTHONPATH")


def test_pytest11_entry_point_loads_the_plugin(request: pytest.FixtureRequest) -> None:
    entry_points = [ep for ep in _installed().entry_points if ep.group == "pytest11"]
    assert [(ep.name, ep.value) for ep in entry_points] == [("smtpd_compat", "smtpd_compat.pytest_plugin")]
    assert entry_points[0].load() is smtpd_compat.pytest_plugin
    # This very run loaded it through the entry point.
    assert request.config.pluginmanager.get_plugin("smtpd_compat") is smtpd_compat.pytest_plugin


def test_the_wheel_ships_the_certificates() -> None:
    files = {str(path).replace("\\", "/") for path in _installed().files or ()}
    assert {"smtpd_compat/testserver/certs/" + name for name in ("ca.pem", "cert.pem", "key.pem")} <= files


def test_importing_the_plugin_loads_no_server() -> None:
    # It loads in every pytest run: the servers (asyncio, ssl, the modern
    # face, the store) wait for a fixture; only the package itself comes along.
    heavy = ("asyncio", "ssl", "smtpd_compat.modern", "smtpd_compat.testserver", "smtpd_compat.inbox")
    code = (
        "import sys, pytest; before = set(sys.modules); import smtpd_compat.pytest_plugin; "
        f"print(sorted(m for m in set(sys.modules) - before if m.startswith({heavy!r})))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_an_installed_copy_gives_pytest_nothing_to_warn_about(tmp_path: Path) -> None:
    # The plugin makes pytest look at every module of the distribution, the
    # start-up hook's among them, which site.py imported before pytest ran.
    _installed()
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-W", "error", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr
