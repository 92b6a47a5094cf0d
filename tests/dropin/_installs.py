"""The project's wheel and fresh virtual environments, for tests of what installing it does.

Each venv is made from the interpreter running the tests, without pip (fast);
packages go in with this interpreter's pip (``pip --python``).  Nothing here
touches the environment running the tests, and the children never see this
checkout on ``PYTHONPATH``: they import only what was installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# What building the wheel needs from the checkout (a copy: no stale build/ directory).
WHEEL_SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md",
                 "_smtpd_compat_dropin.py", "startup", "smtpd_compat")
STARTUP_FILES = ("_smtpd_compat_dropin.py", "smtpd_compat.pth", "smtpd_compat.start")
TOPLEVEL_NAMES = ("smtpd", "asyncore", "asynchat")
ALIASES_ACTIVE = sys.version_info >= (3, 12)


class Installer:
    """pip commands with a download cache private to one test session."""

    def __init__(self, cache: Path) -> None:
        try:
            import pip  # noqa: F401
        except ImportError:
            pytest.skip("needs pip in %s to install into fresh venvs" % sys.executable)
        self.cache = cache
        # Building the wheel fetches setuptools; the real packages come from PyPI too.
        # Asked once: a later pip failure is a failure, not a network hiccup.
        probe = self.run_pip("index", "versions", "setuptools")
        if probe.returncode != 0:
            said = (probe.stdout + probe.stderr).strip().splitlines() or ["no output"]
            pytest.skip("the package index (PyPI) cannot be reached: pip index versions setuptools: " + said[-1])

    def run_pip(self, *args: str, timeout: float = 240) -> "subprocess.CompletedProcess[str]":
        env = clean_env(PIP_CACHE_DIR=str(self.cache), PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                              env=env, timeout=timeout)

    def pip(self, *args: str) -> "subprocess.CompletedProcess[str]":
        result = self.run_pip(*args)
        assert result.returncode == 0, "pip %s failed:\n%s" % (" ".join(args), (result.stdout + result.stderr)[-4000:])
        return result

    def build_wheel(self, workdir: Path) -> Path:
        """Build the project's wheel from a copy of the checkout; return its path."""
        out = workdir / "wheel"
        self.pip("wheel", "--no-deps", "-q", "-w", str(out), str(copy_sources(workdir / "source")))
        (wheel,) = out.glob("smtpd_compat-*.whl")
        return wheel

    def venv(self, path: Path, *requirements: str) -> "Venv":
        """A fresh venv of this interpreter with ``requirements`` installed in that order, one pip run each."""
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
        venv = Venv(path)
        for requirement in requirements:
            self.install(venv, requirement)
        return venv

    def install(self, venv: "Venv", *requirements: str, wheelhouse: Optional[Path] = None) -> None:
        """pip install into ``venv``; from ``wheelhouse`` alone if given (see :meth:`download`)."""
        local = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
        self.pip("--python", str(venv.python), "install", "-q", "--no-compile", *local, *requirements)

    def download(self, directory: Path, *requirements: str) -> Path:
        """Fetch ``requirements`` (and their dependencies) once, as wheels, for several installs."""
        self.pip("wheel", "-q", "-w", str(directory), *requirements)
        return directory

    def uninstall(self, venv: "Venv", *names: str) -> None:
        self.pip("--python", str(venv.python), "uninstall", "-y", "-q", *names)


def copy_sources(target: Path) -> Path:
    """What building the project needs, copied from the checkout to ``target``."""
    target.mkdir()
    for name in WHEEL_SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(path, target / name)
    return target


class Venv:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    def run(self, *args: str, env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None,
            timeout: float = 60) -> "subprocess.CompletedProcess[str]":
        return subprocess.run([str(self.python), *args], capture_output=True, text=True,
                              env=env or clean_env(), cwd=str(cwd or self.root), timeout=timeout)

    def check(self, code: str, *args: str, env: Optional[Dict[str, str]] = None) -> str:
        """Run ``code`` with warnings as errors; its stdout (it must succeed and print nothing to stderr)."""
        result = self.run("-W", "error", "-c", code, *args, env=env)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        return result.stdout


def clean_env(**extra: str) -> Dict[str, str]:
    """The environment without anything that would put this checkout (or a switch) in a child's way."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONSTARTUP", "PYTEST_ADDOPTS", "SMTPD_COMPAT_TOPLEVEL")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def wheel_root_files(wheel: Path) -> List[str]:
    with zipfile.ZipFile(wheel) as archive:
        return sorted(name for name in archive.namelist() if "/" not in name)


def wheel_text(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode("utf-8")

