"""The one JSON error shape: unknown routes and methods, crashes, request ids."""

from __future__ import annotations

import logging

from app.services.users import UserService
from tests.helpers import bearer


def test_unknown_routes_are_json_404(testapp):
    response = testapp.get("/api/v1/nothing-here", status=404)

    assert response.content_type == "application/json"
    assert response.json["status"] == 404
    assert response.json["error"] == "not_found"


def test_wrong_methods_are_json_405_with_allow(testapp):
    response = testapp.delete("/api/v1/auth/token", status=405)

    assert response.json["error"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_a_crash_is_a_json_500_without_details_and_is_logged_with_the_request_id(
    testapp, make_user, login, monkeypatch, caplog
):
    headers = bearer(login(make_user()))

    def explode(*_args, **_kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(UserService, "get_profile", explode)
    logging.getLogger("app").propagate = True  # let caplog see the app's records
    with caplog.at_level(logging.ERROR, logger="app"):
        response = testapp.get("/api/v1/users/me", headers={**headers, "X-Request-ID": "trace-123"}, status=500)

    assert response.json == {
        "status": 500,
        "error": "internal_error",
        "message": "An unexpected error occurred; quote the request id when reporting it.",
        "fields": {},
        "request_id": "trace-123",
    }
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    record = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert record.request_id == "trace-123"
    assert "secret internal detail" in caplog.text


def test_request_ids_are_generated_or_echoed(testapp):
    generated = testapp.get("/healthz").headers["X-Request-ID"]
    echoed = testapp.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
    unsafe = testapp.get("/healthz", headers={"X-Request-ID": "x" * 500}).headers["X-Request-ID"]

    assert len(generated) == 32
    assert echoed == "abc-123"
    assert unsafe != "x" * 500


def test_no_pooled_connection_in_time_is_a_json_503_without_details(testapp, make_user, login, monkeypatch):
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    headers = bearer(login(make_user()))

    def pool_exhausted(*_args, **_kwargs):
        raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 3.00")

    monkeypatch.setattr(UserService, "get_profile", pool_exhausted)
    response = testapp.get("/api/v1/users/me", headers=headers, status=503)

    assert response.json["error"] == "unavailable"
    assert "QueuePool" not in response.text
