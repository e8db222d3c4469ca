"""Structured logs: one JSON object per line with the request id, one time format, no secrets,
and the same for the migrations `flask db upgrade` runs in production."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from webtest import TestApp

from app.observability import redact
from app.services.users import UserService

ROOT = Path(__file__).resolve().parent.parent
# ISO 8601 in UTC to the millisecond, with the zone: 2026-12-01T15:04:05.123+00:00
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def json_lines(text: str, logger: str | None = None) -> list[dict]:
    """The JSON log lines in `text` (only those of `logger`, if given)."""
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [record for record in records if logger in (None, record["logger"])]


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
    assert ISO_TIME.match(crash["time"])
    assert token["access_token"] not in json.dumps(records)


def test_third_party_warnings_are_json_lines_too(app_factory, capsys):
    app_factory(LOG_FORMAT="json")
    logging.getLogger("botocore.retries").warning("retrying %s", "PutObject")

    (record,) = json_lines(capsys.readouterr().err, "botocore.retries")
    assert record["message"] == "retrying PutObject"
    assert record["level"] == "WARNING"
    assert ISO_TIME.match(record["time"])


def test_secrets_in_any_log_message_are_masked(app_factory, capsys):
    app = app_factory(LOG_FORMAT="json")

    with app.test_request_context("/"):
        logging.getLogger("app.example").warning(
            "saw %s and %s at %s",
            "Authorization: Bearer abc.DEF-123",
            "dpt_Zm9vYmFy",
            "/api/v1/links/eyJ0b2tlbiI6MX0.sig",
        )

    (record,) = json_lines(capsys.readouterr().err, logger="app.example")
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

    (record,) = json_lines(capsys.readouterr().err, logger="app.example")
    assert "Bearer [redacted]" in record["exc_info"]
    assert "abc.DEF-123" not in json.dumps(record)


def test_text_logs_give_the_time_in_the_same_format(app_factory, capsys):
    app = app_factory(LOG_FORMAT="text")

    with app.test_request_context("/"):
        logging.getLogger("app.example").warning("something happened")

    (line,) = [line for line in capsys.readouterr().err.splitlines() if "something happened" in line]
    assert ISO_TIME.match(line.split(" ")[0])


def test_flask_db_upgrade_in_production_writes_only_json_lines(tmp_path):
    env = {
        **{name: value for name, value in os.environ.items() if name != "LOG_FORMAT"},
        "DEPOT_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": f"sqlite:///{tmp_path}/depot.sqlite3",
        "DATA_DIR": str(tmp_path),
        # Asks the app to log too: the admin cannot be created before the tables exist.
        "ADMIN_EMAIL": "admin@example.com",
        "ADMIN_PASSWORD": "a long password",
    }

    done = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "autoapp", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, not only those that look like JSON
    assert {"app.bootstrap", "alembic.runtime.migration"} <= {record["logger"] for record in records}
    assert any(record["message"].startswith("Running upgrade") for record in records)
    assert [record["time"] for record in records if not ISO_TIME.match(record["time"])] == []
