"""Every public module imports with warnings as errors and no third-party code."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "smtpd_compat",
    "smtpd_compat.asyncore",
    "smtpd_compat.asynchat",
    "smtpd_compat.modern.smtp",
    "smtpd_compat.modern.controller",
    "smtpd_compat.modern.handlers",
    "smtpd_compat.modern.lmtp",
    "smtpd_compat.modern.proxy_protocol",
    "smtpd_compat.modern.main",
    "smtpd_compat.modern.testing.helpers",
    "smtpd_compat.modern.testing.statuscodes",
]

# Import everything, then list modules that came from outside the stdlib
# and the project (zero runtime dependencies).
SCRIPT = """
import sys, sysconfig
before = set(sys.modules)  # what the interpreter and site (.pth hooks) loaded
for name in sys.argv[1:]:
    __import__(name)
stdlib = sysconfig.get_paths()["stdlib"]
foreign = sorted(
    name for name, module in sys.modules.items()
    if name not in before
    and getattr(module, "__file__", None)
    and not module.__file__.startswith(stdlib)
    and not name.startswith("smtpd_compat")
)
print(",".join(foreign))
"""

def test_imports_are_silent_and_stdlib_only() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT, *MODULES],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.strip() == ""
