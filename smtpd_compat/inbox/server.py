"""An inbox: the modern face's SMTP server storing mail, and the web server showing it."""

from __future__ import annotations

import threading
from typing import Any, Optional, Tuple

from smtpd_compat.inbox.release import Relay
from smtpd_compat.inbox.store import BaseStore, StoringHandler
from smtpd_compat.common.address import format_address
from smtpd_compat.inbox.web import InboxHTTPServer
from smtpd_compat.modern.controller import Controller

__all__ = ["Inbox"]

Address = Tuple[str, int]


class Inbox:
    """Start with ``start()`` (or ``with``).

    Port 0 picks free ports; read them back as ``smtp_port`` and ``http_port``.
    """

    def __init__(
        self,
        store: BaseStore,
        smtp: Address = ("127.0.0.1", 1025),
        http: Address = ("127.0.0.1", 8025),
        *,
        relay: Optional[Relay] = None,
        max_connections: int = 64,
        **smtp_parameters: Any,
    ) -> None:
        """``smtp_parameters`` go to the ``Controller`` (and so to ``SMTP``)."""
        self.store = store
        self.relay = relay
        self.max_connections = max_connections
        self.controller = Controller(
            StoringHandler(store), hostname=smtp[0], port=smtp[1], **smtp_parameters
        )
        self._http_address = http
        self.http: Optional[InboxHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def smtp_port(self) -> int:
        return int(self.controller.port)

    @property
    def http_port(self) -> int:
        assert self.http is not None, "start() the inbox first"
        return self.http.port

    @property
    def url(self) -> str:
        host = self._http_address[0]
        return "http://{}/".format(format_address(host, self.http_port))

    def start(self) -> None:
        self.controller.start()
        try:
            self.http = InboxHTTPServer(
                self._http_address,
                self.store,
                relay=self.relay,
                smtp_address=(self.controller.hostname, self.smtp_port),
                max_connections=self.max_connections,
            )
        except BaseException:
            self.controller.stop()
            raise
        self._thread = threading.Thread(
            target=self.http.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="inbox-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None
        self.controller.stop()

    def __enter__(self) -> "Inbox":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
