"""Replies where smtpd_compat.modern deliberately differs from aiosmtpd 1.4.6
(each test says how), next to the replies it keeps identical.  STARTTLS
differences (a second STARTTLS refused, plaintext behind STARTTLS dropped)
are in test_tls.py."""

from __future__ import annotations

from typing import List

import pytest

from ._servers import Step
from ._smtp_support import HOST, Client, Recorder, dialog, serve, side_by_side

BAD_SYNTAX = b"500 Error: bad syntax\r\n"


def line(text: bytes, replies: int = 1) -> Step:
    return (text + b"\r\n", replies)


def test_bare_lf_never_ends_a_command() -> None:
    """aiosmtpd splits commands on LF alone, so ``NOOP<LF>NOOP<CR><LF>`` is
    two commands there; only CRLF ends a line here (as in DATA), and a line
    with a bare LF inside is refused."""
    run = side_by_side(Recorder, [line(b"NOOP\nNOOP"), line(b"RSET")])
    assert run.theirs[1:] == [b"250 OK\r\n", b"250 OK\r\n"]
    assert run.mine[1:] == [BAD_SYNTAX, b"250 OK\r\n"]


@pytest.mark.parametrize("command", [b"NOOP a\x00b", b"NOOP a\rb", b"MAIL FROM:<a\x00@x.test>", b"RCPT TO:<b@x\rtest>"])
def test_nul_and_bare_cr_in_a_command_are_bad_syntax(command: bytes) -> None:
    """aiosmtpd passes NUL and CR inside a command through to its handlers."""
    replies = dialog(Recorder(), [line(b"EHLO c"), line(b"MAIL FROM:<a@x.test>"), line(command), line(b"NOOP")])
    assert replies[3:] == [BAD_SYNTAX, b"250 OK\r\n"]


def test_non_ascii_commands_same_as_aiosmtpd() -> None:
    steps = [line(b"NO\xffOP"), line(b"NOOP \xff"), line("MAIL FROM:<\u00e9@x.test>".encode()), line(b"")]
    run = side_by_side(Recorder, steps)
    assert run.mine == run.theirs
    assert run.mine[1:] == [BAD_SYNTAX, b"500 Error: strict ASCII mode\r\n", b"500 Error: strict ASCII mode\r\n",
                            BAD_SYNTAX]


def test_replies_never_echo_control_characters() -> None:
    """aiosmtpd echoes what the client sent inside some replies; a client
    could put terminal escapes (or anything but CR/LF) in our logs and
    replies.  We print "?" instead."""
    steps = [line(b"FO\x1bO"), line(b"FOO\tBAR x"), line(b"VRFY <@\x1b>")]
    run = side_by_side(Recorder, steps)
    assert run.theirs[1:] == [b'500 Error: command "FO\x1bO" not recognized\r\n',
                              b'500 Error: command "FOO\tBAR" not recognized\r\n', b"502 Could not VRFY <@\x1b>\r\n"]
    assert run.mine[1:] == [
        b'500 Error: command "FO?O" not recognized\r\n', b'500 Error: command "FOO?BAR" not recognized\r\n',
        b"502 Could not VRFY <@?>\r\n",
    ]
    with serve(Recorder(), command_call_limit=1) as server, Client(server.port) as client:
        client.cmd(b"X\x7fY")
        assert client.cmd(b"X\x7fY") == b"421 4.7.0 X?Y sent too many times\r\n"


@pytest.mark.parametrize("command", [b"MAIL FROM:<", b"MAIL FROM:<a@[>", b"MAIL FROM: <a@[x"])
def test_unparsable_paths_are_malformed_addresses(command: bytes) -> None:
    """Where the stdlib address parser raises (IndexError, AttributeError),
    aiosmtpd answers "500 Error: (IndexError) ..."; we answer 553."""
    replies = dialog(Recorder(), [line(b"EHLO c"), line(command), line(b"MAIL FROM:<a@x.test>"),
                                  line(b"RCPT TO:<")])
    assert replies[2:] == [b"553 5.1.3 Error: malformed address\r\n", b"250 OK\r\n",
                           b"553 5.1.3 Error: malformed address\r\n"]


