"""ENHANCEDSTATUSCODES (RFC 2034, codes from RFC 3463) for both faces.

Once a server offers the extension, every reply line but the greeting and
the answers to HELO/EHLO/LHLO must carry an enhanced status code after the
reply code.  The faces' texts are aiosmtpd's and stdlib smtpd's words,
mostly without one, so ``with_status_code`` adds the code that fits the
reply code (and, for 250 and 550, the command), and leaves a reply that
already has one, or an intermediate 3xx reply (354, AUTH's 334
challenges), as it is.
"""

from __future__ import annotations

import re
from typing import Dict, Optional

__all__ = ["with_status_code"]

_HAS_CODE = re.compile(r"\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?: |\Z)")
_LINE = re.compile(r"(\d{3})([ -]?)(.*)\Z", re.DOTALL)
# Reply code -> RFC 3463 code, as Postfix chooses them.
_BY_REPLY: Dict[str, str] = {
    "421": "4.3.0",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.3.1",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "550": "5.0.0",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.0.0",
    "555": "5.5.4",
}
# (reply code, verb) pairs with a more precise code.
_BY_COMMAND: Dict[str, str] = {
    "250 MAIL": "2.1.0",
    "250 RCPT": "2.1.5",
    "235 AUTH": "2.7.0",
    "550 MAIL": "5.1.0",
    "550 RCPT": "5.1.1",
}


def _code_for(reply_code: str, verb: Optional[str]) -> Optional[str]:
    if verb is not None:
        code = _BY_COMMAND.get(f"{reply_code} {verb}")
        if code is not None:
            return code
    code = _BY_REPLY.get(reply_code)
    if code is not None:
        return code
    first = reply_code[0]
    return f"{first}.0.0" if first in "245" else None


def with_status_code(reply: str, verb: Optional[str] = None) -> str:
    """``reply`` (lines joined by CRLF) with an enhanced status code on each
    line; ``verb``: the command it answers, if any."""
    return "\r\n".join(_line_with_code(line, verb) for line in reply.split("\r\n"))


def _line_with_code(line: str, verb: Optional[str]) -> str:
    if _HAS_CODE.match(line):
        return line
    match = _LINE.match(line)
    if match is None:
        return line  # not a reply line: leave what a handler sent alone
    reply_code, separator, text = match.groups()
    code = _code_for(reply_code, verb)
    if code is None:
        return line
    separator = separator or " "
    return f"{reply_code}{separator}{code} {text}" if text else f"{reply_code}{separator}{code}"
