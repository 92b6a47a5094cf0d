"""The OpenAPI 3 description of the inbox's JSON API (served at ``/api/v1/openapi.json``).

The tests walk every path here against a running inbox and check the answers'
shapes, so this stays what the server does.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

__all__ = ["openapi_document"]

Schema = Dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": "#/components/schemas/" + name}


def _object(required: Dict[str, Schema], optional: Optional[Dict[str, Schema]] = None) -> Schema:
    schema: Schema = {"type": "object", "properties": {**required, **(optional or {})}}
    if required:
        schema["required"] = sorted(required)
    return schema


STRING: Schema = {"type": "string"}
NULLABLE_STRING: Schema = {"type": "string", "nullable": True}
INTEGER: Schema = {"type": "integer"}
STRINGS: Schema = {"type": "array", "items": STRING}

SUMMARY_FIELDS: Dict[str, Schema] = {
    "id": STRING,
    "received": {"type": "string", "format": "date-time"},
    "size": INTEGER,
    "from": STRING,
    "to": STRINGS,
    "subject": STRING,
    "date": STRING,
    "mail_from": STRING,
    "rcpt_tos": STRINGS,
    "url": STRING,
}

SCHEMAS: Dict[str, Schema] = {
    "Error": _object({"error": STRING}),
    "MessageSummary": _object(SUMMARY_FIELDS),
    "MessageList": _object(
        {
            "total": INTEGER,
            "count": INTEGER,
            "messages": {"type": "array", "items": _ref("MessageSummary")},
        }
    ),
    "Attachment": _object(
        {
            "index": INTEGER,
            "filename": STRING,
            "content_type": STRING,
            "content_id": STRING,
            "size": INTEGER,
            "url": STRING,
        }
    ),
    "Envelope": _object(
        {
            "mail_from": STRING,
            "rcpt_tos": STRINGS,
            "mail_options": STRINGS,
            "rcpt_options": STRINGS,
            "peer": {"nullable": True, "description": "[host, port] or a socket path"},
        }
    ),
    "Message": _object(
        {
            **SUMMARY_FIELDS,
            "cc": STRINGS,
            "bcc": STRINGS,
            "reply_to": STRINGS,
            "message_id": STRING,
            "headers": {"type": "array", "items": {"type": "array", "items": STRING}},
            "text": NULLABLE_STRING,
            "text_truncated": {"type": "boolean"},
            "html": NULLABLE_STRING,
            "html_truncated": {"type": "boolean"},
            "html_url": NULLABLE_STRING,
            "raw_url": STRING,
            "attachments": {"type": "array", "items": _ref("Attachment")},
            "envelope": _ref("Envelope"),
        }
    ),
    "Info": _object(
        {
            "smtp": NULLABLE_STRING,
            "relay": NULLABLE_STRING,
            "messages": INTEGER,
            "bytes": INTEGER,
            "max_messages": {"type": "integer", "nullable": True},
            "max_bytes": {"type": "integer", "nullable": True},
        }
    ),
    "ReleaseRequest": _object(
        {},
        {"to": STRINGS, "host": STRING, "port": INTEGER},
    ),
    "ReleaseResult": _object(
        {
            "relay": STRING,
            "to": STRINGS,
            "refused": {"type": "object", "additionalProperties": {"type": "array"}},
        }
    ),
}


def _json(description: str, schema: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _error(description: str) -> Schema:
    return _json(description, "Error")


def _body(description: str, media_type: str, schema: Schema = STRING) -> Schema:
    return {"description": description, "content": {media_type: {"schema": schema}}}


NO_CONTENT: Schema = {"description": "done"}
NOT_FOUND = _error("no such message")
ID: Schema = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
QUERY: Schema = {
    "name": "query",
    "in": "query",
    "schema": STRING,
    "description": "words that must all match sender, recipients or subject (case-insensitive); "
    '`from:`, `to:`, `subject:` restrict a word to one field; "..." groups words',
}


def _param(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


PATHS: Dict[str, Schema] = {
    "/api/v1/messages": {
        "get": {
            "summary": "List messages, newest first",
            "parameters": [
                QUERY,
                _param(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                    "at most this many",
                ),
            ],
            "responses": {
                "200": _json("the messages", "MessageList"),
                "400": _error("bad parameter"),
            },
        },
        "delete": {"summary": "Delete every message", "responses": {"204": NO_CONTENT}},
    },
    "/api/v1/messages/{id}": {
        "parameters": [ID],
        "get": {
            "summary": "One message, parsed",
            "responses": {"200": _json("the message", "Message"), "404": NOT_FOUND},
        },
        "delete": {
            "summary": "Delete one message",
            "responses": {"204": NO_CONTENT, "404": NOT_FOUND},
        },
    },
    "/api/v1/messages/{id}/raw": {
        "parameters": [
            ID,
            _param("download", STRING, "any value: offer the source as a .eml download"),
        ],
        "get": {
            "summary": "The message source as received (after dot-unstuffing)",
            "responses": {"200": _body("the source", "text/plain"), "404": NOT_FOUND},
        },
    },
    "/api/v1/messages/{id}/html": {
        "parameters": [ID],
        "get": {
            "summary": "The HTML body, under a Content-Security-Policy that blocks scripts and remote loads",
            "responses": {
                "200": _body("the HTML part", "text/html"),
                "404": _error("no such message or no HTML"),
            },
        },
    },
    "/api/v1/messages/{id}/parts/{index}": {
        "parameters": [ID, {"name": "index", "in": "path", "required": True, "schema": INTEGER}],
        "get": {
            "summary": "Download an attachment (index from the message's attachments list)",
            "responses": {
                "200": _body(
                    "the decoded attachment",
                    "application/octet-stream",
                    {"type": "string", "format": "binary"},
                ),
                "404": _error("no such message or attachment"),
            },
        },
    },
    "/api/v1/messages/{id}/release": {
        "parameters": [ID],
        "post": {
            "summary": "Send the message on through the configured relay (--relay); to its envelope recipients by default",
            "requestBody": {"content": {"application/json": {"schema": _ref("ReleaseRequest")}}},
            "responses": {
                "200": _json("sent; recipients the relay refused are listed", "ReleaseResult"),
                "400": _error("bad request"),
                "403": _error("release is off, or host/port differ from the relay"),
                "404": NOT_FOUND,
                "415": _error("not JSON"),
                "502": _error("the relay failed"),
            },
        },
    },
    "/api/v1/wait": {
        "get": {
            "summary": "The newest matching message, waiting for one to arrive if none is stored",
            "parameters": [
                QUERY,
                _param(
                    "timeout",
                    {"type": "number", "minimum": 0, "maximum": 60, "default": 10},
                    "seconds to wait",
                ),
                _param(
                    "after",
                    {"type": "integer", "minimum": 0, "default": 0},
                    "only messages with a larger id",
                ),
            ],
            "responses": {
                "200": _json("the message", "Message"),
                "400": _error("bad parameter"),
                "408": _error("nothing matched in time"),
            },
        },
    },
    "/api/v1/events": {
        "get": {
            "summary": "Server-sent events: ready, added (a MessageSummary), deleted ({id}), cleared, overflow",
            "responses": {"200": _body("an event stream", "text/event-stream")},
        },
    },
    "/api/v1/info": {
        "get": {
            "summary": "Addresses, counts and caps",
            "responses": {"200": _json("the inbox", "Info")},
        },
    },
    "/api/v1/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.0 JSON"}},
        },
    },
}


def openapi_document() -> Dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "smtpd_compat inbox",
            "version": "1",
            "description": "Mail received by `python -m smtpd_compat.inbox`.",
        },
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }
