"""After ``pip install`` of the project's wheel: ``import smtpd``/``asyncore``/``asynchat`` and ``python -m smtpd``.

Each run checks the interpreter running the tests: on Python >= 3.12 the three
names are this project's modules; on 3.9-3.11 they stay the stdlib's.
"""

from __future__ import annotations

import pkgutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import _smtpd_compat_dropin
from tests.dropin._installs import (
    ALIASES_ACTIVE,
    REPO_ROOT,
    Installer,
    STARTUP_FILES,
    TOPLEVEL_NAMES,
    Venv,
    clean_env,
    copy_sources,
    wheel_root_files,
    wheel_text,
)
from tests.stdlib.test_legacy_cli import MESSAGES, _cli, _mask_debug, _send_all, start_cli

needs_aliases = pytest.mark.skipif(not ALIASES_ACTIVE, reason="Python <= 3.11 has its own smtpd, left alone")

# Run in the fresh venv with -W error: everything a legacy program or test suite does with the names.
SAME_MODULES = r"""
import importlib, importlib.util, io, sys
import smtpd, asyncore, asynchat
import smtpd as renamed
from smtpd import SMTPServer, DebuggingServer, EMPTYSTRING, NEWLINE, DEBUGSTREAM
import smtpd_compat
from smtpd_compat import asyncore as our_asyncore, asynchat as our_asynchat

assert smtpd is renamed is smtpd_compat is sys.modules["smtpd"]
assert asyncore is our_asyncore and asynchat is our_asynchat
assert importlib.import_module("asyncore") is asyncore and importlib.import_module("asynchat") is asynchat
assert SMTPServer is smtpd_compat.SMTPServer and (EMPTYSTRING, NEWLINE) == ("", "\n")
assert issubclass(smtpd.SMTPChannel, asynchat.async_chat) and smtpd.asyncore is asyncore
# Once imported, the module keeps its own name and spec.
assert smtpd.__name__ == smtpd.__spec__.name == "smtpd_compat"
assert importlib.util.find_spec("smtpd") is smtpd_compat.__spec__

# What programs assign on the top-level modules reaches this project's code.
smtpd.DEBUGSTREAM = stream = io.StringIO()
asyncore.socket_map = socket_map = {}
server = DebuggingServer(("127.0.0.1", 0), ("remote", 25))
assert stream.getvalue().startswith("DebuggingServer started at "), stream.getvalue()
assert socket_map[server.socket.fileno()] is server
server.close()
assert socket_map == {}

# reload re-runs smtpd_compat in place: still one module under both names.
assert importlib.reload(smtpd) is smtpd_compat is sys.modules["smtpd"] is sys.modules["smtpd_compat"]
assert importlib.reload(asyncore) is our_asyncore is sys.modules["asyncore"]
print("ok")
"""

# Before anything is imported: what importlib reports, and that asking imports nothing.
FIND_SPEC = r"""
import importlib.util, sys
spec = importlib.util.find_spec("smtpd")
assert spec.name == "smtpd" and spec.origin.endswith("__init__.py") and spec.submodule_search_locations
assert "smtpd_compat" not in sys.modules and "smtpd" not in sys.modules
assert importlib.util.find_spec("smtpd.no_such_module") is None
print(spec.origin)
"""

STARTUP_MODULES = "import sys; print(*sys.modules)"


def test_wheel_root_has_the_startup_hook(project_wheel: Path) -> None:
    assert set(STARTUP_FILES) <= set(wheel_root_files(project_wheel))
    # No top-level smtpd.py/asyncore.py/asynchat.py to collide with other distributions' files.
    assert not {name + ".py" for name in TOPLEVEL_NAMES} & set(wheel_root_files(project_wheel))
    for name in ("smtpd_compat.pth", "smtpd_compat.start"):
        assert wheel_text(project_wheel, name) == (REPO_ROOT / "startup" / name).read_text(encoding="utf-8")
    # The .pth import line (Python <= 3.14) and the PEP 829 entry point (>= 3.15) call the same function.
    (entry_point,) = wheel_text(project_wheel, "smtpd_compat.start").split()
    assert pkgutil.resolve_name(entry_point) is _smtpd_compat_dropin.install
    (import_line,) = [line for line in wheel_text(project_wheel, "smtpd_compat.pth").splitlines()
                      if line.startswith("import ")]
    assert import_line == "import _smtpd_compat_dropin; _smtpd_compat_dropin.install()"


