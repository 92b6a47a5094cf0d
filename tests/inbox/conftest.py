"""Fixtures for the inbox tests."""
from __future__ import annotations

from typing import Iterator

import pytest

from smtpd_compat.inbox.server import Inbox
from tests.inbox._helpers import running_inbox


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    """A running inbox on free ports, memory store."""
    with running_inbox() as running:
        yield running
