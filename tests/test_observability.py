"""Structured logs: one JSON object per line with the request id, and no secrets in them."""

from __future__ import annotations

import json
import logging

from webtest import TestApp

from app.observability import redact
from app.services.users import UserService


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_production_logs_are_json_lines_with_the_request_id(app_factory, make_user, capsys, monkeypatch):
    app = app_factory(LOG_FORMAT="json")
    client = TestApp(app)

    def explode(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(UserService, "get_profile", explode)
    with app.app_context():
        email = "someone@example.com"
        app.injector.get(UserService).create_account(email, "a long password", "Someone", ["user"])
    token = client.post_json("/api/v1/auth/token", {"email": email, "password": "a long password"}).json
    client.get(
        "/api/v1/users/me",
        headers={"Authorization": f"Bearer {token['access_token']}", "X-Request-ID": "req-42"},
        status=500,
    )

    records = json_lines(capsys.readouterr().err)
    crash = next(r for r in records if r["level"] == "ERROR")
    assert crash["request_id"] == "req-42"
    assert crash["logger"] == "app.errors"
    assert crash["message"] == "unhandled error while serving the request"
    assert "RuntimeError: boom" in crash["exc_info"]
    assert set(crash) >= {"time", "level", "logger", "message", "request_id"}
    assert token["access_token"] not in json.dumps(records)


def test_secrets_in_any_log_message_are_masked(app_factory, capsys):
    app = app_factory(LOG_FORMAT="json")

    with app.test_request_context("/"):
        logging.getLogger("app.example").warning(
            "saw %s and %s at %s",
            "Authorization: Bearer abc.DEF-123",
            "dpt_Zm9vYmFy",
            "/api/v1/links/eyJ0b2tlbiI6MX0.sig",
        )

    (record,) = json_lines(capsys.readouterr().err)
    assert record["message"] == "saw Authorization: Bearer [redacted] and [redacted] at /api/v1/links/[redacted]"


def test_redaction_leaves_ordinary_text_alone():
    assert redact("GET /api/v1/uploads/123 200") == "GET /api/v1/uploads/123 200"


def test_secrets_in_tracebacks_are_masked_too(app_factory, capsys):
    app = app_factory(LOG_FORMAT="json")

    with app.test_request_context("/"):
        try:
            raise ValueError("bad header Authorization: Bearer abc.DEF-123")
        except ValueError:
            logging.getLogger("app.example").exception("failed")

    (record,) = json_lines(capsys.readouterr().err)
    assert "Bearer [redacted]" in record["exc_info"]
    assert "abc.DEF-123" not in json.dumps(record)
