"""Sink for smtpd_compat's legacy face: `python -m smtpd_compat -n -c compat_sink.Sink HOST:PORT`."""
from __future__ import annotations

from typing import Any, List, Tuple, Union

import smtpd_compat as smtpd


class Sink(smtpd.SMTPServer):
    """Accepts every message and discards it (returning None means "250 OK")."""

    def process_message(self, peer: Tuple[str, int], mailfrom: str, rcpttos: List[str],
                        data: Union[bytes, str], **kwargs: Any) -> None:
        return None
