"""The opt-in extensions in the engine: EHLO keywords, DSN, BINARYMIME,
enhanced status codes."""

from __future__ import annotations

from typing import Dict, Union

import pytest

from smtpd_compat.engine import dsn, enhanced, esmtp, replies
from smtpd_compat.engine.dsn import MailDsn, RcptDsn
from smtpd_compat.engine.esmtp import MailParameters, Offer, RcptParameters, Refused
from smtpd_compat.engine.replies import AIOSMTPD, STDLIB

SYNTAX = replies.syntax("MAIL FROM: <address>", extended=True)
BASE = Offer(size_limit=1000, eightbitmime=True, smtputf8=False)
ALL = BASE._replace(pipelining=True, enhancedstatuscodes=True, dsn=True, chunking=True, binarymime=True)
Params = Dict[str, Union[str, bool]]


def mail(params: Params, offer: Offer = ALL) -> MailParameters:
    """As a face calls it: upper-cased words, and the words as sent."""
    upper = {key.upper(): value.upper() if isinstance(value, str) else value for key, value in params.items()}
    return esmtp.mail_parameters(upper, offer, AIOSMTPD, SYNTAX, params)


def refused_mail(params: Params, offer: Offer = ALL) -> str:
    with pytest.raises(Refused) as caught:
        mail(params, offer)
    return caught.value.reply


def refused_rcpt(params: Params, offer: Offer = ALL) -> str:
    with pytest.raises(Refused) as caught:
        esmtp.rcpt_parameters(rcpt_upper(params), offer, params)
    return caught.value.reply


def rcpt_upper(params: Params) -> Params:
    return {key.upper(): value.upper() if isinstance(value, str) else value for key, value in params.items()}


def test_keywords_only_when_offered() -> None:
    assert esmtp.ehlo_keywords(BASE) == ["SIZE 1000", "8BITMIME"]
    assert esmtp.ehlo_keywords(ALL._replace(auth=("PLAIN",))) == [
        "SIZE 1000", "8BITMIME", "AUTH PLAIN", "PIPELINING", "ENHANCEDSTATUSCODES", "DSN", "CHUNKING", "BINARYMIME"]
    esmtp.check_offer(ALL)
    for bad in (ALL._replace(chunking=False), ALL._replace(eightbitmime=False)):
        with pytest.raises(ValueError, match="BINARYMIME"):
            esmtp.check_offer(bad)


def test_binarymime_body() -> None:
    assert mail({"BODY": "binarymime"}).body == "BINARYMIME"
    assert refused_mail({"BODY": "BINARYMIME"}, ALL._replace(binarymime=False)) == replies.BODY_INVALID
    assert mail({"body": "8bitmime"}, BASE) == MailParameters("8BITMIME", False, None)


def test_dsn_mail_parameters() -> None:
    assert mail({"RET": "hdrs", "ENVID": "QQ314159+2BA+3DB"}).dsn == MailDsn("HDRS", "QQ314159+A=B")
    assert mail({}).dsn == MailDsn(None, None)
    assert mail({}, BASE).dsn is None
    assert refused_mail({"RET": "FULL"}, BASE) == replies.PARAMETERS_UNKNOWN % "MAIL FROM"
    for params in ({"RET": "ALL"}, {"RET": True}, {"ENVID": "a+2b"}, {"ENVID": "a+0A"}, {"ENVID": "é"},
                   {"ENVID": "x" * 101}, {"ENVID": True}, {"ENVID": "a=b"}, {"ENVID": "a+"}):
        assert refused_mail(params).startswith("501 5.5.4 Error: bad "), params
    assert mail({"ENVID": "x" * 100}).dsn == MailDsn(None, "x" * 100)


