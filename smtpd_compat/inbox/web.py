"""The inbox's HTTP side: the page, its static files, the JSON API and server-sent events.

Standard library only (``http.server``): one thread per connection, bounded
in number, with socket timeouts, a cap on request bodies, a Host check against
DNS rebinding when bound to loopback, and strict security headers everywhere.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Pattern, Tuple
from urllib.parse import parse_qs, urlsplit

from smtpd_compat.common.address import format_address
from smtpd_compat.inbox import views
from smtpd_compat.inbox.openapi import openapi_document
from smtpd_compat.inbox.release import Relay, ReleaseError, check_recipients, release
from smtpd_compat.inbox.store import BaseStore, MessageGone, StoredMessage, StoreEvent

__all__ = ["InboxHTTPServer", "is_loopback"]

log = logging.getLogger("smtpd_compat.inbox")

STATIC = Path(__file__).with_name("static")
STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

#: The page: scripts and styles from our own files only, no inline code, never framed.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
#: A message's HTML: no script, nothing fetched from anywhere, framed only by our page.
MESSAGE_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
#: Raw source and attachments: inert even if a browser were to render them.
INERT_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"

MAX_BODY = 64 * 1024
MAX_WAIT = 60.0
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
KEEPALIVE_EVERY = 10.0

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HTTPError(Exception):
    def __init__(self, status: int, message: str, allow: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow


class InboxHTTPServer(ThreadingHTTPServer):
    """Serves one store; ``relay`` (if set) is the only place messages may be released to."""

    daemon_threads = True

    def __init__(
        self,
        address: Tuple[str, int],
        store: BaseStore,
        *,
        relay: Optional[Relay] = None,
        smtp_address: Optional[Tuple[str, int]] = None,
        max_connections: int = 64,
    ) -> None:
        self.store = store
        self.relay = relay
        self.smtp_address = smtp_address
        self.stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(max_connections)
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        # On loopback the page is only for this machine: a Host header naming anything
        # else is a DNS-rebinding page trying to read the mail.
        self.allowed_hosts: Optional[FrozenSet[str]] = (
            LOOPBACK_NAMES | {"127.0.0.1", "[::1]", host.lower()} if is_loopback(host) else None
        )
        super().__init__(address, InboxRequestHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        # Bounded threads: beyond the limit, answer at once instead of queueing.
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


Route = Tuple[Pattern[str], Dict[str, str]]
ROUTES: List[Route] = [
    (re.compile(pattern), methods)
    for pattern, methods in [
        (r"/", {"GET": "page"}),
        (r"/static/(app\.js|style\.css)", {"GET": "static_file"}),
        (r"/api/v1/messages", {"GET": "list_messages", "DELETE": "delete_all"}),
        (r"/api/v1/messages/([0-9]{1,18})", {"GET": "get_message", "DELETE": "delete_message"}),
        (r"/api/v1/messages/([0-9]{1,18})/raw", {"GET": "raw"}),
        (r"/api/v1/messages/([0-9]{1,18})/html", {"GET": "html"}),
        (r"/api/v1/messages/([0-9]{1,18})/parts/([0-9]{1,6})", {"GET": "part"}),
        (r"/api/v1/messages/([0-9]{1,18})/release", {"POST": "release_message"}),
        (r"/api/v1/wait", {"GET": "wait"}),
        (r"/api/v1/events", {"GET": "events"}),
        (r"/api/v1/info", {"GET": "info"}),
        (r"/api/v1/openapi.json", {"GET": "openapi"}),
    ]
]


class InboxRequestHandler(BaseHTTPRequestHandler):
    server: InboxHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "smtpd_compat-inbox"
    #: Seconds a connection may sit idle or stall a read/write.
    timeout = 30

    # Every method goes through one dispatcher so unknown ones get a proper 405.
    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def send_error(
        self, code: int, message: Optional[str] = None, explain: Optional[str] = None
    ) -> None:
        # http.server's own errors (bad request line, 414, 431, 501) in our JSON and headers.
        self.close_connection = True
        self._json(code, {"error": message or HTTPStatus(code).phrase})

    # -- plumbing ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self.body = b""
        try:
            self._check_request()
            url = urlsplit(self.path)
            try:
                self.query = parse_qs(url.query, max_num_fields=20)
            except ValueError:
                raise HTTPError(400, "more than 20 query parameters") from None
            handler, args = self._route(url.path)
            handler(*args)
        except HTTPError as exc:
            self._json(
                exc.status, {"error": str(exc)}, (("Allow", exc.allow),) if exc.allow else ()
            )
        except MessageGone as exc:  # deleted while this request was reading it
            self._json(404, {"error": str(exc)})
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception:  # a bug or a message no parser expected: say so, keep serving
            log.exception("inbox: %s %s failed", self.command, self.path)
            self.close_connection = True
            self._json(500, {"error": "internal error (logged by the inbox)"})

    def _check_request(self) -> None:
        allowed = self.server.allowed_hosts
        host = self.headers.get("Host", "")
        name = host.rsplit("]", 1)[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
        if allowed is not None and name.lower() not in allowed:
            self.close_connection = True
            raise HTTPError(
                403, "unexpected Host header {!r} (DNS rebinding protection)".format(host)
            )
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True
            raise HTTPError(411, "send a Content-Length, not Transfer-Encoding")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise HTTPError(413, "request body over {} bytes".format(MAX_BODY))
        self.body = self.rfile.read(length) if length else b""
        if self.command not in ("GET", "HEAD", "OPTIONS"):
            # Cross-site pages may not change anything (CSRF), whatever the browser sends.
            origin = self.headers.get("Origin")
            if origin is not None and origin != "http://" + host:
                raise HTTPError(403, "cross-origin request refused")
            if self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
                raise HTTPError(403, "cross-site request refused")

    def _route(self, path: str) -> Tuple[Callable[..., None], Tuple[str, ...]]:
        for pattern, methods in ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            name = methods.get(self.command)
            if name is None:
                raise HTTPError(405, "method not allowed", allow=", ".join(sorted(methods)))
            return getattr(self, "route_" + name), match.groups()
        raise HTTPError(404, "no such page")

    def _respond(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Tuple[Tuple[str, str], ...] = (),
        csp: str = INERT_CSP,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self._security_headers(csp)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _security_headers(self, csp: str) -> None:
        self.send_header("Content-Security-Policy", csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        self.send_header(
            "X-Frame-Options", "SAMEORIGIN" if "frame-ancestors 'self'" in csp else "DENY"
        )

    def _json(self, status: int, document: Any, headers: Tuple[Tuple[str, str], ...] = ()) -> None:
        body = json.dumps(document, indent=1).encode("ascii")
        self._respond(status, body, "application/json", headers)

    def _param(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def _number(self, name: str, default: float, low: float, high: float) -> float:
        text = self._param(name)
        try:
            value = float(text) if text else default
        except ValueError:
            raise HTTPError(400, "{} must be a number".format(name)) from None
        if not low <= value <= high:
            raise HTTPError(400, "{} must be between {:g} and {:g}".format(name, low, high))
        return value

    def _message(self, id: str) -> StoredMessage:
        message = self.server.store.get(id.lstrip("0") or "0")
        if message is None:
            raise HTTPError(404, "no message {}".format(id))
        return message

    # -- pages ---------------------------------------------------------------------------

    def route_page(self) -> None:
        self.route_static_file("index.html")

    def route_static_file(self, name: str) -> None:
        body = (STATIC / name).read_bytes()
        self._respond(200, body, STATIC_TYPES[name], csp=PAGE_CSP)

    # -- API -------------------------------------------------------------------------------

    def route_list_messages(self) -> None:
        limit = int(self._number("limit", DEFAULT_LIMIT, 1, MAX_LIMIT))
        store = self.server.store
        found = store.list(self._param("query"), limit)
        self._json(
            200,
            {"total": len(store), "count": len(found), "messages": list(map(views.summary, found))},
        )

    def route_delete_all(self) -> None:
        self.server.store.clear()
        self._respond(204, b"", "application/json")

    def route_get_message(self, id: str) -> None:
        self._json(200, views.detail(self._message(id)))

    def route_delete_message(self, id: str) -> None:
        if not self.server.store.delete(self._message(id).id):
            raise HTTPError(404, "no message {}".format(id))
        self._respond(204, b"", "application/json")

    def route_raw(self, id: str) -> None:
        message = self._message(id)
        headers: Tuple[Tuple[str, str], ...] = ()
        if self._param("download"):
            disposition = 'attachment; filename="message-{}.eml"'.format(message.id)
            headers = (("Content-Disposition", disposition),)
        self._respond(200, message.raw, "text/plain; charset=utf-8", headers)

    def route_html(self, id: str) -> None:
        html = views.html_for_frame(self._message(id))
        if html is None:
            raise HTTPError(404, "message {} has no HTML part".format(id))
        self._respond(
            200, html.encode("utf-8", "replace"), "text/html; charset=utf-8", csp=MESSAGE_CSP
        )

    def route_part(self, id: str, index: str) -> None:
        message = self._message(id)
        for number, part in views.attachment_parts(message):
            if number == int(index):
                name = views.safe_filename(views.filename(part), "part-{}".format(number))
                headers = (("Content-Disposition", 'attachment; filename="{}"'.format(name)),)
                self._respond(200, views.part_bytes(part), "application/octet-stream", headers)
                return
        raise HTTPError(404, "message {} has no attachment {}".format(id, index))

    def route_release_message(self, id: str) -> None:
        message = self._message(id)
        relay = self.server.relay
        if relay is None:
            raise HTTPError(403, "release is off: start the inbox with --relay HOST:PORT")
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            raise HTTPError(415, "send the request as application/json")
        try:
            request = json.loads(self.body or b"{}")
        except ValueError:
            raise HTTPError(400, "the body is not JSON") from None
        if not isinstance(request, dict):
            raise HTTPError(400, "the body must be a JSON object")
        if (request.get("host", relay.host), request.get("port", relay.port)) != tuple(relay):
            raise HTTPError(403, "release goes only to the configured relay {}:{}".format(*relay))
        try:
            recipients = check_recipients(request.get("to", list(message.rcpt_tos)))
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        try:
            refused = release(message, relay, recipients)
        except ReleaseError as exc:
            raise HTTPError(502, str(exc)) from None
        self._json(
            200,
            {
                "relay": format_address(*relay),
                "to": recipients,
                "refused": {
                    rcpt: [code, text.decode("utf-8", "replace")]
                    for rcpt, (code, text) in refused.items()
                },
            },
        )

    def route_wait(self) -> None:
        timeout = self._number("timeout", 10.0, 0.0, MAX_WAIT)
        after = int(self._number("after", 0, 0, 1e18))
        try:
            message = self.server.store.wait_for(
                lambda found: int(found.id) > after, timeout, query=self._param("query")
            )
        except TimeoutError:
            self.close_connection = True  # 408 means "this connection is done"
            raise HTTPError(
                408, "no matching message within {:g} seconds".format(timeout)
            ) from None
        self._json(200, views.detail(message))

    def route_info(self) -> None:
        store = self.server.store
        smtp = self.server.smtp_address
        relay = self.server.relay
        self._json(
            200,
            {
                "smtp": None if smtp is None else format_address(*smtp),
                "relay": None if relay is None else format_address(*relay),
                "messages": len(store),
                "bytes": store.total_bytes,
                "max_messages": store.max_messages,
                "max_bytes": store.max_bytes,
            },
        )

    def route_openapi(self) -> None:
        self._json(200, openapi_document())

    def route_events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self._security_headers(INERT_CSP)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        with self.server.store.subscribe() as events:
            self._send_event("ready", {"messages": len(self.server.store)})
            quiet_since = time.monotonic()
            while not self.server.stopping.is_set():
                event = events.get(timeout=0.5)
                if event is not None:
                    self._send_event(event.kind, _event_data(event))
                elif time.monotonic() - quiet_since < KEEPALIVE_EVERY:
                    continue
                else:  # a comment line: keeps proxies from timing out, finds gone clients
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                quiet_since = time.monotonic()

    def _send_event(self, kind: str, data: Any) -> None:
        self.wfile.write("event: {}\ndata: {}\n\n".format(kind, json.dumps(data)).encode("ascii"))
        self.wfile.flush()


def _event_data(event: StoreEvent) -> Dict[str, Any]:
    if event.message is not None:
        return views.summary(event.message)
    return {"id": event.id}
