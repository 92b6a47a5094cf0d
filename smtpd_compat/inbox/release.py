"""Sending a stored message on to a real SMTP server, only the one the operator configured."""

from __future__ import annotations

import smtplib
from typing import Dict, List, NamedTuple, Sequence, Tuple

from smtpd_compat.inbox.store import StoredMessage

__all__ = ["MAX_RECIPIENTS", "Relay", "ReleaseError", "check_recipients", "release"]

#: More recipients than this in one release request are refused.
MAX_RECIPIENTS = 100


class Relay(NamedTuple):
    host: str
    port: int


class ReleaseError(Exception):
    """The relay could not be reached or refused the message."""


def check_recipients(recipients: object) -> List[str]:
    """The recipient list from a request, or ``ValueError`` saying what is wrong with it."""
    if not isinstance(recipients, list) or not recipients:
        raise ValueError('"to" must be a non-empty list of addresses')
    if len(recipients) > MAX_RECIPIENTS:
        raise ValueError('"to" has more than {} addresses'.format(MAX_RECIPIENTS))
    for address in recipients:
        if not isinstance(address, str) or not address.strip() or len(address) > 320:
            raise ValueError('"to" must hold addresses as strings of 1 to 320 characters')
        if any(char in address for char in "\r\n\0<> ,"):
            raise ValueError(
                'an address in "to" holds a character SMTP cannot carry: {!r}'.format(address)
            )
    return list(recipients)


def release(
    message: StoredMessage, relay: Relay, recipients: Sequence[str], timeout: float = 30.0
) -> Dict[str, Tuple[int, bytes]]:
    """Send ``message`` unchanged to ``recipients`` through ``relay``; returns refused recipients."""
    try:
        with smtplib.SMTP(relay.host, relay.port, timeout=timeout) as client:
            refused: Dict[str, Tuple[int, bytes]] = client.sendmail(
                message.mail_from, list(recipients), message.raw
            )
            return refused
    except (smtplib.SMTPException, OSError) as exc:
        raise ReleaseError(
            "release through {}:{} failed: {}".format(relay.host, relay.port, exc)
        ) from exc
