"""The words of each face: reply texts as tables per dialect.

Most replies are the same on both faces (stdlib smtpd and aiosmtpd share
them) and are plain constants here.  Where the two programs a face imitates
said different things, ``Dialect`` holds both versions: ``STDLIB`` for the
legacy face, ``AIOSMTPD`` for the modern one.  A rule in the engine picks the
text from the dialect it is given; no face spells a shared reply itself.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

__all__ = [
    "AIOSMTPD",
    "BAD_SYNTAX",
    "BODY_INVALID",
    "BYE",
    "CANNOT_VRFY",
    "Dialect",
    "EXPN_NOT_IMPLEMENTED",
    "NEED_MAIL",
    "NEED_RCPT",
    "NESTED_MAIL",
    "OK",
    "PARAMETERS_UNKNOWN",
    "SIZE_EXCEEDED",
    "SMTPUTF8_ARGUMENT",
    "START_DATA",
    "STDLIB",
    "TOO_MANY_RECIPIENTS",
    "TOO_MUCH_DATA",
    "closing_for_shutdown",
    "could_not_vrfy",
    "closes",
    "need_greeting",
    "syntax",
    "unrecognized",
]

OK = "250 OK"
BYE = "221 Bye"
CANNOT_VRFY = "252 Cannot VRFY user, but will accept message and attempt delivery"
EXPN_NOT_IMPLEMENTED = "502 EXPN not implemented"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
BAD_SYNTAX = "500 Error: bad syntax"
NEED_MAIL = "503 Error: need MAIL command"
NEED_RCPT = "503 Error: need RCPT command"
NESTED_MAIL = "503 Error: nested MAIL command"
BODY_INVALID = "501 Error: BODY can only be one of 7BIT, 8BITMIME"
SMTPUTF8_ARGUMENT = "501 Error: SMTPUTF8 takes no arguments"
SIZE_EXCEEDED = "552 Error: message size exceeds fixed maximum message size"
#: "MAIL FROM" or "RCPT TO" goes in.
PARAMETERS_UNKNOWN = "555 %s parameters not recognized or not implemented"
TOO_MANY_RECIPIENTS = "452 4.5.3 Error: too many recipients"
TOO_MUCH_DATA = "552 Error: Too much mail data"
_EXTENDED_USAGE = " [SP <mail-parameters>]"


def closes(reply: Union[str, bytes]) -> bool:
    """A 421 reply announces that the server closes the connection (RFC 5321
    3.8): both faces close after sending one, whoever wrote it (a handler
    too; aiosmtpd and stdlib smtpd kept the session open)."""
    return reply[:3] in ("421", b"421")


def syntax(usage: str, extended: bool = False) -> str:
    """``501 Syntax: <usage>``, naming the parameters under ESMTP."""
    return "501 Syntax: " + usage + (_EXTENDED_USAGE if extended else "")


def need_greeting(greeting: str = "HELO") -> str:
    return f"503 Error: send {greeting} first"


def closing_for_shutdown(hostname: str) -> str:
    """The graceful drain's goodbye to a session (RFC 5321 3.8), both faces."""
    return f"421 {hostname} Service not available, closing transmission channel"


def could_not_vrfy(arg: str) -> str:
    """``arg`` must already be printable (``grammar.printable``)."""
    return "502 Could not VRFY " + arg


def unrecognized(verb: str) -> str:
    """``verb`` must already be printable (``grammar.printable``)."""
    return f'500 Error: command "{verb}" not recognized'


class Dialect(NamedTuple):
    """What differs between stdlib smtpd's words and aiosmtpd's."""

    name: str
    #: A command line over its limit.
    line_too_long: str
    #: A non-ASCII argument without SMTPUTF8.
    not_ascii: str
    #: Unrecognised commands accepted on one connection before it is closed
    #: with ``too_many_unrecognized`` (0: any number).
    junk_limit: int
    too_many_unrecognized: str
    #: The idle deadline passed; ``{host}`` is the server's name.
    timeout: str
    #: Over ``connection_limit_per_client`` (``{host}`` as above).
    too_many_connections: str
    #: ``MAIL ... SMTPUTF8`` while the server does not offer it.  None: the
    #: keyword is then just an unknown parameter (555), as stdlib smtpd had it.
    smtputf8_disabled: Optional[str]


AIOSMTPD = Dialect(
    name="aiosmtpd",
    line_too_long="500 Command line too long",
    not_ascii="500 Error: strict ASCII mode",
    junk_limit=5,  # aiosmtpd's BOGUS_LIMIT
    too_many_unrecognized="502 5.5.1 Too many unrecognized commands, goodbye.",
    timeout="421 4.4.2 {host} Error: timeout exceeded",
    too_many_connections="421 4.7.0 {host} Error: too many connections from your address",
    smtputf8_disabled="501 Error: SMTPUTF8 disabled",
)

STDLIB = Dialect(
    name="stdlib",
    line_too_long="500 Error: line too long",
    not_ascii=BAD_SYNTAX,
    # stdlib smtpd answered any number; Postfix's smtpd_junk_command_limit.
    junk_limit=100,
    too_many_unrecognized="421 Error: too many unrecognized commands",
    timeout="421 Error: timeout exceeded",
    too_many_connections="421 Error: too many connections from your address",
    smtputf8_disabled=None,
)
