"""Sink for the stdlib smtpd reference: `python3.11 -W ignore -m smtpd -n -c stdlib_sink.Sink HOST:PORT`."""
from __future__ import annotations

import smtpd  # the Python <= 3.11 stdlib module being compared against
from typing import Any, List, Tuple, Union


class Sink(smtpd.SMTPServer):
    """Accepts every message and discards it (returning None means "250 OK")."""

    def process_message(self, peer: Tuple[str, int], mailfrom: str, rcpttos: List[str],
                        data: Union[bytes, str], **kwargs: Any) -> None:
        return None