def test_dsn_rcpt_parameters() -> None:
    sent: Params = {"notify": "failure,Delay", "ORCPT": "RFC822;Bob+40Example.COM"}
    result = esmtp.rcpt_parameters(rcpt_upper(sent), ALL, sent)
    assert result == RcptParameters(RcptDsn(("FAILURE", "DELAY"), ("rfc822", "Bob@Example.COM")))
    assert esmtp.rcpt_parameters({"NOTIFY": "NEVER"}, ALL).dsn == RcptDsn(("NEVER",), None), "sent: by default params"
    assert esmtp.rcpt_parameters({}, BASE) == RcptParameters(None)
    assert refused_rcpt({"NOTIFY": "NEVER"}, BASE) == replies.PARAMETERS_UNKNOWN % "RCPT TO"
    for params in ({"NOTIFY": "NEVER,SUCCESS"}, {"NOTIFY": "SUCCESS,SUCCESS"}, {"NOTIFY": "ALWAYS"},
                   {"NOTIFY": ""}, {"NOTIFY": True}, {"ORCPT": "rfc822"}, {"ORCPT": "rfc822;"},
                   {"ORCPT": "rfc 822;a"}, {"ORCPT": ";a@b"}, {"ORCPT": "rfc822;a=b"},
                   {"ORCPT": "rfc822;" + "a" * 500}, {"ORCPT": True}):
        assert refused_rcpt(params).startswith("501 5.5.4 Error: bad "), params


def test_xtext() -> None:
    assert dsn.xtext_decode("") == ""
    assert dsn.xtext_decode("+2B+3D+20~!") == "+= ~!"
    for bad in ("+2b", "+G0", "a b", "+7F", "+FF", "\x7f", "é"):
        with pytest.raises(ValueError):
            dsn.xtext_decode(bad)


@pytest.mark.parametrize(
    "reply, verb, expected",
    [
        ("250 OK", "MAIL", "250 2.1.0 OK"),
        ("250 OK", "RCPT", "250 2.1.5 OK"),
        ("250 OK", "DATA", "250 2.0.0 OK"),
        ("250 OK", None, "250 2.0.0 OK"),
        ("221 Bye", "QUIT", "221 2.0.0 Bye"),
        ("503 Error: need MAIL command", "RCPT", "503 5.5.1 Error: need MAIL command"),
        ("501 Syntax: HELO hostname", "HELO", "501 5.5.4 Syntax: HELO hostname"),
        ("552 Error: Too much mail data", "BDAT", "552 5.3.4 Error: Too much mail data"),
        ("550 no such user", "RCPT", "550 5.1.1 no such user"),
        ("421 4.7.0 MAIL sent too many times", "MAIL", "421 4.7.0 MAIL sent too many times"),
        ("250 2.0.0 5 octets received", "BDAT", "250 2.0.0 5 octets received"),
        ("354 End data with <CR><LF>.<CR><LF>", "DATA", "354 End data with <CR><LF>.<CR><LF>"),
        ("334 VXNlcm5hbWU6", "AUTH", "334 VXNlcm5hbWU6"),
        ("235 Authentication successful", "AUTH", "235 2.7.0 Authentication successful"),
        ("599 odd", None, "599 5.0.0 odd"),
        ("250", None, "250 2.0.0"),
        ("250-a\r\n250 b", None, "250-2.0.0 a\r\n250 2.0.0 b"),
        ("not a reply", None, "not a reply"),
        ("250 2.0 not quite", None, "250 2.0.0 2.0 not quite"),
    ],
)
def test_enhanced_status_codes(reply: str, verb: str, expected: str) -> None:
    assert enhanced.with_status_code(reply, verb) == expected


def test_stdlib_dialect_keeps_its_parameters() -> None:
    offer = ALL._replace(smtputf8=False)
    assert esmtp.mail_parameters({"RET": "FULL"}, offer, STDLIB, SYNTAX).dsn == MailDsn("FULL", None)
    assert esmtp.mail_parameters({"SIZE": "5"}, offer, STDLIB, SYNTAX) == MailParameters("7BIT", False, 5, MailDsn())
