"""The ESMTP rules both faces apply, decided once and without I/O.

* ``Offer``: what a server offers one session; from it follow the EHLO
  keywords (``ehlo_keywords``), the longer MAIL line those allow
  (``mail_line_extra``) and which MAIL parameters are valid.
* ``mail_parameters`` / ``rcpt_parameters``: validate the ``KEY[=VALUE]``
  words of MAIL FROM and RCPT TO (RFC 1869, 1870, 6152, 6531); a refusal is
  raised as ``Refused`` carrying the reply.
* ``line_limit``: the longest line a verb may have in this session.
* ``transaction_refusal``: MAIL, RCPT and DATA out of sequence.
* ``JunkBudget``: how many unrecognised commands a connection may send.

Texts come from ``replies``; where the faces' words differ the caller passes
its ``Dialect``.  A new parameter (DSN's RET/ENVID/NOTIFY/ORCPT) is one more
step in ``mail_parameters``/``rcpt_parameters`` plus its ``Offer`` field
and EHLO keyword here; the faces pass the result on unchanged.  DSN's are
in ``dsn``, CHUNKING's BDAT rules in ``chunking``.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, TypeVar, Union

from . import dsn, replies
from .replies import Dialect

__all__ = [
    "Goodbye",
    "JunkBudget",
    "MailParameters",
    "Offer",
    "RcptParameters",
    "Refused",
    "check_offer",
    "ehlo_keywords",
    "line_limit",
    "mail_line_extra",
    "mail_parameters",
    "rcpt_parameters",
    "transaction_refusal",
]

Params = Dict[str, Union[str, bool]]

# RFC 1870 3: SIZE may make a MAIL line 26 bytes longer; RFC 6531 3.4: SMTPUTF8 10.
_SIZE_EXTRA = 26
_SMTPUTF8_EXTRA = 10
_BODY_TYPES = ("7BIT", "8BITMIME")


class Refused(Exception):
    """A command is refused; ``reply`` is what the client gets."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class Goodbye(Refused):
    """A refusal after which the server closes the connection."""


class Offer(NamedTuple):
    """What the server offers in one session."""

    #: SIZE (RFC 1870): the largest message, None or 0 for no limit.
    size_limit: Optional[int]
    #: 8BITMIME (RFC 6152) and its BODY parameter.
    eightbitmime: bool
    #: SMTPUTF8 (RFC 6531).
    smtputf8: bool
    #: STARTTLS (RFC 3207), offered until TLS is up.
    starttls: bool = False
    #: AUTH (RFC 4954) with these mechanisms; None: not offered.
    auth: Optional[Sequence[str]] = None
    # The extensions below are opt-in on both faces, so that by default EHLO
    # stays byte-identical to aiosmtpd's and stdlib smtpd's.
    #: PIPELINING (RFC 2920): both faces always answered pipelined commands
    #: in order; this only says so.
    pipelining: bool = False
    #: ENHANCEDSTATUSCODES (RFC 2034): every reply carries a status code
    #: (``enhanced.with_status_code``).
    enhancedstatuscodes: bool = False
    #: DSN (RFC 3461): RET/ENVID on MAIL, NOTIFY/ORCPT on RCPT.
    dsn: bool = False
    #: CHUNKING (RFC 3030): the BDAT command.
    chunking: bool = False
    #: BINARYMIME (RFC 3030): BODY=BINARYMIME, only with CHUNKING and 8BITMIME.
    binarymime: bool = False


def check_offer(offer: Offer) -> None:
    """Refuse an offer no client could use: ValueError."""
    if offer.binarymime and not (offer.chunking and offer.eightbitmime):
        raise ValueError("BINARYMIME needs CHUNKING and 8BITMIME (no decode_data)")


def ehlo_keywords(offer: Offer) -> List[str]:
    """The EHLO keywords after the greeting line, in aiosmtpd's (and our
    legacy face's) order."""
    keywords = []
    if offer.size_limit:
        keywords.append(f"SIZE {offer.size_limit}")
    if offer.eightbitmime:
        keywords.append("8BITMIME")
    if offer.smtputf8:
        keywords.append("SMTPUTF8")
    if offer.starttls:
        keywords.append("STARTTLS")
    if offer.auth is not None:
        keywords.append("AUTH " + " ".join(offer.auth))
    for offered, keyword in (
        (offer.pipelining, "PIPELINING"),
        (offer.enhancedstatuscodes, "ENHANCEDSTATUSCODES"),
        (offer.dsn, "DSN"),
        (offer.chunking, "CHUNKING"),
        (offer.binarymime, "BINARYMIME"),
    ):
        if offered:
            keywords.append(keyword)
    return keywords


def mail_line_extra(offer: Offer) -> int:
    """How much longer than the base limit a MAIL line may be under ``offer``."""
    return (_SIZE_EXTRA if offer.size_limit else 0) + (_SMTPUTF8_EXTRA if offer.smtputf8 else 0)


def line_limit(verb: str, extended: bool, limits: Mapping[str, int], base: int) -> int:
    """The longest line (bytes, CRLF excluded) ``verb`` may have.

    ``limits`` is a face's per-verb table (a defaultdict, as stdlib smtpd's
    and aiosmtpd's ``command_size_limits``); it applies only under ESMTP.
    A verb it does not know is looked up without being stored, so each verb
    a client invents does not stay in the table for the connection.
    """
    if not extended:
        return base
    if verb in limits:
        return limits[verb]
    factory = getattr(limits, "default_factory", None)
    return factory() if factory is not None else limits[verb]


