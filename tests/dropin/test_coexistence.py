"""Installed beside the other distributions that bring the three modules back, in either order.

standard-smtpd / standard-asyncore / standard-asynchat and pyasyncore /
pyasynchat ship ``smtpd/``, ``asyncore/`` and ``asynchat/`` packages; this
project ships none of those files, so pip never has two owners for one file and
uninstalling either side leaves the other intact.  Which one answers:

- Python >= 3.12: this project's modules (one implementation for all three
  names, so ``asyncore.loop()`` serves the ``smtpd`` servers), unless
  ``SMTPD_COMPAT_TOPLEVEL=0``, which leaves the names to the others;
- Python <= 3.11: the stdlib's, whatever is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import pytest

from tests.dropin._installs import ALIASES_ACTIVE, Installer, Venv, clean_env

STANDARD = ("standard-smtpd==3.13.0", "standard-asyncore==3.13.0", "standard-asynchat==3.13.0")
PY_PACKAGES = ("pyasyncore==1.0.5", "pyasynchat==1.0.5")
OTHERS = {"standard": STANDARD, "py": PY_PACKAGES}

# Prints who answers `import smtpd`, `import asyncore`, `import asynchat`.
WHO_ANSWERS = r"""
import importlib, os, sysconfig, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # the other distributions warn on import
stdlib = sysconfig.get_paths()["stdlib"] + os.sep
answers = []
for name in ("smtpd", "asyncore", "asynchat"):
    try:
        module = importlib.import_module(name)
    except ImportError:
        answers.append("missing")
    else:
        if module.__name__.startswith("smtpd_compat"):
            answers.append("ours")
        elif module.__file__.startswith(stdlib) and "site-packages" not in module.__file__:
            answers.append("stdlib")
        else:
            answers.append("theirs")
print(" ".join(answers))
"""


@pytest.fixture(scope="module")
def wheelhouse(installer: Installer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return installer.download(tmp_path_factory.mktemp("coexistence"), *STANDARD, *PY_PACKAGES)


def answers(venv: Venv, env: Dict[str, str]) -> str:
    result = venv.run("-c", WHO_ANSWERS, env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout.strip()


def expected(others: str, ours_installed: bool, switched_off: bool) -> str:
    if not ALIASES_ACTIVE:
        return "stdlib stdlib stdlib"
    if ours_installed and not switched_off:
        return "ours ours ours"
    return "theirs theirs theirs" if others == "standard" else "missing theirs theirs"


@pytest.mark.parametrize("others", sorted(OTHERS))
@pytest.mark.parametrize("ours_first", [False, True], ids=["theirs-then-ours", "ours-then-theirs"])
def test_installed_beside_the_others(installer: Installer, project_wheel: Path, wheelhouse: Path,
                                     tmp_path: Path, others: str, ours_first: bool) -> None:
    packages: Sequence[str] = OTHERS[others]
    steps = [[str(project_wheel)], list(packages)]
    venv = installer.venv(tmp_path / "venv")
    for step in steps if ours_first else steps[::-1]:
        installer.install(venv, *step, wheelhouse=wheelhouse)
    default, off = clean_env(), clean_env(SMTPD_COMPAT_TOPLEVEL="0")
    assert answers(venv, default) == expected(others, True, False)
    assert answers(venv, off) == expected(others, True, True)
    if ALIASES_ACTIVE:
        # Ours wins with no warning at all: the others' modules are not even imported.
        assert venv.check("import smtpd, asyncore, asynchat, sys; print(sorted(m.__name__ for m in"
                          " (smtpd, asyncore, asynchat)))") == \
            "['smtpd_compat', 'smtpd_compat.asynchat', 'smtpd_compat.asyncore']\n"

    # Uninstall whichever came first: what is left still imports.
    if ours_first:
        installer.uninstall(venv, "smtpd_compat")
        assert answers(venv, default) == expected(others, False, False)
        assert venv.run("-c", "import smtpd_compat").returncode == 1
    else:
        installer.uninstall(venv, *(package.split("==")[0] for package in packages))
        assert answers(venv, default) == ("ours ours ours" if ALIASES_ACTIVE else "stdlib stdlib stdlib")
