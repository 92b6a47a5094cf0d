"""Stored messages as JSON-ready dicts, and the parts of a message the web pages serve."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote

from smtpd_compat.inbox.store import StoredMessage, header_text

__all__ = [
    "TEXT_LIMIT",
    "attachment_parts",
    "detail",
    "filename",
    "html_body",
    "html_for_frame",
    "part_bytes",
    "safe_filename",
    "summary",
]

#: Longest text or HTML body put in a JSON answer; the raw source has the rest.
TEXT_LIMIT = 1 << 20

API = "/api/v1/messages/"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat().replace("+00:00", "Z")


def _addresses(message: StoredMessage, name: str) -> List[str]:
    value = message.header(name)
    return [value] if value else []


def _headers(parsed: EmailMessage) -> List[List[str]]:
    """Every header in order, decoded (RFC 2047) where it parses, raw where it does not."""
    found = []
    for name, raw in parsed.raw_items():
        try:
            value = str(parsed.policy.header_fetch_parse(name, raw))
        except Exception:  # the header registry has raised on hostile input before
            value = str(raw)
        found.append([name, " ".join(value.split())])
    return found


def summary(message: StoredMessage) -> Dict[str, Any]:
    """What a list shows; parses the headers only."""
    return {
        "id": message.id,
        "received": _iso(message.received),
        "size": message.size,
        "from": message.sender,
        "to": _addresses(message, "To"),
        "subject": message.subject,
        "date": message.header("Date"),
        "mail_from": message.mail_from,
        "rcpt_tos": list(message.rcpt_tos),
        "url": API + message.id,
    }


def _body(message: EmailMessage, subtype: str) -> Optional[EmailMessage]:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_type() != "text/" + subtype:
        return None
    assert isinstance(part, EmailMessage)
    return part


def part_text(part: EmailMessage) -> str:
    """A text part decoded, however broken its charset or transfer encoding."""
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content.replace("\r\n", "\n")
    except (LookupError, ValueError, AssertionError, KeyError):
        pass
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    return data.decode("utf-8", "replace").replace("\r\n", "\n")


def _limited(text: Optional[str]) -> Tuple[Optional[str], bool]:
    if text is None or len(text) <= TEXT_LIMIT:
        return text, False
    return text[:TEXT_LIMIT], True


def html_body(message: StoredMessage) -> Optional[str]:
    part = _body(message.message, "html")
    return None if part is None else part_text(part)


#: ``cid:`` references in HTML (RFC 2392), up to the end of the attribute or CSS url().
_CID = re.compile(r"""\bcid:([^"'\s<>()]+)""", re.IGNORECASE)
_IMAGE_TYPE = re.compile(r"image/[a-z0-9.+-]+")
INLINE_IMAGE_LIMIT = 2 << 20


def html_for_frame(message: StoredMessage) -> Optional[str]:
    """The HTML body with ``cid:`` images made ``data:`` URLs, the only images its CSP allows."""
    html = html_body(message)
    if html is None:
        return None
    images: Dict[str, EmailMessage] = {}
    for _, part in attachment_parts(message):
        content_id = header_text(part, "Content-ID").strip("<> ")
        if content_id and _IMAGE_TYPE.fullmatch(part.get_content_type()):
            images[content_id] = part

    def inline(match: "re.Match[str]") -> str:
        part = images.get(unquote(match.group(1)))
        data = b"" if part is None else part_bytes(part)
        if part is None or len(data) > INLINE_IMAGE_LIMIT:
            return match.group(0)
        encoded = base64.b64encode(data).decode("ascii")
        return "data:{};base64,{}".format(part.get_content_type(), encoded)

    return _CID.sub(inline, html) if images else html


def attachment_parts(message: StoredMessage) -> List[Tuple[int, EmailMessage]]:
    """Every leaf part except the text and HTML bodies, with its index in ``walk()`` order."""
    parsed = message.message
    bodies = {id(part) for part in (_body(parsed, "plain"), _body(parsed, "html")) if part}
    found: List[Tuple[int, EmailMessage]] = []
    for index, part in enumerate(parsed.walk()):
        if part.is_multipart() or id(part) in bodies:
            continue
        assert isinstance(part, EmailMessage)
        found.append((index, part))
    return found


def part_bytes(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_filename(name: Optional[str], fallback: str) -> str:
    """A filename safe in a Content-Disposition header and on any file system."""
    cleaned = _UNSAFE_FILENAME.sub("_", name or "").strip(" ._")[:100]
    return cleaned or fallback


def filename(part: EmailMessage) -> str:
    """The part's filename as the sender gave it ("" when none or unreadable)."""
    try:
        return part.get_filename() or ""
    except Exception:  # a malformed parameter should not hide the attachment
        return ""


def _attachment(message: StoredMessage, index: int, part: EmailMessage) -> Dict[str, Any]:
    return {
        "index": index,
        "filename": filename(part),
        "content_type": part.get_content_type(),
        "content_id": header_text(part, "Content-ID"),
        "size": len(part_bytes(part)),
        "url": "{}{}/parts/{}".format(API, message.id, index),
    }


def detail(message: StoredMessage) -> Dict[str, Any]:
    """Everything the message view needs, parsed."""
    parsed = message.message
    plain = _body(parsed, "plain")
    text, text_truncated = _limited(None if plain is None else part_text(plain))
    html, html_truncated = _limited(html_body(message))
    url = API + message.id
    peer = message.peer
    result = summary(message)
    result.update(
        {
            "cc": _addresses(message, "Cc"),
            "bcc": _addresses(message, "Bcc"),
            "reply_to": _addresses(message, "Reply-To"),
            "message_id": message.header("Message-ID"),
            "headers": _headers(parsed),
            "text": text,
            "text_truncated": text_truncated,
            "html": html,
            "html_truncated": html_truncated,
            "html_url": None if html is None else url + "/html",
            "raw_url": url + "/raw",
            "attachments": [_attachment(message, i, part) for i, part in attachment_parts(message)],
            "envelope": {
                "mail_from": message.mail_from,
                "rcpt_tos": list(message.rcpt_tos),
                "mail_options": list(message.mail_options),
                "rcpt_options": list(message.rcpt_options),
                "peer": list(peer) if isinstance(peer, tuple) else peer,
            },
        }
    )
    return result
