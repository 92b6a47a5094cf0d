"""A pytest plugin for peer-suite runs: ``import aiosmtpd`` gives smtpd_compat.modern.

Loaded with ``-p aiosmtpd_alias`` (before any other plugin imports aiosmtpd),
it maps aiosmtpd's public modules to ours in ``sys.modules``, in that child
process only: nothing is installed and a real aiosmtpd beside it is never
imported.  At the end it writes ``aiosmtpd-alias.json`` in the rootdir: who
served each aiosmtpd name, and every loaded module file, so the caller can
check that the alias and not aiosmtpd served.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

# aiosmtpd 1.4.6's modules, by their names there.
MODULES = (
    "", ".smtp", ".controller", ".handlers", ".lmtp", ".proxy_protocol", ".main",
    ".testing", ".testing.helpers", ".testing.statuscodes",
)

if [name for name in sys.modules if name.split(".")[0] == "aiosmtpd"]:
    raise RuntimeError("aiosmtpd was imported before the alias plugin")
for suffix in MODULES:
    sys.modules["aiosmtpd" + suffix] = importlib.import_module("smtpd_compat.modern" + suffix)


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    report = {
        "served": {
            name: module.__name__
            for name, module in sorted(sys.modules.items())
            if name.split(".")[0] == "aiosmtpd"
        },
        "files": sorted(
            path for path in (getattr(module, "__file__", None) for module in list(sys.modules.values())) if path
        ),
    }
    (session.config.rootpath / "aiosmtpd-alias.json").write_text(json.dumps(report))
