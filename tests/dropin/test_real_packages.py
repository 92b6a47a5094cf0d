"""Published packages nobody here wrote, unchanged, on this project's top-level modules.

A fresh venv gets this project's wheel and pinned releases from PyPI that do
``import smtpd``/``asyncore``/``asynchat`` at module level; nothing else in it
provides those names.  Their own test suites run where they ship one (lmtpd,
pyftpdlib), their documented usage otherwise (pyinotify's ``AsyncNotifier``,
secure-smtpd's ``SMTPServer``), with real sockets and inotify descriptors.

(lazr.smtptest 2.0.4 was a candidate: it tests ``sys.version >= '3.5'`` as
strings, so from Python 3.10 on it parses message bytes as ``str`` and fails
with the stdlib's own smtpd too.)
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
from base64 import b64encode
from pathlib import Path

import pytest

from tests.dropin._installs import TOPLEVEL_NAMES, Installer, Venv, clean_env
from tests.stdlib._legacy_support import ServerProcess
from tests.stdlib.test_legacy_cli import _wait_listening

pytestmark = pytest.mark.skipif(
    sys.version_info[:2] not in ((3, 12), (3, 13)),
    reason="the pinned releases are checked on 3.12 and 3.13, where only this project provides smtpd/asyncore",
)

REAL_PACKAGES = ("lmtpd==6.2.0", "pyftpdlib==1.5.7", "psutil==7.2.2", "pyinotify==0.9.6", "secure-smtpd==3.0.0")

# Who imports what, at module level (checked below, so a new release cannot make this list lie).
IMPORTS = {
    "lmtpd": ("smtpd", "asyncore", "asynchat"),
    "pyftpdlib.ioloop": ("asyncore", "asynchat"),
    "pyinotify": ("asyncore",),
    "secure_smtpd.smtp_channel": ("smtpd", "asynchat", "asyncore"),
}


@pytest.fixture(scope="module")
def real_venv(installer: Installer, project_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    # Four of them are sdists: one setuptools in the venv builds them all (an isolated
    # build environment each would double the cost of this fixture).
    venv = installer.venv(tmp_path_factory.mktemp("real") / "venv", str(project_wheel), "setuptools==80.9.0")
    installer.install(venv, "--no-build-isolation", *REAL_PACKAGES)
    return venv


# Imports each module; checks that the names it imports came from this project, and that
# its source imports them at module level.
WHO_IMPORTS_WHAT = r"""
import importlib, json, re, sys, warnings
warnings.simplefilter("ignore")  # the packages' own warnings are not ours to judge
for module, names in json.loads(sys.argv[1]).items():
    importlib.import_module(module)
    assert all(sys.modules[name].__name__.startswith("smtpd_compat") for name in names), module
    source = open(sys.modules[module].__file__, encoding="utf-8").read()
    assert all(re.search(r"^(import|from) (\w+, )*%s\b" % name, source, re.M) for name in names), module
print(sorted(set(sys.modules) & set(sys.argv[2:])))
"""


def test_only_this_project_provides_the_names(real_venv: Venv) -> None:
    result = real_venv.run("-c", WHO_IMPORTS_WHAT, json.dumps(IMPORTS), *TOPLEVEL_NAMES)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "['asynchat', 'asyncore', 'smtpd']\n"


def test_lmtpd_own_suite(real_venv: Venv, free_port: int) -> None:
    # lmtpd.tests listens on $LMTPD_TEST_POST (sic), 8899 by default.
    result = real_venv.run("-m", "unittest", "-v", "lmtpd.tests", env=clean_env(LMTPD_TEST_POST=str(free_port)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Ran 11 tests" in result.stderr and result.stderr.rstrip().endswith("OK")


def test_pyftpdlib_own_suite(real_venv: Venv) -> None:
    # The IOLoop tests and every server class (an asyncore loop, asynchat FTP handlers,
    # ftplib clients on port 0); test_servers runs the functional tests per server class.
    result = real_venv.run("-m", "unittest", "pyftpdlib.test.test_ioloop", "pyftpdlib.test.test_servers",
                           timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    ran = int(result.stderr.split("\nRan ")[1].split()[0])
    assert ran >= 300 and "\nOK" in result.stderr


PYINOTIFY_TUTORIAL = """\
import asyncore, os, sys
import pyinotify

wm = pyinotify.WatchManager()  # Watch Manager
mask = pyinotify.IN_DELETE | pyinotify.IN_CREATE  # watched events

class EventHandler(pyinotify.ProcessEvent):
    def process_IN_CREATE(self, event):
        print("Creating:", event.name)

    def process_IN_DELETE(self, event):
        print("Removing:", event.name)
        asyncore.close_all()  # (not in the tutorial: end asyncore.loop() once seen)

notifier = pyinotify.AsyncNotifier(wm, EventHandler())
wdd = wm.add_watch(sys.argv[1], mask, rec=True)
path = os.path.join(sys.argv[1], "hello.txt")
open(path, "w").close()
os.remove(path)
asyncore.loop(timeout=5, count=10)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")
def test_pyinotify_asyncnotifier_tutorial(real_venv: Venv, tmp_path: Path) -> None:
    result = real_venv.run("-c", PYINOTIFY_TUTORIAL, str(tmp_path))
    assert (result.stdout, result.returncode) == ("Creating: hello.txt\nRemoving: hello.txt\n", 0), result.stderr


SECURE_SMTPD_SERVER = """\
import logging, sys
from secure_smtpd import SMTPServer, FakeCredentialValidator

class PrintingServer(SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, message_data):
        print(mailfrom, rcpttos, repr(message_data), flush=True)

logging.basicConfig()
server = PrintingServer(("127.0.0.1", int(sys.argv[1])), None, require_authentication=True,
                        credential_validator=FakeCredentialValidator(), maximum_execution_time=10.0,
                        process_count=2)
server.run()
"""


def test_secure_smtpd_documented_server(real_venv: Venv, free_port: int) -> None:
    if sys.platform == "win32":
        pytest.skip("secure-smtpd forks its worker processes")
    # run() never returns and its workers are forked: the server gets its own
    # process group, which is stopped as a whole.
    server = ServerProcess([str(real_venv.python), "-c", SECURE_SMTPD_SERVER, str(free_port)], env=clean_env(),
                           start_new_session=True)
    try:
        _wait_listening(server, free_port)
        # secure-smtpd's EHLO override never records the greeting (stdlib 3.11's smtpd
        # then refuses MAIL too), so the client greets with HELO and speaks AUTH itself.
        with smtplib.SMTP("127.0.0.1", free_port, timeout=10) as client:
            assert client.helo("client")[0] == 250
            assert client.mail("a@example.com") == (530, b"Authentication required")
            credentials = b64encode(b"\0bcoe\0foobar").decode()
            assert client.docmd("AUTH", "PLAIN " + credentials) == (235, b"Authentication successful.")
            assert client.sendmail("a@example.com", ["b@example.com"], "Subject: hi\r\n\r\nsecure\r\n") == {}
    finally:
        os.killpg(server.proc.pid, signal.SIGTERM)
        output = server.stdout()
        server.close()
    assert output == b"a@example.com ['b@example.com'] 'Subject: hi\\n\\nsecure'\n"
