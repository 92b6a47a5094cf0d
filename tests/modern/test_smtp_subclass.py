"""Subclassing and configuring the modern SMTP class the aiosmtpd way:
new ``smtp_*`` verbs, deprecated subclass hooks, constructor options and
class attributes.  Side by side with aiosmtpd 1.4.6 where it agrees."""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional

import pytest

from smtpd_compat.modern.smtp import SMTP, syntax

from ._servers import Step
from ._smtp_support import HOST, Client, Recorder, mail_transaction, serve, side_by_side


def line(text: str, replies: int = 1) -> Step:
    return (text.encode() + b"\r\n", replies)


BASE_COMMANDS = "AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY"


class PingCommands:
    """A subclass body adding two verbs; only the decorated one is listed."""

    @syntax("PING [text]")
    async def smtp_PING(self, arg: Optional[str]) -> None:
        await self.push(f"250 PONG {arg or ''}".rstrip())  # type: ignore[attr-defined]

    async def smtp_SECRET(self, arg: Optional[str]) -> None:
        await self.push("250 hidden but working")  # type: ignore[attr-defined]


def test_new_verbs_with_and_without_syntax() -> None:
    steps = [line("PING"), line("ping hello"), line("SECRET"), line("HELP"), line("HELP PING"), line("HELP SECRET")]
    run = side_by_side(Recorder, steps, mixin=PingCommands)
    assert run.mine == run.theirs
    commands = " ".join(sorted(BASE_COMMANDS.split() + ["PING"]))
    assert run.mine[1:] == [
        b"250 PONG\r\n", b"250 PONG hello\r\n", b"250 hidden but working\r\n",
        f"250 Supported commands: {commands}\r\n".encode(), b"250 Syntax: PING [text]\r\n",
        f"501 Supported commands: {commands}\r\n".encode(),
    ]


class DeprecatedSubclassHooks:
    async def ehlo_hook(self) -> None:
        await self.push("250-FROM-EHLO-HOOK")  # type: ignore[attr-defined]

    async def rset_hook(self) -> None:
        self.event_handler.calls.append("rset_hook")  # type: ignore[attr-defined]


