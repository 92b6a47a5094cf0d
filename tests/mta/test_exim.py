"""Exim, a real MTA, delivering to both faces (see ``_exim``)."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from ..hostile._faces import FACES, Face
from ._exim import Exim, unavailable

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))

MESSAGE = (
    b"From: a@exim.test\nTo: b@x.test\nSubject: from Exim\n\n"
    b"line one\n.a line starting with a dot\n.\nbinary \xc3\xa9\nlast\n"
)


@pytest.fixture(params=["modern", "legacy"])
def face(request: pytest.FixtureRequest) -> Iterator[Face]:
    made = FACES[request.param]()
    yield made
    made.close()


def deliver(face: Face, **options: Any) -> str:
    exim = Exim(face.port, **options)
    try:
        log = exim.send(MESSAGE, "a@exim.test", ["b@x.test", "c@y.test"])
    finally:
        exim.close()
    assert " => b@x.test " in log and "Completed" in log, log
    return log


def test_exim_delivers_plain_smtp(face: Face) -> None:
    log = deliver(face)
    (delivery,) = face.wait_for(1)
    assert delivery.mail_from == "a@exim.test"
    assert delivery.rcpt_tos == ("b@x.test", "c@y.test")
    # (The legacy face hands over lines joined by LF, as stdlib smtpd did.)
    body = delivery.content.replace(b"\r\n", b"\n").rstrip(b"\n")
    assert body.endswith(b"\n\nline one\n.a line starting with a dot\n.\nbinary \xc3\xa9\nlast")
    assert b"Subject: from Exim" in body and b"Received: from root by exim.test" in body
    # Exim logs " L" for a delivery that used PIPELINING, " K" for CHUNKING.
    assert " L " not in log and " K " not in log, "neither unless offered"


def test_exim_delivers_with_chunking_and_pipelining() -> None:
    for name in ("modern", "legacy"):
        face = FACES[name](enable_CHUNKING=True, enable_PIPELINING=True, enable_ENHANCEDSTATUSCODES=True,
                           enable_DSN=True)
        try:
            log = deliver(face)
            (delivery,) = face.wait_for(1)
        finally:
            face.close()
        assert " L K C=" in log, "Exim used PIPELINING and CHUNKING: " + log
        assert delivery.rcpt_tos == ("b@x.test", "c@y.test")
        body = delivery.content.replace(b"\r\n", b"\n").rstrip(b"\n")
        assert body.endswith(b"\n\nline one\n.a line starting with a dot\n.\nbinary \xc3\xa9\nlast"), name
