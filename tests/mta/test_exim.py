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
    assert " K " not in log, "no CHUNKING unless offered"
