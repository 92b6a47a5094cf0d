"""aiosmtpd's session names; they live in ``smtpd_compat.common.session``,
which the legacy face's bridge uses too."""

from __future__ import annotations

from ..common.session import MISSING as MISSING
from ..common.session import Envelope as Envelope
from ..common.session import PeerType as PeerType
from ..common.session import Session as Session
from ..common.session import _Missing as _Missing

__all__ = ["MISSING", "Envelope", "PeerType", "Session"]
