"""The inbox's JSON API and pages, over real sockets: mail in with smtplib, answers read with http.client."""
from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from smtpd_compat.inbox import main as inbox_main
from smtpd_compat.inbox.release import Relay
from smtpd_compat.inbox.server import Inbox
from smtpd_compat.inbox.store import MessageStore, StoringHandler
from smtpd_compat.modern.controller import Controller
from tests.inbox._helpers import PNG, build, request, running_inbox, send

ROOT = Path(__file__).resolve().parents[2]


def test_list_get_and_search(inbox: Inbox) -> None:
    first = send(inbox, build("Invoice 42", sender="Billing <bill@shop.example>"))
    second = send(inbox, build("Welcome", to="Cy <cy@example.net>"), rcpt_tos=["cy@example.net"])
    listing = request(inbox, "GET", "/api/v1/messages")
    assert listing.status == 200 and listing.headers["Content-Type"] == "application/json"
    data = listing.json()
    assert (data["total"], data["count"]) == (2, 2)
    assert [m["id"] for m in data["messages"]] == [second, first]
    assert data["messages"][1]["from"] == "Billing <bill@shop.example>"
    assert data["messages"][0]["to"] == ["Cy <cy@example.net>"]

    def ids(query: str) -> List[str]:
        answer = request(inbox, "GET", "/api/v1/messages?query=" + query)
        return [m["id"] for m in answer.json()["messages"]]

    assert ids("from%3Abill") == [first]
    assert ids("to%3Acy%40") == [second]
    assert ids("subject%3Awelcome") == [second]
    assert ids("INVOICE") == [first]
    assert ids("nomatch") == []
    assert [m["id"] for m in request(inbox, "GET", "/api/v1/messages?limit=1").json()["messages"]] == [second]
    assert request(inbox, "GET", "/api/v1/messages?limit=0").status == 400
    assert request(inbox, "GET", "/api/v1/messages?limit=x").status == 400


def test_message_detail_parts_and_downloads(inbox: Inbox) -> None:
    id = send(
        inbox,
        build("Report", text="See attached.", html="<p>See <b>attached</b>.</p>",
              attachments=[('../../etc/"passwd".pdf', "application/pdf", b"%PDF-1.4 data")]),
        rcpt_tos=["bob@example.org", "cy@example.net"],
    )
    detail = request(inbox, "GET", "/api/v1/messages/" + id).json()
    assert detail["subject"] == "Report" and detail["text"] == "See attached.\n"
    assert detail["html"] == "<p>See <b>attached</b>.</p>\n"
    assert detail["envelope"]["rcpt_tos"] == ["bob@example.org", "cy@example.net"]
    assert detail["envelope"]["peer"][0] == "127.0.0.1"
    assert ["Subject", "Report"] in detail["headers"]
    (attachment,) = detail["attachments"]
    assert attachment["filename"] == '../../etc/"passwd".pdf' and attachment["size"] == 13

    download = request(inbox, "GET", attachment["url"])
    assert download.body == b"%PDF-1.4 data"
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"] == 'attachment; filename="etc_passwd_.pdf"'
    assert request(inbox, "GET", "/api/v1/messages/{}/parts/99".format(id)).status == 404

    html = request(inbox, "GET", detail["html_url"])
    assert html.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = html.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox;") and "default-src 'none'" in csp and "script-src" not in csp
    assert html.body == b"<p>See <b>attached</b>.</p>\n"

    raw = request(inbox, "GET", detail["raw_url"])
    assert raw.body.startswith(b"From: Ann <ann@example.com>\r\n") and b"\r\nSubject: Report\r\n" in raw.body
    assert raw.headers["X-Content-Type-Options"] == "nosniff"
    eml = request(inbox, "GET", detail["raw_url"] + "?download=1")
    assert eml.headers["Content-Disposition"] == 'attachment; filename="message-{}.eml"'.format(id)


def test_inline_images_become_data_urls(inbox: Inbox) -> None:
    html = '<p><img src="cid:logo@example.com" alt="logo"><img src="cid:missing@example.com"></p>'
    id = send(inbox, build("Logo", html=html, inline_images=[("logo@example.com", PNG)]))
    detail = request(inbox, "GET", "/api/v1/messages/" + id).json()
    assert detail["html"].startswith('<p><img src="cid:logo@example.com"')  # the API shows the message as sent
    (image,) = detail["attachments"]
    assert (image["content_type"], image["content_id"]) == ("image/png", "<logo@example.com>")
    framed = request(inbox, "GET", detail["html_url"]).body.decode()
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert framed == '<p><img src="{}" alt="logo"><img src="cid:missing@example.com"></p>\n'.format(data_url)


