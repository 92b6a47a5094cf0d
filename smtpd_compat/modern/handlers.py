"""Ready-made handlers, name for name with ``aiosmtpd.handlers``.

A handler is any object whose ``handle_*`` coroutines the SMTP server calls
at points of the dialog.  Classes here that take constructor arguments also
offer ``from_cli(parser, *args)`` so the command line can build them.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
import os
import re
import smtplib
import sys
from abc import ABCMeta, abstractmethod
from argparse import ArgumentParser
from email.message import Message as Em_Message
from email.parser import BytesParser, Parser
from typing import Any, Dict, List, Optional, TextIO, Tuple, Type, TypeVar, Union

from smtpd_compat.modern.smtp import SMTP as SMTPServer
from smtpd_compat.modern.smtp import Envelope as SMTPEnvelope
from smtpd_compat.modern.smtp import Session as SMTPSession
from smtpd_compat.modern.smtp import make_loop

__all__ = ["AsyncMessage", "Debugging", "Mailbox", "Message", "Proxy", "Sink"]

T = TypeVar("T")

#: Recipient -> (SMTP code, reply text), as smtplib reports refusals.
Refusals = Dict[str, Tuple[int, bytes]]

EMPTYBYTES = b""
COMMASPACE = ", "
CRLF = b"\r\n"
NLCRE = re.compile(rb"\r\n|\r|\n")
log = logging.getLogger("mail.debug")


def _format_peer(peer: object) -> str:
    # Kept separate so tests can substitute a reproducible peer line.
    return "X-Peer: {!r}".format(peer)


def message_from_bytes(s: Union[bytes, bytearray], *args: Any, **kws: Any) -> Em_Message:
    message: Em_Message = BytesParser(*args, **kws).parsebytes(s)
    return message


def message_from_string(s: str, *args: Any, **kws: Any) -> Em_Message:
    message: Em_Message = Parser(*args, **kws).parsestr(s)
    return message


class Debugging:
    """Print every received message to a stream (stdout by default)."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self.stream: TextIO = sys.stdout if stream is None else stream

    @classmethod
    def from_cli(cls: Type[T], parser: ArgumentParser, *args: str) -> T:
        streams = {"stdout": sys.stdout, "stderr": sys.stderr}
        if len(args) > 1 or (args and args[0] not in streams):
            parser.error("Debugging usage: [stdout|stderr]")
        stream = streams[args[0]] if args else None
        return cls(stream)  # type: ignore[call-arg]

    def _print_message_content(self, peer: object, data: Union[str, bytes]) -> None:
        in_headers = True
        for line in data.splitlines():
            # The peer goes last among the headers, i.e. just before the blank line.
            if in_headers and not line:
                print(_format_peer(peer), file=self.stream)
                in_headers = False
            if isinstance(line, bytes):
                line = line.decode("utf-8", "replace")
            print(line, file=self.stream)

    async def handle_DATA(
        self, server: SMTPServer, session: SMTPSession, envelope: SMTPEnvelope
    ) -> str:
        print("---------- MESSAGE FOLLOWS ----------", file=self.stream)
        # Truthiness on purpose: the options may be absent or empty lists.
        add_separator = False
        if envelope.mail_options:
            print("mail options:", envelope.mail_options, file=self.stream)
            add_separator = True
        if any(envelope.rcpt_options):
            print("rcpt options:", envelope.rcpt_options, file=self.stream)
            add_separator = True
        if add_separator:
            print(file=self.stream)
        assert envelope.content is not None
        self._print_message_content(session.peer, envelope.content)
        print("------------ END MESSAGE ------------", file=self.stream)
        return "250 OK"


