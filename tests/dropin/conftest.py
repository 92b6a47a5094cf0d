"""Session fixtures: the project's wheel is built once, each fresh venv made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dropin._installs import Installer, Venv


@pytest.fixture(scope="session")
def installer(tmp_path_factory: pytest.TempPathFactory) -> Installer:
    return Installer(tmp_path_factory.mktemp("pip-cache"))


@pytest.fixture(scope="session")
def project_wheel(installer: Installer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return installer.build_wheel(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="session")
def dropin_venv(installer: Installer, project_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv of the interpreter running the tests, with only this project installed."""
    return installer.venv(tmp_path_factory.mktemp("venv") / "only-smtpd-compat", str(project_wheel))
