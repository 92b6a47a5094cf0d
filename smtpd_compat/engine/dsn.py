"""DSN (RFC 3461): the MAIL and RCPT parameters, parsed and validated.

``RET=FULL|HDRS`` and ``ENVID=<xtext>`` on MAIL FROM, ``NOTIFY=NEVER`` or
``NOTIFY=SUCCESS,FAILURE,DELAY`` (any of them) and ``ORCPT=<addr-type>;<xtext>``
on RCPT TO.  Each becomes a typed, xtext-decoded value (``MailDsn``,
``RcptDsn``) that the faces put into the envelope; a server that sends
delivery notifications reads them from there.  Keywords are
case-insensitive; the xtext values keep their case.
"""

from __future__ import annotations

import re
from typing import Dict, NamedTuple, Optional, Tuple, Union

__all__ = [
    "InvalidDsn",
    "MailDsn",
    "RcptDsn",
    "mail_dsn",
    "rcpt_dsn",
    "xtext_decode",
]

Params = Dict[str, Union[str, bool]]

RET_VALUES = ("FULL", "HDRS")
NOTIFY_EVENTS = ("SUCCESS", "FAILURE", "DELAY")
# RFC 3461 4.4 and 4.2: the longest ENVID and ORCPT values, as sent.
ENVID_LIMIT = 100
ORCPT_LIMIT = 500
# RFC 3461 4: xtext is "!".."~" except "+" and "=", or "+" and two upper-case hex digits.
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*\Z")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")
# RFC 3461 4.2: addr-type is an atom (rfc822, utf-8, x400, ...).
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+\Z")


class InvalidDsn(ValueError):
    """A DSN parameter with a bad value; ``str(error)`` is the reply."""


class MailDsn(NamedTuple):
    """DSN's MAIL FROM parameters: None where the client gave none."""

    #: "FULL" (return the whole message in a failure DSN) or "HDRS".
    ret: Optional[str] = None
    #: The envelope identifier, decoded.
    envid: Optional[str] = None


class RcptDsn(NamedTuple):
    """DSN's RCPT TO parameters: None where the client gave none."""

    #: ("NEVER",) or some of "SUCCESS", "FAILURE", "DELAY", in the client's order.
    notify: Optional[Tuple[str, ...]] = None
    #: The original recipient as (address type, decoded address).
    orcpt: Optional[Tuple[str, str]] = None


def _syntax(name: str) -> InvalidDsn:
    return InvalidDsn(f"501 5.5.4 Error: bad {name} parameter syntax")


def xtext_decode(value: str) -> str:
    """The text an xtext stands for; raises ValueError if it is not xtext
    or stands for a control character or a non-ASCII octet."""
    if not value.isascii() or not _XTEXT.match(value):
        raise ValueError(f"not xtext: {value!r}")
    decoded = _HEXCHAR.sub(lambda hexchar: chr(int(hexchar.group(1), 16)), value)
    if not decoded.isprintable() or not decoded.isascii():
        raise ValueError(f"xtext for unprintable text: {value!r}")
    return decoded


def _xtext(value: str, name: str) -> str:
    try:
        return xtext_decode(value)
    except ValueError:
        raise _syntax(name) from None


def mail_dsn(params: Params) -> MailDsn:
    """RET and ENVID from MAIL FROM's parameters (upper-case keys);
    raises ``InvalidDsn``."""
    ret = params.get("RET")
    if ret is not None:
        if isinstance(ret, bool) or ret.upper() not in RET_VALUES:
            raise _syntax("RET")
        ret = ret.upper()
    envid = params.get("ENVID")
    if envid is None:
        return MailDsn(ret)
    if isinstance(envid, bool) or len(envid) > ENVID_LIMIT:
        raise _syntax("ENVID")
    return MailDsn(ret, _xtext(envid, "ENVID"))


def rcpt_dsn(params: Params) -> RcptDsn:
    """NOTIFY and ORCPT from RCPT TO's parameters (upper-case keys);
    raises ``InvalidDsn``."""
    notify = params.get("NOTIFY")
    events: Optional[Tuple[str, ...]] = None
    if notify is not None:
        if isinstance(notify, bool):
            raise _syntax("NOTIFY")
        events = tuple(notify.upper().split(","))
        valid = events == ("NEVER",) or all(event in NOTIFY_EVENTS for event in events)
        if not valid or len(set(events)) != len(events):
            raise _syntax("NOTIFY")
    orcpt = params.get("ORCPT")
    original: Optional[Tuple[str, str]] = None
    if orcpt is not None:
        if isinstance(orcpt, bool) or len(orcpt) > ORCPT_LIMIT:
            raise _syntax("ORCPT")
        addr_type, semicolon, address = orcpt.partition(";")
        if not semicolon or not address or not _ADDR_TYPE.match(addr_type):
            raise _syntax("ORCPT")
        original = (addr_type.lower(), _xtext(address, "ORCPT"))
    return RcptDsn(events, original)
