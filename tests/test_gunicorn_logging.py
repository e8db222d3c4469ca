"""gunicorn.conf.py's logger: JSON lines for gunicorn's own log and access log, secrets masked,
one time format, and the bytes of every kind of download counted (over a real gunicorn)."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from gunicorn.config import Config as GunicornConfig
from processes import BIN, Gunicorn, wait_until

from tests.helpers import PASSWORD, exec_gunicorn_conf, png_bytes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def gunicorn_logger(monkeypatch, tmp_path):
    """The JsonLogger of gunicorn.conf.py, set up as gunicorn would, writing to
    tmp_path/error.log and tmp_path/access.log (instead of stderr and stdout)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # loading the file must not set it
    settings, _ = exec_gunicorn_conf()
    config = GunicornConfig()
    config.set("accesslog", str(tmp_path / "access.log"))
    config.set("errorlog", str(tmp_path / "error.log"))
    logger = settings["JsonLogger"](config)
    yield logger
    for handler in logger.error_log.handlers + logger.access_log.handlers:
        handler.close()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_gunicorns_error_log_is_json_and_masks_tokens_in_messages_and_tracebacks(gunicorn_logger, tmp_path):
    try:
        raise RuntimeError("while sending /api/v1/links/eyJsaW5rIjoxfQ.c2ln")
    except RuntimeError:
        gunicorn_logger.exception("Error handling request GET /api/v1/links/eyJsaW5rIjoxfQ.c2ln")

    (record,) = lines(tmp_path / "error.log")
    assert record["level"] == "ERROR"
    assert record["message"] == "Error handling request GET /api/v1/links/[redacted]"
    assert "RuntimeError: while sending /api/v1/links/[redacted]" in record["exc_info"]
    assert "eyJsaW5rIjoxfQ" not in (tmp_path / "error.log").read_text()


def test_access_lines_carry_the_request_id_and_mask_link_tokens(gunicorn_logger, tmp_path):
    response = SimpleNamespace(headers=[("X-Request-ID", "req-7")], status_code=200, sent=42)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/v1/links/eyJsaW5rIjoxfQ.c2ln",
        "REMOTE_ADDR": "10.0.0.2",
        "HTTP_AUTHORIZATION": "Bearer very-secret",
    }

    gunicorn_logger.access(response, None, environ, timedelta(milliseconds=12))

    (record,) = lines(tmp_path / "access.log")
    assert record["request_id"] == "req-7"
    assert record["path"] == "/api/v1/links/[redacted]"
    assert (record["method"], record["status"], record["bytes_sent"], record["duration_ms"]) == ("GET", 200, 42, 12.0)
    assert "very-secret" not in (tmp_path / "access.log").read_text()


# --- over a real gunicorn -----------------------------------------------------------------

ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
FILE_BYTES = 300_000  # larger than any socket buffer, so a miscount cannot hide


@pytest.fixture(scope="module")
def depot_under_gunicorn(tmp_path_factory):
    """Depot under gunicorn.conf.py in production settings (SQLite, local files), migrated by
    `flask db upgrade`, its admin created on first start: (the Gunicorn, the admin's headers)."""
    folder = tmp_path_factory.mktemp("gunicorn-logs")
    env = {
        **os.environ,
        "DEPOT_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": f"sqlite:///{folder}/depot.sqlite3",
        "DATA_DIR": str(folder / "data"),
        "ADMIN_EMAIL": "admin@example.com",
        "ADMIN_PASSWORD": PASSWORD,
    }
    done = subprocess.run(
        [str(BIN / "flask"), "db", "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    server = Gunicorn("depot", env, folder, workers=1, threads=2)
    try:
        token = requests.post(
            f"{server.url}/api/v1/auth/token", json={"email": "admin@example.com", "password": PASSWORD}, timeout=10
        ).json()["access_token"]
        yield server, {"Authorization": f"Bearer {token}"}
    finally:
        server.stop()


def access_record(server: Gunicorn, request_id: str) -> dict:
    """The access-log line of the request with this X-Request-ID (gunicorn writes it just after answering)."""

    def find():
        return [
            r for r in lines_of(server.log()) if r.get("logger") == "gunicorn.access" and r["request_id"] == request_id
        ]

    records = wait_until(find)
    assert records, f"no access-log line for {request_id}"
    return records[0]


def lines_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_bytes_sent_counts_every_kind_of_download(depot_under_gunicorn):
    server, headers = depot_under_gunicorn
    api = f"{server.url}/api/v1"
    body = png_bytes(FILE_BYTES)
    upload = requests.put(
        f"{api}/uploads/big.png", data=body, headers={**headers, "Content-Type": "image/png"}, timeout=30
    ).json()
    link = requests.post(f"{api}/uploads/{upload['id']}/links", json={}, headers=headers, timeout=10).json()
    content = f"{api}/uploads/{upload['id']}/content"
    etag = requests.head(content, headers=headers, timeout=10).headers["ETag"]
    cases = {
        "full": (requests.get, content, {}, 200, FILE_BYTES),
        "range": (requests.get, content, {"Range": "bytes=100-1099"}, 206, 1000),
        "suffix range": (requests.get, content, {"Range": "bytes=-10"}, 206, 10),
        "head": (requests.head, content, {}, 200, 0),
        "not modified": (requests.get, content, {"If-None-Match": etag}, 304, 0),
        "share link": (requests.get, link["url"], {}, 200, FILE_BYTES),
    }

    for name, (send, url, extra, status, size) in cases.items():
        request_id = f"bytes-{name.replace(' ', '-')}-{uuid.uuid4().hex[:8]}"
        response = send(url, headers={**headers, **extra, "X-Request-ID": request_id}, timeout=30)
        assert response.status_code == status, name
        assert len(response.content) == size, name

        record = access_record(server, request_id)

        assert (record["status"], record["bytes_sent"]) == (status, size), name


def test_a_request_gunicorn_refuses_is_a_400_with_its_access_line(depot_under_gunicorn):
    server, _headers = depot_under_gunicorn
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        # Both framings at once: gunicorn refuses the request before the app sees it.
        connection.sendall(
            b"PATCH /api/v1/tus/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        answer = connection.recv(4096)

    assert answer.startswith(b"HTTP/1.1 400")
    records = wait_until(
        lambda: [r for r in lines_of(server.log()) if r.get("logger") == "gunicorn.access" and r["status"] == 400]
    )
    assert records and records[-1]["method"] == "PATCH"


def test_every_line_gunicorn_and_the_app_write_is_json_with_one_time_format(depot_under_gunicorn):
    server, _headers = depot_under_gunicorn
    request_id = f"last-{uuid.uuid4().hex[:8]}"
    requests.get(f"{server.url}/healthz", headers={"X-Request-ID": request_id}, timeout=10)
    access_record(server, request_id)
    server.stop()  # gunicorn's shutdown lines too

    records = lines_of(server.log())  # its stdout and stderr: every line must parse

    # gunicorn's own log, its access log, and the app's (the first start created the admin).
    assert {"gunicorn.error", "gunicorn.access", "app.bootstrap"} <= {record["logger"] for record in records}
    assert [record["time"] for record in records if not ISO_TIME.match(record["time"])] == []
