"""gunicorn.conf.py's logger: JSON lines for gunicorn's own log and access log, secrets masked."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config as GunicornConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def gunicorn_logger(monkeypatch, tmp_path):
    """The JsonLogger of gunicorn.conf.py, set up as gunicorn would, writing to
    tmp_path/error.log and tmp_path/access.log (instead of stderr and stdout)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # loading the file must not set it
    settings: dict = {}
    exec(compile((ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), settings)  # noqa: S102
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
