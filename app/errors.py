"""The one place where errors become HTTP responses, all with the same JSON shape:

    {"status": 422, "error": "validation_failed", "message": "...", "fields": {...}}

Domain exceptions map to statuses here; Werkzeug's HTTP errors (404, 405, 413, the 422 that
webargs raises for schema failures, Flask-Limiter's 429) get the same shape, and anything
unexpected becomes a 500 whose body carries only the request id, never a stack trace.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, g, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from app import exceptions as exc
from app.storage.base import StorageError

log = logging.getLogger(__name__)

STATUS: dict[type[exc.DepotError], int] = {
    exc.Malformed: 400,
    exc.BodyTimeout: 408,
    exc.Invalid: 422,
    exc.AuthenticationFailed: 401,
    exc.Forbidden: 403,
    exc.NotFound: 404,
    exc.Conflict: 409,
    exc.Gone: 410,
    exc.TusVersionUnsupported: 412,
    exc.Locked: 423,
    exc.ChecksumMismatch: 460,
    exc.TooLarge: 413,
    exc.Unsupported: 415,
    exc.TooManyUploads: 429,
    exc.Unavailable: 503,
}

# Codes for Werkzeug's HTTP errors; anything else falls back to a slug of its name.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def error_response(status: int, code: str, message: str, fields: dict | None = None) -> Response:
    """Build the JSON error response every failure in the API uses."""
    body = {"status": status, "error": code, "message": message, "fields": fields or {}}
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="depot"'
    return response


def _status_for(error: exc.DepotError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def handle_domain_error(error: exc.DepotError) -> Response:
    # A BodyTimeout or a TooManyUploads leaves its body unread: app.keepalive closes the
    # connection after it (or drains a small body first).
    response = error_response(_status_for(error), error.code, error.message, error.fields)
    if isinstance(error, exc.TooManyUploads):
        response.headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, exc.TusVersionUnsupported):
        response.headers["Tus-Version"] = error.supported
    return response


def _flatten_webargs_messages(messages: dict) -> dict:
    """webargs nests messages by location ({"json": {"email": [...]}}); clients want fields."""
    fields: dict = {}
    for location_messages in messages.values():
        if isinstance(location_messages, dict):
            fields.update(location_messages)
        else:
            fields.setdefault("_schema", []).extend(location_messages)
    return fields


def _route_without_trailing_slash() -> str | None:
    """The path minus its trailing slash(es), when a route answers this method there."""
    path = request.path
    if request.url_rule is not None or path == "/" or not path.endswith("/"):
        return None
    candidate = path.rstrip("/")
    try:
        endpoint, _ = current_app.url_map.bind_to_environ(request.environ).match(candidate, method=request.method)
    except HTTPException:  # no route there either (or not for this method)
        return None
    if getattr(current_app.view_functions.get(endpoint), "only_answers_404", False):
        return None  # e.g. /api/v1/uploads/not-a-uuid/
    return request.script_root + candidate


def handle_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    code = HTTP_CODES.get(status, (error.name or "error").lower().replace(" ", "_"))
    data = getattr(error, "data", None) or {}
    fields = _flatten_webargs_messages(data["messages"]) if "messages" in data else None
    message = error.description or error.name
    if status == 404 and (route := _route_without_trailing_slash()):
        message = f"No such route; did you mean {route}?"
    elif status == 422:
        message = "The request body or parameters are invalid."
    elif isinstance(error, RateLimitExceeded):
        # Flask-Limiter's description is the limit alone ("10 per 1 minute"); Retry-After says when.
        message = f"Too many requests: at most {message}."
    elif fields and set(fields) == {"_schema"}:
        # A message about the body as a whole (not valid JSON, nested too deeply).
        message = " ".join(fields.pop("_schema"))
    response = error_response(status, code, message, fields)
    # Keep headers the error carries (Allow on 405, Retry-After on 429).
    for name, value in error.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def handle_database_unavailable(error: Exception) -> Response:
    # Connection-level failures (server down, restarting, network, no answer in time, no
    # pooled connection free in time: app/database.py) are an outage, not a bug.
    log.error("database unavailable: %s", error.__class__.__name__)
    return error_response(503, "unavailable", "The database is not answering; try again shortly.")


def handle_storage_error(error: Exception) -> Response:
    # The file store failed (disk full, I/O error); the transaction was aborted, nothing kept.
    log.error("file store failure: %s", error)
    return error_response(503, "unavailable", "The file store failed; nothing was stored. Try again shortly.")


def handle_unexpected_error(error: Exception) -> Response:
    log.exception("unhandled error while serving the request")
    return error_response(
        500, "internal_error", "An unexpected error occurred; quote the request id when reporting it."
    )


def register_error_handlers(app: Flask) -> None:
    """Route every error the app can raise through the JSON shape above."""
    app.register_error_handler(exc.DepotError, handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(InterfaceError, handle_database_unavailable)
    app.register_error_handler(PoolTimeout, handle_database_unavailable)
    app.register_error_handler(StorageError, handle_storage_error)
    app.register_error_handler(Exception, handle_unexpected_error)
