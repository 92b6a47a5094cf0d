"""What is inside a command line: verbs, paths and ESMTP parameters.

Pure functions shared by both faces, so an address or a ``SIZE=`` parameter
means the same thing whichever face a program imports.  The address parser
is the stdlib's RFC 5322 one, which both stdlib smtpd and aiosmtpd used:
reusing it keeps their accepted inputs, and their results, identical.
"""

from __future__ import annotations

import re
from email._header_value_parser import get_addr_spec, get_angle_addr
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

__all__ = [
    "BadCommand",
    "Command",
    "get_address",
    "parse_params",
    "printable",
    "split_command",
    "strip_keyword",
]

Params = Dict[str, Union[str, bool]]

# Bytes that never belong in a command line: a bare CR or LF would let a
# client smuggle a second line past a front end, NUL confuses C consumers.
_FORBIDDEN_IN_COMMAND = (b"\r", b"\n", b"\x00")
# Control characters a reply must never echo back to the client.
_CONTROL = {c: "?" for c in (*range(0x20), 0x7F)}

# The stdlib parser costs ~50 microseconds a path.  Nearly every real path
# is a plain dot-atom "local@domain", for which this gives the very same
# result; anything else (quotes, comments, literals, routes, UTF-8) takes
# the full parser.  tests/engine/test_framing_grammar.py checks the two agree.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(
    rf"[ \t]*(<)?({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)"
    r"(?(1)>(?![ \t]*\()|(?=[ \t]|\Z)(?![ \t]*[.@(\[\]\"\\:;<>,]))[ \t]*(.*)\Z"
)


class Command(NamedTuple):
    """A command line split into its upper-cased verb and its argument."""

    verb: str
    arg: Optional[str]


class BadCommand(ValueError):
    """A command line that cannot be split; ``str(error)`` is the reply."""


def split_command(line: bytes, utf8: bool) -> Command:
    """Split ``line`` (no CRLF) the way aiosmtpd does.

    The verb must be ASCII; the argument is stripped and decoded as ASCII,
    or as UTF-8 with surrogateescape when ``utf8`` (SMTPUTF8 enabled) so
    the original bytes can be recovered.  ``arg`` is None when nothing but
    spaces follows the verb.
    """
    if not line:
        raise BadCommand("500 Error: bad syntax")
    for forbidden in _FORBIDDEN_IN_COMMAND:
        if forbidden in line:
            raise BadCommand("500 Error: bad syntax")
    verb_bytes, _, arg_bytes = line.partition(b" ")
    try:
        verb = verb_bytes.upper().decode("ascii")
    except UnicodeDecodeError:
        raise BadCommand("500 Error: bad syntax") from None
    arg_bytes = arg_bytes.strip()
    if not arg_bytes:
        return Command(verb, None)
    if utf8:
        return Command(verb, arg_bytes.decode("utf-8", "surrogateescape"))
    try:
        return Command(verb, arg_bytes.decode("ascii"))
    except UnicodeDecodeError:
        raise BadCommand("500 Error: strict ASCII mode") from None


def printable(text: str) -> str:
    """``text`` with control characters replaced, safe to put in a reply.

    Also ASCII only: a client's undecodable bytes (kept as surrogates) or a
    handler's non-ASCII exception text would make encoding the reply fail,
    and then the client got no reply at all.
    """
    return text.translate(_CONTROL).encode("ascii", "replace").decode("ascii")


def strip_keyword(keyword: str, arg: str) -> Optional[str]:
    """``arg`` without its leading ``keyword`` ("FROM:", "TO:"), any case.

    None when ``arg`` does not start with it.
    """
    size = len(keyword)
    if arg[:size].upper() == keyword:
        return arg[size:].strip()
    return None


def get_address(arg: str) -> Tuple[Optional[str], Optional[str]]:
    """Parse the path at the start of ``arg``: ``(address, rest)``.

    ``("", "")`` for an empty ``arg``; ``(None, None)`` when the stdlib
    parser rejects it.  ``MAIL FROM:<>`` gives the address ``"<>"``.
    """
    if not arg:
        return "", ""
    plain = _PLAIN_PATH.match(arg)
    if plain is not None:
        return plain.group(2), plain.group(3)
    return _parse_path(arg)


def _parse_path(arg: str) -> Tuple[Optional[str], Optional[str]]:
    """``get_address`` by the stdlib's full RFC 5322 parser."""
    parse = get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec
    try:
        token, rest = parse(arg)
        return str(token.addr_spec), str(rest)
    except Exception:
        # The stdlib parser raises more than HeaderParseError on hostile
        # input ("<" IndexError, "a@[" AttributeError, "a@[ " even
        # UnboundLocalError); aiosmtpd let those through as "500 Error:
        # (IndexError) ...".  A path it cannot parse is a malformed address.
        return None, None


def parse_params(params: List[str]) -> Optional[Params]:
    """``KEY[=VALUE]`` words as a dict (a bare ``KEY`` maps to True).

    None when any word is not RFC 1869 syntax (non-alphanumeric key, or
    ``KEY=`` with an empty value).
    """
    result: Params = {}
    for param in params:
        key, eq, value = param.partition("=")
        if not key.isalnum() or (eq and not value):
            return None
        result[key] = value if eq else True
    return result