class MailParameters(NamedTuple):
    """The MAIL FROM parameters a server understood."""

    body: Optional[str]
    smtputf8: bool
    size: Optional[int]
    #: RET and ENVID when DSN is offered, else None.
    dsn: Optional[dsn.MailDsn] = None


class RcptParameters(NamedTuple):
    """The RCPT TO parameters a server understood."""

    #: NOTIFY and ORCPT when DSN is offered, else None.
    dsn: Optional[dsn.RcptDsn] = None


def mail_parameters(
    params: Params, offer: Offer, dialect: Dialect, syntax_error: str, sent: Optional[Params] = None
) -> MailParameters:
    """Validate MAIL FROM's parameters (``grammar.parse_params``'s dict of
    the upper-cased words, left as it is).

    Raises ``Refused``; ``syntax_error`` is the face's "501 Syntax: MAIL ..."
    reply for a malformed SIZE.  ``sent``: the same parameters in the case
    the client sent them, for DSN's ENVID (only read when DSN is offered).
    """
    known = 0
    body = None
    if offer.eightbitmime:
        value = params.get("BODY", "7BIT")
        if value not in _BODY_TYPES and not (offer.binarymime and value == "BINARYMIME"):
            raise Refused(replies.BODY_INVALID)
        body = str(value)
        known += "BODY" in params
    smtputf8 = False
    if offer.smtputf8 or dialect.smtputf8_disabled is not None:
        flag = params.get("SMTPUTF8", False)
        if not isinstance(flag, bool):
            raise Refused(replies.SMTPUTF8_ARGUMENT)
        if flag and not offer.smtputf8:
            raise Refused(dialect.smtputf8_disabled)  # type: ignore[arg-type]  # not None here
        smtputf8 = flag
        known += "SMTPUTF8" in params
    size = None
    if "SIZE" in params:
        size = _size(params["SIZE"], offer.size_limit, syntax_error)
        known += 1
    mail_dsn = None
    if offer.dsn:
        mail_dsn = _dsn(dsn.mail_dsn, params if sent is None else sent)
        known += ("RET" in params) + ("ENVID" in params)
    if len(params) > known:
        raise Refused(replies.PARAMETERS_UNKNOWN % "MAIL FROM")
    return MailParameters(body, smtputf8, size, mail_dsn)


def _size(value: Union[str, bool], limit: Optional[int], syntax_error: str) -> Optional[int]:
    if not value:
        return None
    # ASCII digits only: "²" and "１" pass isdigit(), and int() raises on
    # the first (the legacy channel once closed without a reply on it).
    if isinstance(value, bool) or not (value.isascii() and value.isdigit()):
        raise Refused(syntax_error)
    digits = value.lstrip("0")
    if limit and (len(digits) > len(str(limit)) or int(value) > limit):
        raise Refused(replies.SIZE_EXCEEDED)
    # A size of thousands of digits (a face with a long MAIL line) exceeds
    # int()'s string limit; no limit means no use for it anyway.
    return int(value) if len(digits) <= 20 else None


def rcpt_parameters(params: Params, offer: Optional[Offer] = None, sent: Optional[Params] = None) -> RcptParameters:
    """Validate RCPT TO's parameters (upper-cased, as for ``mail_parameters``;
    ``sent`` keeps ORCPT's case): DSN's, when ``offer`` has it."""
    rcpt_dsn = None
    known = 0
    if offer is not None and offer.dsn:
        rcpt_dsn = _dsn(dsn.rcpt_dsn, params if sent is None else sent)
        known = ("NOTIFY" in params) + ("ORCPT" in params)
    if len(params) > known:
        raise Refused(replies.PARAMETERS_UNKNOWN % "RCPT TO")
    return RcptParameters(rcpt_dsn)


_T = TypeVar("_T")


def _dsn(parse: Callable[[Params], _T], params: Params) -> _T:
    """DSN's values (``dsn.mail_dsn``/``rcpt_dsn``) from ``params``, whose
    keys may be in any case; raises ``Refused``."""
    try:
        return parse({key.upper(): value for key, value in params.items()})
    except dsn.InvalidDsn as error:
        raise Refused(str(error)) from None


def transaction_refusal(verb: str, has_sender: bool, recipients: int) -> Optional[str]:
    """The reply to MAIL, RCPT or DATA out of sequence (RFC 5321 3.3), or None."""
    if verb == "MAIL" and has_sender:
        return replies.NESTED_MAIL
    if verb == "RCPT" and not has_sender:
        return replies.NEED_MAIL
    if verb == "DATA" and not recipients:
        return replies.NEED_RCPT
    return None


class JunkBudget:
    """Unrecognised commands a connection may still send.

    The ``limit``-th one closes the connection (aiosmtpd's BOGUS_LIMIT:
    four get "500 ... not recognized", the fifth the goodbye); 0: no limit.
    """

    __slots__ = ("left",)

    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self) -> bool:
        """Count one unrecognised command; True when it ends the connection."""
        if self.left <= 0:
            return False
        self.left -= 1
        return self.left < 1
