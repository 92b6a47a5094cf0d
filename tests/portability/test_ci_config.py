"""The Pythons we promise are the ones CI runs: README's test command is .ci/run's, tox
runs 3.14/3.15 where installed and fails on any other missing interpreter."""

from __future__ import annotations

import configparser
import re

from tests.portability._platforms import REPO_ROOT

VERSIONS = ["3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"]
ENVS = ["py" + version.replace(".", "") for version in VERSIONS]


def read(name: str) -> str:
    return (REPO_ROOT / name).read_text(encoding="utf-8")


def test_readme_test_command_is_what_ci_runs() -> None:
    prefix = "bash .ci/install-tools && python3 -m pip install tox && python3 -m tox -e "
    commands = re.findall("^" + re.escape(prefix) + r"(\S+)$", read("README.md"), re.MULTILINE)
    assert commands == [",".join(ENVS + ["mypy"])]
    assert prefix + commands[0] + " " in read(".ci/run")


def test_tox_skips_only_the_newest_two_when_missing() -> None:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read_string(read("tox.ini"))
    assert [env.strip() for env in tox["tox"]["env_list"].split(",")] == ENVS + ["mypy"]
    assert tox["tox"]["skip_missing_interpreters"] == "false"
    assert tuple(map(int, tox["tox"]["min_version"].split("."))) >= (4, 36)  # per-environment setting
    scoped = [section for section in tox.sections() if "skip_missing_interpreters" in tox[section]]
    assert scoped == ["tox", "testenv:py31{4,5}"] and tox["testenv:py31{4,5}"]["skip_missing_interpreters"] == "true"


def test_every_python_is_declared() -> None:
    setup = read("setup.cfg")
    for version in VERSIONS:
        assert "Programming Language :: Python :: %s\n" % version in setup