def test_well_formed_but_odd_paths_same_as_aiosmtpd() -> None:
    commands = [b"MAIL FROM:<@>", b"MAIL FROM:a@b>", b"MAIL FROM:<a@b>>", b"MAIL FROM:<<a@b>>", b"MAIL FROM:<a@b> \x1b",
                b'MAIL FROM:<"x y"@c>', b"MAIL FROM:<@route:a@b>", b"MAIL FROM:<(comment)a@b>", b"MAIL FROM:<a@b"]
    steps: List[Step] = [line(b"EHLO c")]
    for command in commands:
        steps += [line(command), line(b"RSET")]
    run = side_by_side(Recorder, steps)
    assert run.mine == run.theirs


def test_smtp_smuggling_attempt_stays_one_message() -> None:
    """Only <CR><LF>.<CR><LF> ends DATA (CVE-2024-27305): a bare-LF or
    bare-CR dot line is content, so the smuggled MAIL never runs."""
    smuggled = b"MAIL FROM:<ceo@bank.test>\r\nRCPT TO:<victim@x.test>\r\nDATA\r\nforged\r\n"
    body = b"hello\n.\r\n" + smuggled + b"\r.\r\n" + smuggled
    steps = [line(b"EHLO c"), line(b"MAIL FROM:<a@x.test>"), line(b"RCPT TO:<b@x.test>"), line(b"DATA"),
             (body + b".\r\n", 1), line(b"NOOP")]
    run = side_by_side(Recorder, steps)
    assert run.mine == run.theirs
    assert run.mine[-2:] == [b"250 OK\r\n", b"250 OK\r\n"]
    (delivered,) = run.my_handler.delivered
    assert delivered.content == body
    assert run.their_handler.delivered == run.my_handler.delivered


def test_greeting_and_helo_use_the_hostname() -> None:
    replies = dialog(Recorder(), [line(b"HELO c")])
    assert replies == [f"220 {HOST} Python SMTP 1.4.6\r\n".encode(), f"250 {HOST}\r\n".encode()]


def test_size_parameter_takes_ascii_digits_only() -> None:
    """aiosmtpd tests SIZE with str.isdigit(): "SIZE=²" leaks "500 Error:
    (ValueError) invalid literal for int()..." and Arabic-Indic digits pass
    as a number.  RFC 1870 wants ASCII digits: anything else is a syntax error."""
    steps = [line(b"EHLO c"), line("MAIL FROM:<a@x.test> SIZE=\u00b2".encode()),
             line("MAIL FROM:<a@x.test> SIZE=\u0661\u0662".encode()), line(b"MAIL FROM:<a@x.test> SIZE=12")]
    run = side_by_side(Recorder, steps, enable_SMTPUTF8=True)
    assert run.theirs[2].startswith(b"500 Error: (ValueError) invalid literal for int()")
    assert run.theirs[3] == b"250 OK\r\n"
    syntax_error = b"501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]\r\n"
    assert run.mine[2:] == [syntax_error, syntax_error, b"250 OK\r\n"]


class FailingDelivery:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        raise RuntimeError("disk full")


def test_a_failing_handle_data_still_ends_the_transaction() -> None:
    """The message was received, so the transaction is over (RFC 5321
    4.1.1.4).  aiosmtpd keeps the envelope after the handler raised, so the
    client's next MAIL gets "503 Error: nested MAIL command"."""
    steps = [line(b"EHLO c"), line(b"MAIL FROM:<a@x.test>"), line(b"RCPT TO:<b@x.test>"), line(b"DATA"),
             (b"x\r\n.\r\n", 1), line(b"MAIL FROM:<a@x.test>")]
    run = side_by_side(FailingDelivery, steps)
    assert run.mine[5] == run.theirs[5] == b"500 Error: (RuntimeError) disk full\r\n"
    assert run.theirs[6] == b"503 Error: nested MAIL command\r\n"
    assert run.mine[6] == b"250 OK\r\n"