class Proxy:
    """Relay every message to another SMTP server.

    Unlike aiosmtpd, the blocking smtplib delivery runs in the loop's default
    executor, so one slow upstream does not stall every other session.
    """

    def __init__(self, remote_hostname: str, remote_port: int) -> None:
        self._hostname = remote_hostname
        self._port = remote_port

    async def handle_DATA(
        self, server: SMTPServer, session: SMTPSession, envelope: SMTPEnvelope
    ) -> str:
        if isinstance(envelope.content, str):
            content = envelope.original_content
        else:
            content = envelope.content
        assert content is not None
        lines = content.splitlines(keepends=True)
        # X-Peer goes before the first blank line, reusing that line's ending;
        # without a blank line it lands before the last line, as in aiosmtpd.
        index = 0
        ending = CRLF
        for index, line in enumerate(lines):
            if NLCRE.match(line):
                ending = line
                break
        assert session.peer is not None
        peer = session.peer[0].encode("ascii")
        lines.insert(index, b"X-Peer: " + peer + ending)
        data = EMPTYBYTES.join(lines)
        assert envelope.mail_from is not None
        loop = asyncio.get_running_loop()
        refused = await loop.run_in_executor(
            None, self._deliver, envelope.mail_from, list(envelope.rcpt_tos), data
        )
        # Like aiosmtpd: refusals are logged only; the client still gets 250.
        log.info("we got some refusals: %s", refused)
        return "250 OK"

    def _deliver(self, mail_from: str, rcpt_tos: List[str], data: bytes) -> Refusals:
        refused: Refusals = {}
        try:
            client = smtplib.SMTP()
            client.connect(self._hostname, self._port)
            try:
                refused = client.sendmail(mail_from, rcpt_tos, data)
            finally:
                client.quit()
        except smtplib.SMTPRecipientsRefused as e:
            log.info("got SMTPRecipientsRefused")
            refused = e.recipients
        except (OSError, smtplib.SMTPException) as e:
            log.exception("got %s", e.__class__)
            # Every recipient failed; report the server's code when there was one.
            errcode = getattr(e, "smtp_code", -1)
            errmsg = getattr(e, "smtp_error", b"ignore")
            for rcpt in rcpt_tos:
                refused[rcpt] = (errcode, errmsg)
        return refused


class Sink:
    """Accept and discard everything: every reply is the server's default."""

    @classmethod
    def from_cli(cls: Type[T], parser: ArgumentParser, *args: str) -> T:
        if args:
            parser.error("Sink handler does not accept arguments")
        return cls()


class MessageBase(metaclass=ABCMeta):
    """Turn the received content into an ``email`` message object."""

    def __init__(self, message_class: Optional[Type[Em_Message]] = None) -> None:
        self.message_class = message_class

    def prepare_message(self, session: SMTPSession, envelope: SMTPEnvelope) -> Em_Message:
        # decode_data=True servers deliver str content, others bytes.
        data = envelope.content
        message: Em_Message
        if isinstance(data, (bytes, bytearray)):
            message = message_from_bytes(data, self.message_class)
        elif isinstance(data, str):
            message = message_from_string(data, self.message_class)
        else:
            raise TypeError(f"Expected str or bytes, got {type(data)}")
        message["X-Peer"] = str(session.peer)
        # Before MAIL the sender is None; the header then holds None, as in aiosmtpd.
        message["X-MailFrom"] = envelope.mail_from  # type: ignore[assignment]
        message["X-RcptTo"] = COMMASPACE.join(envelope.rcpt_tos)
        return message

    @abstractmethod
    async def handle_DATA(
        self, server: SMTPServer, session: SMTPSession, envelope: SMTPEnvelope
    ) -> str: ...


class Message(MessageBase, metaclass=ABCMeta):
    """Subclass and implement the synchronous ``handle_message(message)``."""

    async def handle_DATA(
        self, server: SMTPServer, session: SMTPSession, envelope: SMTPEnvelope
    ) -> str:
        message = self.prepare_message(session, envelope)
        self.handle_message(message)
        return "250 OK"

    @abstractmethod
    def handle_message(self, message: Em_Message) -> None: ...


class AsyncMessage(MessageBase, metaclass=ABCMeta):
    """Subclass and implement the coroutine ``handle_message(message)``."""

    def __init__(
        self,
        message_class: Optional[Type[Em_Message]] = None,
        *,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        super().__init__(message_class)
        self.loop = loop or make_loop()

    async def handle_DATA(
        self, server: SMTPServer, session: SMTPSession, envelope: SMTPEnvelope
    ) -> str:
        message = self.prepare_message(session, envelope)
        await self.handle_message(message)
        return "250 OK"

    @abstractmethod
    async def handle_message(self, message: Em_Message) -> None: ...


class Mailbox(Message):
    """Store every message in a Maildir.

    ``mailbox.Maildir.add`` writes into ``tmp/``, syncs, then links the file
    into ``new/``, so readers of ``new/`` never see a partial message.
    """

    def __init__(
        self,
        mail_dir: Union[str, os.PathLike],  # type: ignore[type-arg]
        message_class: Optional[Type[Em_Message]] = None,
    ) -> None:
        self.mailbox = mailbox.Maildir(mail_dir)
        self.mail_dir = mail_dir
        super().__init__(message_class)

    def handle_message(self, message: Em_Message) -> None:
        self.mailbox.add(message)

    def reset(self) -> None:
        self.mailbox.clear()

    @classmethod
    def from_cli(cls: Type[T], parser: ArgumentParser, *args: str) -> T:
        if not args:
            parser.error("The directory for the maildir is required")
        elif len(args) > 1:
            parser.error("Too many arguments for Mailbox handler")
        return cls(args[0])  # type: ignore[call-arg]
