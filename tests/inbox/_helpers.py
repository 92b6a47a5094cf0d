"""Shared by the inbox's API and browser tests: a running inbox, mail to send, a tiny HTTP client."""
from __future__ import annotations

import base64
import http.client
import json
import smtplib
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any, Dict, Iterator, Optional, Protocol, Sequence, Tuple, Union

from smtpd_compat.inbox.release import Relay
from smtpd_compat.inbox.server import Inbox
from smtpd_compat.inbox.store import BaseStore, MessageStore


class Ports(Protocol):
    """An inbox in this process (``Inbox``) or in another one (the command line)."""

    @property
    def smtp_port(self) -> int: ...

    @property
    def http_port(self) -> int: ...


class Response:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def request(inbox: Ports, method: str, path: str, body: Optional[bytes] = None,
            headers: Optional[Dict[str, str]] = None, timeout: float = 30) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", inbox.http_port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return Response(answer.status, answer.headers, answer.read())
    finally:
        connection.close()


def build(subject: str = "Hello", sender: str = "Ann <ann@example.com>", to: str = "bob@example.org",
          text: Optional[str] = "Plain body", html: Optional[str] = None,
          attachments: Sequence[Tuple[str, str, bytes]] = (),
          inline_images: Sequence[Tuple[str, bytes]] = ()) -> EmailMessage:
    """A message; ``inline_images`` are (Content-ID, PNG bytes) pairs related to the HTML part."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    if text is not None:
        message.set_content(text)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
        html_part = message if text is None else message.get_payload()[-1]
        for content_id, png in inline_images:
            html_part.add_related(png, "image", "png", cid="<{}>".format(content_id))
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


#: A 2x1 PNG, small enough to write inline.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAYAAAD0In+KAAAADklEQVR4nGPQi/7/H4QBE7EFD6zvOAQAAAAASUVORK5CYII="
)


def send(inbox: Ports, message: Union[EmailMessage, bytes], mail_from: str = "ann@example.com",
         rcpt_tos: Sequence[str] = ("bob@example.org",)) -> str:
    """Send through SMTP; returns the inbox id from the 250 reply."""
    with smtplib.SMTP("127.0.0.1", inbox.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail(mail_from)
        for rcpt in rcpt_tos:
            client.rcpt(rcpt)
        if isinstance(message, EmailMessage):
            message = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        code, reply = client.data(message)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[1]


@contextmanager
def running_inbox(store: Optional[BaseStore] = None, relay: Optional[Relay] = None) -> Iterator[Inbox]:
    inbox = Inbox(store or MessageStore(), ("127.0.0.1", 0), ("127.0.0.1", 0), relay=relay)
    inbox.start()
    try:
        yield inbox
    finally:
        inbox.stop()