def test_plain_message_has_no_html(inbox: Inbox) -> None:
    id = send(inbox, build("Plain"))
    detail = request(inbox, "GET", "/api/v1/messages/" + id).json()
    assert (detail["html"], detail["html_url"], detail["attachments"]) == (None, None, [])
    assert request(inbox, "GET", "/api/v1/messages/{}/html".format(id)).status == 404


def test_delete_one_and_all(inbox: Inbox) -> None:
    first = send(inbox, build("one"))
    second = send(inbox, build("two"))
    assert request(inbox, "DELETE", "/api/v1/messages/" + first).status == 204
    assert request(inbox, "DELETE", "/api/v1/messages/" + first).status == 404
    assert request(inbox, "GET", "/api/v1/messages/" + first).status == 404
    assert request(inbox, "GET", "/api/v1/messages/" + second).status == 200
    assert request(inbox, "DELETE", "/api/v1/messages").status == 204
    assert request(inbox, "GET", "/api/v1/messages").json()["total"] == 0


@pytest.mark.parametrize("path", ["/api/v1/messages/abc", "/api/v1/messages/999", "/api/v1/messages/1/nope",
                                  "/api/v1/messages/-1", "/nothing", "/static/../web.py", "/api/v1/messages/999/raw"])
def test_bad_paths_are_404(inbox: Inbox, path: str) -> None:
    answer = request(inbox, "GET", path)
    assert answer.status == 404 and "error" in answer.json()


@pytest.mark.parametrize("method, path, allow", [
    ("POST", "/api/v1/messages", "DELETE, GET"),
    ("PUT", "/api/v1/messages/1", "DELETE, GET"),
    ("DELETE", "/api/v1/wait", "GET"),
    ("GET", "/api/v1/messages/1/release", "POST"),
    ("PATCH", "/", "GET"),
])
def test_wrong_methods_are_405(inbox: Inbox, method: str, path: str, allow: str) -> None:
    answer = request(inbox, method, path)
    assert (answer.status, answer.headers["Allow"]) == (405, allow)