class Calls(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.calls: List[str] = []


def test_deprecated_ehlo_hook_and_rset_hook() -> None:
    steps = [line("EHLO c"), line("RSET")]
    with pytest.warns(DeprecationWarning) as caught:
        run = side_by_side(Calls, steps, mixin=DeprecatedSubclassHooks)
    messages = {str(w.message) for w in caught}
    assert "Use handler.handle_EHLO() instead of .ehlo_hook()" in messages
    assert "Use handler.handle_RSET() instead of .rset_hook()" in messages
    assert run.mine == run.theirs
    assert run.mine[1] == f"250-FROM-EHLO-HOOK\r\n250-{HOST}\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250 HELP\r\n".encode()
    assert run.my_handler.calls == ["rset_hook"]


@pytest.mark.parametrize(
    "limit, steps, expected_tail",
    [
        (3, [line("NOOP")] * 3 + [line("NOOP")], [b"250 OK\r\n"] * 3 + [b"421 4.7.0 NOOP sent too many times\r\n"]),
        (
            {"NOOP": 1, "*": 2},
            [line("NOOP"), line("HELO a"), line("HELO b"), line("NOOP")],
            [b"250 OK\r\n", f"250 {HOST}\r\n".encode(), f"250 {HOST}\r\n".encode(),
             b"421 4.7.0 NOOP sent too many times\r\n"],
        ),
        # Unknown verbs are counted too; the default for a dict without "*" is 20.
        (
            {"FOO": 1},
            [line("FOO"), line("FOO")] + [line("NOOP")] * 20 + [line("NOOP")],
            [b'500 Error: command "FOO" not recognized\r\n', b"421 4.7.0 FOO sent too many times\r\n"],
        ),
    ],
)
def test_command_call_limit(limit: Any, steps: List[Step], expected_tail: List[bytes]) -> None:
    with serve(Recorder(), command_call_limit=limit) as server, Client(server.port) as client:
        replies = []
        for data, _ in steps:
            client.send(data)
            reply = client.reply()
            replies.append(reply)
            if reply.startswith(b"421"):
                break
        assert client.rest() == b""  # closed right after the 421
    assert replies == expected_tail
    run = side_by_side(Recorder, [(b"".join(s for s, _ in steps[: len(replies)]), len(replies))],
                       command_call_limit=limit)
    assert run.mine == run.theirs


@pytest.mark.parametrize("bad", [3.5, "10", [1]])
def test_command_call_limit_type_errors(bad: Any) -> None:
    with pytest.raises(TypeError):
        SMTP(Recorder(), command_call_limit=bad, loop=object())  # type: ignore[arg-type]


def test_command_call_limit_dict_values_must_be_int() -> None:
    with pytest.raises(TypeError, match="must be int"):
        SMTP(Recorder(), command_call_limit={"NOOP": "3"}, loop=object())  # type: ignore[arg-type, dict-item]


def test_fifth_unknown_command_closes_the_connection() -> None:
    steps = [line("FOO"), line("NOOP"), line("BAR x"), line("foo"), line("NOOP"), line("X-Y"), line("ZAP")]
    with serve(Recorder()) as server, Client(server.port) as client:
        replies = [client.cmd(data.rstrip(b"\r\n")) for data, _ in steps]
        assert client.rest() == b""
    assert replies == [
        b'500 Error: command "FOO" not recognized\r\n', b"250 OK\r\n", b'500 Error: command "BAR" not recognized\r\n',
        b'500 Error: command "FOO" not recognized\r\n', b"250 OK\r\n", b'500 Error: command "X-Y" not recognized\r\n',
        b"502 5.5.1 Too many unrecognized commands, goodbye.\r\n",
    ]
    run = side_by_side(Recorder, steps)
    assert run.mine == run.theirs


class LocalPartLimit:
    local_part_limit = 10


def test_local_part_limit() -> None:
    steps = [
        line("EHLO c"), line("MAIL FROM:<abcdefghijk@x.test>"), line("MAIL FROM:<abcdefghij@x.test>"),
        line("RCPT TO:<abcdefghijk@x.test>"), line("RCPT TO:<abcdefghij@x.test>"), line("VRFY <abcdefghijk@x.test>"),
    ]
    run = side_by_side(Recorder, steps, mixin=LocalPartLimit)
    assert run.mine == run.theirs
    assert run.mine[2:] == [
        b"553 5.1.3 Error: malformed address\r\n", b"250 OK\r\n", b"553 5.1.3 Error: malformed address\r\n",
        b"250 OK\r\n", b"502 Could not VRFY <abcdefghijk@x.test>\r\n",
    ]


def test_data_size_limit_none_means_no_size_and_no_limit() -> None:
    recorder = Recorder()
    body = b"x" * 998 + b"\r\n"
    with serve(recorder, data_size_limit=None) as server, Client(server.port) as client:
        assert client.cmd("EHLO c") == f"250-{HOST}\r\n250-8BITMIME\r\n250 HELP\r\n".encode()
        assert mail_transaction(client, body * 3000, sender="<a@x.test> SIZE=99999999999") == b"250 OK\r\n"
    assert recorder.delivered[0].content == body * 3000
    run = side_by_side(Recorder, [line("EHLO c"), line("MAIL FROM:<a@x.test> SIZE=99999999999")], data_size_limit=None)
    assert run.mine == run.theirs


def test_hostname_and_ident() -> None:
    steps = [line("HELO c"), line("EHLO c")]
    run = side_by_side(Recorder, steps, hostname="smtp.example.org", ident="Acme Mail 2.0")
    assert run.mine == run.theirs
    assert run.mine[:2] == [b"220 smtp.example.org Acme Mail 2.0\r\n", b"250 smtp.example.org\r\n"]
    assert run.mine[2].startswith(b"250-smtp.example.org\r\n")


def test_default_hostname_is_the_fqdn() -> None:
    import socket

    with serve(Recorder(), hostname=None) as server, Client(server.port) as client:
        assert client.greeting == f"220 {socket.getfqdn()} Python SMTP 1.4.6\r\n".encode()


UTF8_BODY = "Subject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode()


@pytest.mark.parametrize(
    "options, ehlo_extensions, content",
    [
        ({}, ["8BITMIME"], UTF8_BODY),
        ({"enable_SMTPUTF8": True}, ["8BITMIME", "SMTPUTF8"], UTF8_BODY),
        ({"decode_data": True}, [], None),  # strict ASCII: the 8-bit body is refused
        ({"decode_data": True, "enable_SMTPUTF8": True}, ["SMTPUTF8"], UTF8_BODY.decode()),
    ],
)
def test_decode_data_and_smtputf8_combinations(
    options: Dict[str, bool], ehlo_extensions: List[str], content: Any
) -> None:
    recorder = Recorder()
    with serve(recorder, **options) as server, Client(server.port) as client:
        ehlo = client.cmd("EHLO c")
        expected_ehlo = [f"250-{HOST}", "250-SIZE 33554432"] + [f"250-{e}" for e in ehlo_extensions] + ["250 HELP"]
        assert ehlo == ("\r\n".join(expected_ehlo) + "\r\n").encode()
        smtputf8 = client.cmd("MAIL FROM:<a@x.test> SMTPUTF8")
        if options.get("enable_SMTPUTF8"):
            assert smtputf8 == b"250 OK\r\n"
            assert client.cmd("RSET") == b"250 OK\r\n"
            non_ascii_mail = client.cmd("MAIL FROM:<\u00e9@x.test> SMTPUTF8".encode())
            assert non_ascii_mail == b"250 OK\r\n"
            assert client.cmd("RSET") == b"250 OK\r\n"
        else:
            assert smtputf8 == b"501 Error: SMTPUTF8 disabled\r\n"
            assert client.cmd("MAIL FROM:<\u00e9@x.test>".encode()) == b"500 Error: strict ASCII mode\r\n"
        body_param = client.cmd("MAIL FROM:<a@x.test> BODY=BINARYMIME")
        if options.get("decode_data"):
            # Without 8BITMIME, BODY is an unknown parameter (aiosmtpd #217).
            assert body_param == b"555 MAIL FROM parameters not recognized or not implemented\r\n"
        else:
            assert body_param == b"501 Error: BODY can only be one of 7BIT, 8BITMIME\r\n"
        final = mail_transaction(client, UTF8_BODY)
    if content is None:
        assert final == b"500 Error: strict ASCII mode\r\n"
        assert recorder.delivered == []
    else:
        assert final == b"250 OK\r\n"
        (got,) = recorder.delivered
        assert got.content == content and got.original_content == UTF8_BODY


def test_smtputf8_envelope_flag() -> None:
    recorder = Recorder()
    with serve(recorder, enable_SMTPUTF8=True) as server, Client(server.port) as client:
        client.cmd("EHLO c")
        assert mail_transaction(client, b"x\r\n", sender="<\u00e9@x.test> SMTPUTF8") == b"250 OK\r\n"
        assert mail_transaction(client, b"y\r\n") == b"250 OK\r\n"
    assert [(d.mail_from, d.smtp_utf8, d.mail_options) for d in recorder.delivered] == [
        ("\u00e9@x.test", True, ["SMTPUTF8"]), ("a@x.test", False, []),
    ]


def test_size_parameter_is_enforced() -> None:
    with serve(Recorder(), data_size_limit=1000) as server, Client(server.port) as client:
        assert b"250-SIZE 1000\r\n" in client.cmd("EHLO c")
        assert client.cmd("MAIL FROM:<a@x.test> SIZE=1001") == (
            b"552 Error: message size exceeds fixed maximum message size\r\n"
        )
        assert client.cmd("MAIL FROM:<a@x.test> SIZE=1000") == b"250 OK\r\n"


def test_smtp_module_names_match_aiosmtpd() -> None:
    theirs = pytest.importorskip("aiosmtpd.smtp")
    from smtpd_compat.modern import smtp as ours

    assert set(theirs.__all__) == set(ours.__all__)
    for name in ("AuthResult", "AuthenticatorType", "DATA_SIZE_DEFAULT", "CALL_LIMIT_DEFAULT", "BOGUS_LIMIT",
                 "ALLOWED_BEFORE_STARTTLS", "make_loop", "login_always_fail", "__ident__"):
        assert hasattr(ours, name), name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (ours.DATA_SIZE_DEFAULT, ours.CALL_LIMIT_DEFAULT, ours.BOGUS_LIMIT, ours.__ident__) == (
            theirs.DATA_SIZE_DEFAULT, theirs.CALL_LIMIT_DEFAULT, theirs.BOGUS_LIMIT, theirs.__ident__
        )
