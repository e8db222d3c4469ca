"""Request ids and logging: every log line and every error body names the request it belongs to.

A client (or the proxy) may send `X-Request-ID` (kept when it is a short token of safe
characters); otherwise one is generated. The id is echoed in the response so a user can quote
it in a report. Log lines are JSON objects in production (LOG_FORMAT=json), one per line,
and every line of every log (the app's, gunicorn's access and error logs, alembic's and the
CLI's) gives its time the same way: ISO 8601 in UTC with milliseconds and the zone.

Nothing secret reaches a log line: a last filter masks bearer tokens, API tokens and share
link tokens in every message, whatever code wrote it.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Bearer credentials, personal API tokens and share-link tokens, wherever they appear.
_SECRETS = re.compile(r"(?i)(bearer\s+)[^\s\"',]+|\bdpt_[A-Za-z0-9_-]+|(/links/)[^\s\"'?/]+")


def redact(text: str) -> str:
    """`text` with every token-looking secret replaced by [redacted]."""
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or "") + "[redacted]", text)


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback (used by gunicorn's logs too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info:
            # Formatted now so the text can be masked; formatters print exc_text as given.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RequestContextFilter(RedactingFilter):
    """Adds `request_id` to every record, and masks secrets like RedactingFilter."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return super().filter(record)


def _assign_request_id() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _echo_request_id(response: Response) -> Response:
    if "request_id" in g:
        response.headers[REQUEST_ID_HEADER] = g.request_id
    return response


def iso_time(created: float) -> str:
    """A log line's time: ISO 8601 in UTC, to the millisecond, with its zone
    (2026-12-01T15:04:05.123+00:00)."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class IsoTimeFormatter(logging.Formatter):
    """A plain-text formatter that writes times as iso_time does."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        return iso_time(record.created)


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time (as iso_time), level, logger, message, then `fields`."""

    def __init__(self, *fields: str) -> None:
        super().__init__(
            "".join(f"{{{name}}}" for name in ("asctime", "levelname", "name", "message", *fields)),
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        return iso_time(record.created)


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonLineFormatter("request_id")
    return IsoTimeFormatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")


# The loggers Depot configures: its own, and those of the migrations `flask db` runs (whose
# lines would otherwise be alembic's plain text, from alembic.ini, even in production).
LOGGERS = ("app", "alembic", "flask_migrate")
# alembic logs every plugin it loads, at INFO, when imported: not news for an operator.
QUIET_LOGGERS = ("alembic.runtime.plugins",)


def configure_logging(app: Flask) -> None:
    """Log to stderr with the request id on each line, at the configured level and format."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(make_formatter(app.config["LOG_FORMAT"]))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(app.config["LOG_LEVEL"])
        logger.propagate = False
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Libraries' own warnings (botocore retries, urllib3 pools...) reach the root logger:
    # in production they must be JSON lines too, or a log collector chokes on them. The
    # handler of an earlier app (tests build many) is replaced, anything else left alone.
    root = logging.getLogger()
    handler.depot_handler = True
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "depot_handler", False)] + [handler]


def register_request_id(app: Flask) -> None:
    app.before_request(_assign_request_id)
    app.after_request(_echo_request_id)
