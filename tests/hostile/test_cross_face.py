"""The same hostile command lines against both faces, over real sockets.

Each line gets a well-formed reply (checked by ``Wire``) and leaves the
session usable: a ``NOOP`` after it gets ``250 OK``.  The rules behind the
replies live once in the engine, so a drift between the faces (the legacy
channel once crashed on ``SIZE=²``) shows up here.
"""

from __future__ import annotations

from typing import List

from ._faces import Face, Wire

MAIL = b"MAIL FROM:<a@b.c> "

HOSTILE = [
    MAIL + "SIZE=²".encode(),
    MAIL + "SIZE=１".encode(),
    MAIL + "SIZE=١".encode(),
    MAIL + b"SIZE=-1",
    MAIL + b"SIZE=99999999999999999999",
    MAIL + b"SIZE=",
    MAIL + b"SIZE",
    MAIL + b"BODY=",
    MAIL + b"BODY=BINARYMIME",
    MAIL + b"SMTPUTF8=x",
    MAIL + b"SMTPUTF8",
    MAIL + b"=x",
    MAIL + b"X-UNKNOWN=1",
    MAIL + b"RET=HDRS ENVID=QQ314159",
    MAIL + b"SIZE=1 SIZE=2",
    b"RCPT TO:<a@b.c> NOTIFY=NEVER",
    b"MAIL FROM:<a@b.c>\x00 SIZE=1",
    b"MAIL FROM:<a@b.c>\rSIZE=1",
    b"MAIL FROM:<a\xff@b.c>",
    b"MAIL FROM:<a@b.c> BODY=\xc3\xa9",
    b"\xff\xfe",
    b"NOOP \x1b[31m",
    b"VRFY \x1b[31m\x7f",
    b"HELP \xc3\xa9",
    MAIL + b"X" * 2000,
    b"X" * 2000,
    b"XYZZY",
    b"BDAT 10 LAST",
    b"MAIL",
    b"MAIL FROM:",
    b"MAIL FROM:<",
    b"MAIL FROM:<a@[",
    b"RCPT TO:<>",
    b"AUTH PLAIN",
    b"STARTTLS now",
    b"DATA",
    b"EHLO",
    b" ",
]


def test_every_hostile_line_gets_a_reply_and_the_session_goes_on(face: Face) -> None:
    failures: List[str] = []
    for line in HOSTILE:
        try:
            with Wire(face.port, timeout=5) as wire:
                assert wire.cmd(b"EHLO c").startswith(b"250")
                wire.cmd(line)  # any reply code, well formed
                assert wire.cmd(b"NOOP") == b"250 OK\r\n"
        except (AssertionError, OSError) as error:
            failures.append("%r: %r" % (line[:60], error))
    assert not failures, "\n".join(failures)
