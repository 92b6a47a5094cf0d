"""The ESMTP rules on their own: parameters, EHLO keywords, limits, budgets."""

from __future__ import annotations

import collections
from typing import Dict, Union

import pytest

from smtpd_compat.engine import esmtp, replies, starttls
from smtpd_compat.engine.esmtp import JunkBudget, MailParameters, Offer, Refused
from smtpd_compat.engine.replies import AIOSMTPD, STDLIB

SYNTAX = replies.syntax("MAIL FROM: <address>", extended=True)
FULL = Offer(size_limit=1000, eightbitmime=True, smtputf8=True)
PLAIN = Offer(size_limit=None, eightbitmime=False, smtputf8=False)


def refusal(params: Dict[str, Union[str, bool]], offer: Offer = FULL, dialect: replies.Dialect = AIOSMTPD) -> str:
    with pytest.raises(Refused) as caught:
        esmtp.mail_parameters(params, offer, dialect, SYNTAX)
    return caught.value.reply


def test_valid_mail_parameters() -> None:
    params = {"BODY": "8BITMIME", "SMTPUTF8": True, "SIZE": "999"}
    assert esmtp.mail_parameters(params, FULL, AIOSMTPD, SYNTAX) == MailParameters("8BITMIME", True, 999)
    assert params == {"BODY": "8BITMIME", "SMTPUTF8": True, "SIZE": "999"}, "the caller's dict is kept"
    assert esmtp.mail_parameters({}, FULL, STDLIB, SYNTAX) == MailParameters("7BIT", False, None)


@pytest.mark.parametrize("size", ["²", "１", "١", "-1", "1.5", "0x10", True])
def test_size_must_be_ascii_digits(size: Union[str, bool]) -> None:
    assert refusal({"SIZE": size}) == SYNTAX
    assert refusal({"SIZE": size}, dialect=STDLIB) == SYNTAX


def test_size_over_the_limit() -> None:
    assert refusal({"SIZE": "1001"}) == replies.SIZE_EXCEEDED
    assert refusal({"SIZE": "9" * 5000}) == replies.SIZE_EXCEEDED  # no int() of 5000 digits
    unlimited = FULL._replace(size_limit=None)
    assert esmtp.mail_parameters({"SIZE": "0001"}, unlimited, AIOSMTPD, SYNTAX).size == 1


def test_body_only_with_8bitmime() -> None:
    assert refusal({"BODY": "BINARYMIME"}) == replies.BODY_INVALID
    assert refusal({"BODY": True}) == replies.BODY_INVALID
    assert refusal({"BODY": "7BIT"}, PLAIN) == replies.PARAMETERS_UNKNOWN % "MAIL FROM"


def test_smtputf8_by_dialect() -> None:
    assert refusal({"SMTPUTF8": "x"}) == replies.SMTPUTF8_ARGUMENT
    assert refusal({"SMTPUTF8": True}, PLAIN) == "501 Error: SMTPUTF8 disabled"
    # stdlib smtpd did not know the keyword unless it offered it.
    assert refusal({"SMTPUTF8": True}, PLAIN, STDLIB) == "555 MAIL FROM parameters not recognized or not implemented"
    assert refusal({"SMTPUTF8": "x"}, PLAIN, STDLIB).startswith("555 ")


def test_unknown_parameters() -> None:
    assert refusal({"RET": "HDRS"}) == "555 MAIL FROM parameters not recognized or not implemented"
    esmtp.rcpt_parameters({})
    with pytest.raises(Refused, match="555 RCPT TO parameters"):
        esmtp.rcpt_parameters({"NOTIFY": "NEVER"})


def test_ehlo_keywords_and_mail_line() -> None:
    assert esmtp.ehlo_keywords(FULL) == ["SIZE 1000", "8BITMIME", "SMTPUTF8"]
    assert esmtp.ehlo_keywords(PLAIN._replace(starttls=True, auth=())) == ["STARTTLS", "AUTH "]
    assert esmtp.ehlo_keywords(PLAIN._replace(auth=("LOGIN", "PLAIN"))) == ["AUTH LOGIN PLAIN"]
    assert (esmtp.mail_line_extra(FULL), esmtp.mail_line_extra(PLAIN)) == (36, 0)


def test_line_limit_stores_no_invented_verb() -> None:
    limits: Dict[str, int] = collections.defaultdict(lambda: 512, {"MAIL": 548})
    assert esmtp.line_limit("MAIL", True, limits, 512) == 548
    assert esmtp.line_limit("MAIL", False, limits, 512) == 512
    assert esmtp.line_limit("XYZZY", True, limits, 512) == 512
    assert "XYZZY" not in limits
    with pytest.raises(KeyError):
        esmtp.line_limit("XYZZY", True, {}, 512)


def test_transaction_sequence() -> None:
    assert esmtp.transaction_refusal("MAIL", True, 0) == replies.NESTED_MAIL
    assert esmtp.transaction_refusal("MAIL", False, 0) is None
    assert esmtp.transaction_refusal("RCPT", False, 0) == replies.NEED_MAIL
    assert esmtp.transaction_refusal("DATA", True, 0) == replies.NEED_RCPT
    assert esmtp.transaction_refusal("DATA", True, 1) is None


@pytest.mark.parametrize("dialect", [AIOSMTPD, STDLIB])
def test_junk_budget(dialect: replies.Dialect) -> None:
    budget = JunkBudget(dialect.junk_limit)
    spent = [budget.spend() for _ in range(dialect.junk_limit)]
    assert spent == [False] * (dialect.junk_limit - 1) + [True]
    unlimited = JunkBudget(0)
    assert not any(unlimited.spend() for _ in range(1000))


def test_starttls_decisions() -> None:
    assert starttls.refusal("MAIL", refused_by_hook=True, required=False, active=True) == starttls.INSECURE
    assert starttls.refusal("QUIT", refused_by_hook=True, required=False, active=True) is None
    assert starttls.refusal("MAIL", refused_by_hook=False, required=True, active=False) == starttls.MUST_STARTTLS
    assert starttls.refusal("EHLO", refused_by_hook=False, required=True, active=False) is None
    assert starttls.refusal("LHLO", refused_by_hook=False, required=True, active=False,
                            allowed=starttls.ALLOWED_BEFORE_STARTTLS | {"LHLO"}) is None
    assert starttls.refusal("MAIL", refused_by_hook=False, required=True, active=True) is None
    assert starttls.starttls_refusal("now", True, False) == starttls.SYNTAX
    assert starttls.starttls_refusal(None, False, False) == starttls.NO_TLS
    assert starttls.starttls_refusal(None, True, True) == starttls.TLS_ACTIVE
    assert starttls.starttls_refusal(None, True, False) is None


def test_dialect_texts() -> None:
    assert replies.unrecognized("XYZZY") == '500 Error: command "XYZZY" not recognized'
    assert replies.need_greeting() == "503 Error: send HELO first"
    assert replies.syntax("RCPT TO: <address>") == "501 Syntax: RCPT TO: <address>"
    assert AIOSMTPD.timeout.format(host="mx") == "421 4.4.2 mx Error: timeout exceeded"
    assert STDLIB.too_many_unrecognized.startswith("421 ")
