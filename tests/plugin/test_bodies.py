"""A body comes back from ``messages`` exactly as the sender's ``email`` made it, on both faces."""
from __future__ import annotations

from tests.plugin.conftest import RunPlugin

BODIES = '''
import smtplib
from email.message import EmailMessage

import pytest


@pytest.fixture(params=["smtp_server", "smtp_server_legacy"])
def server(request):
    return request.getfixturevalue(request.param)


def test_text_with_dot_lines_round_trips(server):
    sent = "Subject: dots\\r\\n\\r\\nHello\\r\\n.a dot line\\r\\n..two dots\\r\\n.\\r\\nend\\r\\n"
    with smtplib.SMTP(server.host, server.port) as client:
        client.sendmail("a@example.org", ["b@example.org"], sent)
    message = server.wait_for()
    assert message.get_content() == "Hello\\n.a dot line\\n..two dots\\n.\\nend\\n"
    assert message.envelope.raw == sent.encode()


def test_utf8_bodies_round_trip(server):
    text = "Grüße aus Köln ✓\\n.leading dot\\n"
    encoded = EmailMessage()
    encoded["Subject"] = "encoded"
    encoded.set_content(text)
    eight_bit = EmailMessage()
    eight_bit["Subject"] = "8bit"
    eight_bit.set_content(text, cte="8bit")
    with smtplib.SMTP(server.host, server.port) as client:
        client.send_message(encoded, "a@example.org", ["b@example.org"])
        client.send_message(eight_bit, "a@example.org", ["b@example.org"])
    assert [m.get_content() for m in server.messages] == [text, text]
    assert "8bit" == server.messages[1]["Content-Transfer-Encoding"]


def test_html_and_attachments_decode(server):
    message = EmailMessage()
    message["Subject"] = "parts"
    message.set_content("plain\\n")
    message.add_alternative("<p>html</p>\\n", subtype="html")
    message.get_payload()[1].add_related(b"\\x89PNG\\r\\n\\x1a\\n", "image", "png", cid="<logo>")
    data = b"line\\r\\nbinary\\x00\\xff\\r\\n"
    message.add_attachment(data, "application", "octet-stream", filename="data.bin")
    message.add_attachment("a,b\\r\\n1,2\\n", subtype="csv", filename="table.csv")
    with smtplib.SMTP(server.host, server.port) as client:
        client.send_message(message, "a@example.org", ["b@example.org"])
    received = server.wait_for()
    sent_parts, received_parts = list(message.walk()), list(received.walk())
    assert [p.get_content_type() for p in received_parts] == [p.get_content_type() for p in sent_parts]
    for sent_part, received_part in zip(sent_parts, received_parts):
        if not sent_part.is_multipart():
            assert received_part.get_content() == sent_part.get_content()
    assert received.get_body(("html",)).get_content() == "<p>html</p>\\n"
    [attachment] = [p for p in received.iter_attachments() if p.get_filename() == "data.bin"]
    assert attachment.get_content() == data
'''


def test_bodies_round_trip_on_both_faces(run_plugin: RunPlugin) -> None:
    run_plugin(BODIES).assert_outcomes(passed=6)