def test_oversized_and_malformed_requests(inbox: Inbox) -> None:
    big = request(inbox, "POST", "/api/v1/messages/1/release", body=b"x" * (65 * 1024))
    assert big.status == 413 and big.headers["Connection"] == "close"
    assert request(inbox, "GET", "/api/v1/messages?query=" + "a" * 70000).status == 414
    chunked = request(inbox, "GET", "/api/v1/messages", headers={"Transfer-Encoding": "chunked"}, body=b"0\r\n\r\n")
    assert chunked.status == 411
    fields = "&".join("f{}=1".format(n) for n in range(50))
    assert request(inbox, "GET", "/api/v1/messages?" + fields).status == 400
    with socket.create_connection(("127.0.0.1", inbox.http_port), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-A: b\r\n" * 150 + b"\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 431 ")


def test_a_failing_view_answers_500_and_the_server_goes_on(inbox: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    id = send(inbox, build())

    def broken(message: object) -> None:
        raise RuntimeError("a parser bug")

    monkeypatch.setattr("smtpd_compat.inbox.views.detail", broken)
    failed = request(inbox, "GET", "/api/v1/messages/" + id)
    assert failed.status == 500 and failed.json() == {"error": "internal error (logged by the inbox)"}
    assert request(inbox, "GET", "/api/v1/messages").status == 200


def test_dns_rebinding_and_cross_site_writes_refused(inbox: Inbox) -> None:
    id = send(inbox, build())
    assert request(inbox, "GET", "/api/v1/messages", headers={"Host": "attacker.example:8025"}).status == 403
    assert request(inbox, "GET", "/api/v1/messages", headers={"Host": "localhost:1"}).status == 200
    cross = {"Origin": "http://attacker.example"}
    assert request(inbox, "DELETE", "/api/v1/messages/" + id, headers=cross).status == 403
    assert request(inbox, "DELETE", "/api/v1/messages", headers={"Sec-Fetch-Site": "cross-site"}).status == 403
    assert request(inbox, "GET", "/api/v1/messages/" + id).status == 200


def test_page_and_static_files_carry_strict_headers(inbox: Inbox) -> None:
    page = request(inbox, "GET", "/")
    assert page.status == 200 and b'<script src="/static/app.js" defer></script>' in page.body
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Referrer-Policy"] == "no-referrer"
    script = request(inbox, "GET", "/static/app.js")
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert b"innerHTML" not in script.body.replace(b"never through innerHTML", b"")
    assert request(inbox, "GET", "/static/style.css").headers["Content-Type"] == "text/css; charset=utf-8"


def test_wait_endpoint(inbox: Inbox) -> None:
    old = send(inbox, build("first report"))
    found = request(inbox, "GET", "/api/v1/wait?query=report&timeout=0")
    assert found.status == 200 and found.json()["id"] == old

    sender = threading.Thread(target=send, args=(inbox, build("second report")))
    sender.start()
    # after= skips what is stored: only the message the thread sends can answer.
    waited = request(inbox, "GET", "/api/v1/wait?query=subject%3Areport&timeout=30&after=" + old)
    sender.join(30)
    assert waited.status == 200 and waited.json()["subject"] == "second report"

    late = request(inbox, "GET", "/api/v1/wait?query=never&timeout=0.05")
    assert late.status == 408 and "error" in late.json()
    assert request(inbox, "GET", "/api/v1/wait?timeout=61").status == 400
    assert request(inbox, "GET", "/api/v1/wait?timeout=soon").status == 400


def test_server_sent_events(inbox: Inbox) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", inbox.http_port, timeout=30)
    connection.request("GET", "/api/v1/events")
    stream = connection.getresponse()
    assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"

    def next_event() -> Tuple[str, Dict[str, Any]]:
        lines: List[bytes] = []
        while True:
            line = stream.fp.readline()
            if line == b"\n" and lines:
                break
            if line.startswith((b"event:", b"data:")):
                lines.append(line)
        kind = lines[0].split(b":", 1)[1].strip().decode()
        return kind, json.loads(lines[1].split(b":", 1)[1])

    try:
        assert next_event() == ("ready", {"messages": 0})
        id = send(inbox, build("live"))
        kind, data = next_event()
        assert (kind, data["id"], data["subject"]) == ("added", id, "live")
        request(inbox, "DELETE", "/api/v1/messages/" + id)
        assert next_event() == ("deleted", {"id": id})
        request(inbox, "DELETE", "/api/v1/messages")
        assert next_event() == ("cleared", {"id": None})
    finally:
        connection.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine cannot bind ::1")
def test_ipv6_loopback() -> None:
    with Inbox(MessageStore(), ("::1", 0), ("::1", 0)) as inbox:
        assert inbox.url == "http://[::1]:{}/".format(inbox.http_port)
        connection = http.client.HTTPConnection("::1", inbox.http_port, timeout=30)
        connection.request("GET", "/api/v1/info")  # Host: [::1]:port, which the rebinding check allows
        answer = connection.getresponse()
        assert answer.status == 200
        assert json.loads(answer.read())["smtp"] == "[::1]:{}".format(inbox.smtp_port)
        connection.close()


def test_connections_are_bounded() -> None:
    inbox = Inbox(MessageStore(), ("127.0.0.1", 0), ("127.0.0.1", 0), max_connections=2)
    inbox.start()
    idle = [socket.create_connection(("127.0.0.1", inbox.http_port), timeout=30) for _ in range(2)]
    try:
        with socket.create_connection(("127.0.0.1", inbox.http_port), timeout=30) as third:
            assert third.recv(100).startswith(b"HTTP/1.1 503 ")
    finally:
        for sock in idle:
            sock.close()
        inbox.stop()


@pytest.fixture
def relay() -> Iterator[Tuple[MessageStore, Relay]]:
    """A second SMTP server standing in for the real one messages are released to."""
    store = MessageStore()
    controller = Controller(StoringHandler(store), hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield store, Relay("127.0.0.1", controller.port)
    finally:
        controller.stop()


def test_release_only_through_the_configured_relay(inbox: Inbox, relay: Tuple[MessageStore, Relay]) -> None:
    relay_store, address = relay
    id = send(inbox, build("Release me"))
    json_body = {"Content-Type": "application/json"}
    off = request(inbox, "POST", "/api/v1/messages/{}/release".format(id), b"{}", json_body)
    assert off.status == 403 and "--relay" in off.json()["error"]
    with running_inbox(relay=address) as released:
        id = send(released, build("Release me"))
        path = "/api/v1/messages/{}/release".format(id)
        elsewhere = json.dumps({"host": "192.0.2.1", "port": 25}).encode()
        assert request(released, "POST", path, elsewhere, json_body).status == 403
        assert request(released, "POST", path, b'{"to": []}', json_body).status == 400
        assert request(released, "POST", path, b'{"to": ["a@b\\r\\nRCPT TO:<c@d>"]}', json_body).status == 400
        assert request(released, "POST", path, b'{"to": ["x@y.org"]}', {"Content-Type": "text/plain"}).status == 415
        assert request(released, "POST", path, b"[1", json_body).status == 400
        done = request(released, "POST", path, b'{"to": ["carol@example.com"]}', json_body)
        assert done.status == 200
        assert done.json() == {"relay": "127.0.0.1:{}".format(address.port),
                               "to": ["carol@example.com"], "refused": {}}
        (arrived,) = relay_store.all()
        assert arrived.rcpt_tos == ("carol@example.com",) and arrived.subject == "Release me"
        assert request(released, "POST", path, b"", json_body).status == 200  # to the envelope's recipients
        assert relay_store.list()[0].rcpt_tos == ("bob@example.org",)


def _check(schema: Dict[str, Any], value: Any, document: Dict[str, Any], where: str) -> None:
    """Enough of JSON Schema for our document: $ref, type, nullable, required, properties, items."""
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if value is None:
        assert schema.get("nullable") or "type" not in schema, where + ": null"
        return
    kinds = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool}
    if "type" in schema:
        assert isinstance(value, kinds[schema["type"]]), "{}: {!r} is not {}".format(where, value, schema["type"])
    if schema.get("type") == "object":
        missing = set(schema.get("required", ())) - set(value)
        assert not missing, "{}: missing {}".format(where, missing)
        if "properties" in schema:
            undocumented = set(value) - set(schema["properties"])
            assert not undocumented, "{}: undocumented {}".format(where, undocumented)
            for name, sub in schema["properties"].items():
                if name in value:
                    _check(sub, value[name], document, where + "." + name)
    if schema.get("type") == "array" and "items" in schema:
        for index, item in enumerate(value):
            _check(schema["items"], item, document, "{}[{}]".format(where, index))


def test_openapi_describes_what_the_server_does(relay: Tuple[MessageStore, Relay]) -> None:
    """Every documented operation is called; every answer's status and body are as documented."""
    with running_inbox(relay=relay[1]) as inbox:
        document = request(inbox, "GET", "/api/v1/openapi.json").json()
        assert document["openapi"].startswith("3.")
        id = send(inbox, build("Spec", html="<p>x</p>", attachments=[("a.txt", "text/plain", b"abc")]))
        index = str(request(inbox, "GET", "/api/v1/messages/" + id).json()["attachments"][0]["index"])
        json_body = {"Content-Type": "application/json"}
        calls: List[Tuple[str, str, str, Optional[bytes], Dict[str, str]]] = [
            # (method, documented path, actual path, body, headers)
            ("get", "/api/v1/messages", "/api/v1/messages?query=spec&limit=5", None, {}),
            ("get", "/api/v1/messages", "/api/v1/messages?limit=0", None, {}),
            ("get", "/api/v1/messages/{id}", "/api/v1/messages/" + id, None, {}),
            ("get", "/api/v1/messages/{id}", "/api/v1/messages/999", None, {}),
            ("get", "/api/v1/messages/{id}/raw", "/api/v1/messages/{}/raw".format(id), None, {}),
            ("get", "/api/v1/messages/{id}/raw", "/api/v1/messages/999/raw", None, {}),
            ("get", "/api/v1/messages/{id}/html", "/api/v1/messages/{}/html".format(id), None, {}),
            ("get", "/api/v1/messages/{id}/parts/{index}", "/api/v1/messages/{}/parts/{}".format(id, index), None, {}),
            ("get", "/api/v1/messages/{id}/parts/{index}", "/api/v1/messages/{}/parts/99".format(id), None, {}),
            ("post", "/api/v1/messages/{id}/release", "/api/v1/messages/{}/release".format(id), b"{}", json_body),
            ("post", "/api/v1/messages/{id}/release", "/api/v1/messages/{}/release".format(id), b"{}", {}),
            ("get", "/api/v1/wait", "/api/v1/wait?query=spec&timeout=0", None, {}),
            ("get", "/api/v1/wait", "/api/v1/wait?query=never&timeout=0", None, {}),
            ("get", "/api/v1/info", "/api/v1/info", None, {}),
            ("get", "/api/v1/openapi.json", "/api/v1/openapi.json", None, {}),
            ("delete", "/api/v1/messages/{id}", "/api/v1/messages/" + id, None, {}),
            ("delete", "/api/v1/messages/{id}", "/api/v1/messages/" + id, None, {}),
            ("delete", "/api/v1/messages", "/api/v1/messages", None, {}),
        ]
        for method, template, path, body, headers in calls:
            answer = request(inbox, method.upper(), path, body, headers)
            documented = document["paths"][template][method]["responses"]
            assert str(answer.status) in documented, (method, path, answer.status)
            content = documented[str(answer.status)].get("content", {})
            media = answer.headers.get("Content-Type", "").split(";")[0]
            if answer.status != 204 and content:
                assert media in content, (method, path, media)
            if media == "application/json" and answer.status != 204:
                schema = content.get("application/json", {}).get("schema", {"type": "object"})
                _check(schema, answer.json(), document, "{} {}".format(method, path))
        # The event stream never ends, so only its start is read.
        connection = http.client.HTTPConnection("127.0.0.1", inbox.http_port, timeout=30)
        connection.request("GET", "/api/v1/events")
        stream = connection.getresponse()
        assert stream.headers["Content-Type"] in document["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"]
        connection.close()
        called = {(c[0], c[1]) for c in calls} | {("get", "/api/v1/events")}
        documented_operations = {(m, p) for p, ops in document["paths"].items() for m in ops if m != "parameters"}
        assert called == documented_operations


def _start_cli(*args: str) -> Tuple["subprocess.Popen[bytes]", SimpleNamespace]:
    process = subprocess.Popen(
        [sys.executable, "-m", "smtpd_compat.inbox", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert process.stdout is not None
    smtp_line = process.stdout.readline().decode()
    web_line = process.stdout.readline().decode()
    assert smtp_line.startswith("SMTP on 127.0.0.1:"), smtp_line
    assert web_line.startswith("Inbox on http://127.0.0.1:"), web_line
    ports = SimpleNamespace(smtp_port=int(smtp_line.rsplit(":", 1)[1]),
                            http_port=int(web_line.rstrip().rstrip("/").rsplit(":", 1)[1]))
    return process, ports


def _stop_cli(process: "subprocess.Popen[bytes]") -> None:
    process.send_signal(signal.SIGINT if os.name != "posix" else signal.SIGTERM)
    assert process.wait(30) == 0


@pytest.mark.skipif(os.name != "posix", reason="stops the command with SIGTERM")
def test_command_line_with_sqlite_survives_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "inbox.db")
    process, handle = _start_cli("--db", db, "--max-messages", "10")
    try:
        id = send(handle, build("Kept across restarts"))
    finally:
        _stop_cli(process)
    process, handle = _start_cli("--db", db)
    try:
        (kept,) = request(handle, "GET", "/api/v1/messages").json()["messages"]
        assert (kept["id"], kept["subject"]) == (id, "Kept across restarts")
        assert int(send(handle, build("next"))) > int(id)
    finally:
        _stop_cli(process)


def test_command_line_errors_and_exposure_warning(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in (["--smtp", "nowhere"], ["--http", "127.0.0.1:70000"], ["--max-bytes", "lots"]):
        with pytest.raises(SystemExit) as exit:
            inbox_main.main(bad)
        assert exit.value.code == 2
    errors = capsys.readouterr().err
    assert "expected HOST:PORT" in errors and "port 70000 is out of range" in errors and "expected a size" in errors
    assert inbox_main.address("[::1]:25") == ("::1", 25)
    assert inbox_main.size("64K") == 65536
    args = inbox_main._parser().parse_args(["--smtp", "0.0.0.0:1025"])
    inbox_main._warn_beyond_loopback(args)
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and "beyond loopback on 0.0.0.0" in warning
    inbox_main._warn_beyond_loopback(inbox_main._parser().parse_args([]))
    assert capsys.readouterr().err == ""