def test_startup_imports_nothing_of_the_package(dropin_venv: Venv, installer: Installer, tmp_path: Path) -> None:
    # Against a venv without the project: start-up loads the hook module and nothing else
    # (no typing, no importlib.util, nothing of smtpd_compat).
    bare = installer.venv(tmp_path / "bare")
    startup = set(dropin_venv.check(STARTUP_MODULES).split()) - set(bare.check(STARTUP_MODULES).split())
    # site.py decodes any .pth file it finds with these:
    reading_a_pth_file = {name for name in startup if name.startswith("encodings.") or name.endswith("locale")}
    assert startup - reading_a_pth_file == {"_smtpd_compat_dropin", "__future__"}


@needs_aliases
def test_toplevel_names_are_this_projects_modules(dropin_venv: Venv) -> None:
    assert dropin_venv.check(SAME_MODULES) == "ok\n"


@needs_aliases
def test_find_spec_answers_without_importing(dropin_venv: Venv) -> None:
    origin = dropin_venv.check(FIND_SPEC).strip()
    assert Path(origin).parent.name == "smtpd_compat" and "site-packages" in origin


@needs_aliases
def test_switched_off_by_the_environment(dropin_venv: Venv) -> None:
    env = clean_env(SMTPD_COMPAT_TOPLEVEL="0")
    for name in TOPLEVEL_NAMES:
        result = dropin_venv.run("-c", "import " + name, env=env)
        assert "ModuleNotFoundError: No module named '%s'" % name in result.stderr
    assert dropin_venv.check("import smtpd_compat, sys; print(sys.modules.get('smtpd'))", env=env) == "None\n"


@pytest.mark.skipif(ALIASES_ACTIVE, reason="Python >= 3.12 has no stdlib smtpd")
def test_older_pythons_keep_the_stdlib_modules(dropin_venv: Venv) -> None:
    code = ("import sys, sysconfig, smtpd, asyncore, asynchat; stdlib = sysconfig.get_paths()['stdlib'];"
            "print(all(m.__file__.startswith(stdlib) for m in (smtpd, asyncore, asynchat)),"
            " 'smtpd_compat' in sys.modules)")
    result = dropin_venv.run("-W", "ignore::DeprecationWarning", "-c", code)
    assert result.stdout == "True False\n", result.stderr


@needs_aliases
def test_python_m_smtpd_is_python_m_smtpd_compat(dropin_venv: Venv) -> None:
    for args in (["-h"], ["--version"], ["-n", "nocolon"]):
        ours = dropin_venv.run("-m", "smtpd", *args)
        compat = dropin_venv.run("-m", "smtpd_compat", *args)
        assert (ours.returncode, ours.stdout, ours.stderr) == (compat.returncode, compat.stdout, compat.stderr)


@needs_aliases
def test_python_m_smtpd_debugging_server_prints_what_311_printed(dropin_venv: Venv) -> None:
    outputs = []
    for command, env in (
        (_cli(reference=True), None),
        ([str(dropin_venv.python), "-W", "error", "-m", "smtpd"], clean_env()),
    ):
        server, port = start_cli(command, "-n", "-c", "DebuggingServer", "-d", env=env)
        try:
            _send_all(port)
            assert server.stop(signal.SIGINT) == 0, server.stderr()
            outputs.append((server.stdout(), _mask_debug(server.stderr())))
        finally:
            server.close()
    (ref_out, ref_err), (our_out, our_err) = outputs
    assert our_out == ref_out and len(our_out.splitlines()) > 3 * len(MESSAGES)
    assert our_err == ref_err


@needs_aliases
def test_editable_install_gets_the_hook_too(installer: Installer, tmp_path: Path) -> None:
    venv = installer.venv(tmp_path / "venv")
    installer.install(venv, "--no-deps", "-e", str(copy_sources(tmp_path / "source")))
    code = "import smtpd, smtpd_compat; print(smtpd is smtpd_compat, smtpd.__file__)"
    assert venv.check(code) == "True %s\n" % (tmp_path / "source" / "smtpd_compat" / "__init__.py")
    result = venv.run("-m", "smtpd", "--version")
    assert (result.returncode, result.stdout) == (0, "Python SMTP proxy version 0.3\n"), result.stderr


def test_install_outside_312_and_twice_is_harmless() -> None:
    # In-process: the hook never inserts a second finder, and adds none below 3.12.
    code = ("import sys, _smtpd_compat_dropin as d; before = len(sys.meta_path); d.install(); d.install();"
            "print(len(sys.meta_path) - before)")
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                            env=clean_env(PYTHONPATH=str(REPO_ROOT)), timeout=60)
    assert result.stdout == ("1\n" if ALIASES_ACTIVE else "0\n"), result.stderr
