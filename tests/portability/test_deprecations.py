"""No API that Python 3.14 or 3.15 deprecates or removes, in the package or its tests.

A static scan, so it holds on every interpreter the suite runs on, including the
ones (3.9-3.13) that would not warn yet.  Sources: the 3.14 and 3.15 "What's New"
deprecation and removal lists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

from tests.portability._platforms import REPO_ROOT

# The one place that asks for the current loop the way each version allows: the
# policy only before 3.14, get_event_loop() only from 3.14 on (see its comments).
CURRENT_LOOP = Path("smtpd_compat/modern/__init__.py")
GET_EVENT_LOOP = re.compile(r"\basyncio\.get_event_loop\(")
POLICY = r"\b(get|set)_event_loop_policy\b|\b\w*EventLoopPolicy\b"

FORBIDDEN: Dict[str, str] = {
    POLICY: "the asyncio policy system (deprecated 3.14)",
    r"\basyncio\.iscoroutinefunction\b": "deprecated 3.14: use inspect.iscoroutinefunction",
    r"\b\w*[Cc]hild_?[Ww]atcher\b": "asyncio child watchers (removed 3.14)",
    r"\bcodecs\.open\(": "deprecated 3.14: use open()",
    r"\bpty\.(master|slave)_open\b": "removed 3.14: use pty.openpty",
    r"\bpkgutil\.(find|get)_loader\b": "removed 3.14: use importlib.util.find_spec",
    r"\bast\.(Num|Str|Bytes|NameConstant|Ellipsis)\b": "removed 3.14: use ast.Constant",
    r"\butcnow\(|\butcfromtimestamp\(": "deprecated 3.12: use timezone-aware datetimes",
    r"\bgetdefaultlocale\(": "removed 3.15",
    r"\bCGIHTTPRequestHandler\b": "removed 3.15",
    r"\bByteString\b|\bno_type_check_decorator\b": "typing names deprecated for removal",
    r"\brmtree\(.*\bonerror=": "shutil.rmtree(onerror=) is deprecated since 3.12: use onexc=",
    r"\b(isSet|notifyAll|currentThread|activeCount)\(": "threading's camelCase aliases (deprecated 3.10)",
    r"\bmakeSuite\(|\bfindTestCases\(": "removed from unittest in 3.13",
}

SCANNED = ("smtpd_compat", "tests", "bench", "soak", "fuzz")


def sources() -> List[Path]:
    found = [path for top in SCANNED for path in sorted((REPO_ROOT / top).rglob("*.py"))]
    return [path for path in found if path.resolve() != Path(__file__).resolve()]


def test_the_scan_sees_the_tree() -> None:
    names = {path.relative_to(REPO_ROOT).as_posix() for path in sources()}
    assert {"smtpd_compat/modern/main.py", "tests/modern/test_main.py", "smtpd_compat/asyncore.py"} <= names


def test_no_api_deprecated_or_removed_by_python_3_14_or_3_15() -> None:
    hits = []
    for path in sources():
        relative = path.relative_to(REPO_ROOT)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for pattern, why in FORBIDDEN.items():
                if re.search(pattern, line) and not (pattern == POLICY and relative == CURRENT_LOOP):
                    hits.append("%s:%d: %s (%s)" % (relative, number, line.strip(), why))
            if GET_EVENT_LOOP.search(line) and relative != CURRENT_LOOP:
                hits.append("%s:%d: %s (asyncio.get_event_loop outside a loop)" % (relative, number, line.strip()))
    assert hits == []
