"""A throwaway Exim instance as a real MTA delivering to our servers.

Debian's ``exim4-daemon-light`` conflicts with postfix (which brings the
``smtp-source`` the other tests drive), so it is not installed:
``.ci/run`` unpacks it with ``dpkg -x`` into ``EXIM_ROOT``.  Each ``Exim``
runs under a temp directory with its own ``-C`` configuration: spool and
logs there, no daemon (``-odi`` delivers before ``exim`` exits), one
router sending every address to our server on 127.0.0.1 with Exim's
defaults for PIPELINING and CHUNKING (it uses them when offered).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional

EXIM_ROOT = Path(os.environ.get("SMTPD_COMPAT_EXIM", "/opt/smtpd-compat-exim/root"))
EXIM = EXIM_ROOT / "usr" / "sbin" / "exim4"
#: The user Debian's build runs deliveries as (compiled in).
EXIM_USER = "Debian-exim"

CONFIG = """\
exim_path = {exim}
primary_hostname = exim.test
qualify_domain = exim.test
spool_directory = {home}/spool
log_file_path = {home}/%slog
log_selector = +all
daemon_smtp_ports =
keep_environment =
never_users =
trusted_users = root

begin routers
to_test_server:
  driver = manualroute
  route_list = * 127.0.0.1 byname
  self = send
  transport = test_server

begin transports
test_server:
  driver = smtp
  port = {port}
  allow_localhost = true
  hosts_avoid_tls = *
{transport_options}
begin retry
* * F,1m,1m
"""


def unavailable() -> Optional[str]:
    """Why Exim cannot run here, or None."""
    if not EXIM.exists():
        return f"Exim is not unpacked at {EXIM_ROOT} (.ci/run does: apt-get download exim4-daemon-light exim4-base; dpkg -x)"
    if os.geteuid() != 0:
        return "Exim's -C configuration of a test needs root (Debian's build is setuid-root only when installed)"
    try:
        pwd.getpwnam(EXIM_USER)
    except KeyError:
        return f"the user {EXIM_USER} Debian's Exim runs as does not exist (.ci/run creates it)"
    probe = subprocess.run([str(EXIM), "-bV", "-C", "/dev/null"], capture_output=True, timeout=30)
    if b"Exim version" not in probe.stdout:
        return "Exim does not start: " + (probe.stderr or probe.stdout).decode(errors="replace")[:200]
    return None


class Exim:
    """One Exim instance delivering to ``127.0.0.1:port``; ``close()`` it."""

    def __init__(self, port: int, transport_options: str = "") -> None:
        self.home = Path(tempfile.mkdtemp(prefix="smtpd-compat-exim-"))
        (self.home / "spool").mkdir()
        user = pwd.getpwnam(EXIM_USER)
        for path in (self.home, self.home / "spool"):
            os.chown(path, user.pw_uid, user.pw_gid)
        # Exim insists on a configuration owned by root and not writable by others.
        self.config = self.home / "exim.conf"
        self.config.write_text(
            CONFIG.format(exim=EXIM, home=self.home, port=port, transport_options=transport_options)
        )
        os.chmod(self.config, 0o644)

    def send(self, message: bytes, sender: str, recipients: List[str]) -> str:
        """Submit ``message`` and deliver it now; returns Exim's main log."""
        command = [str(EXIM), "-C", str(self.config), "-odi", "-oi", "-f", sender, "--", *recipients]
        done = subprocess.run(command, input=message, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return self.log()

    def log(self) -> str:
        path = self.home / "mainlog"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
