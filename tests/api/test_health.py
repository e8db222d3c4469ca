"""Liveness and readiness probes."""

from __future__ import annotations

from webtest import TestApp

from app import create_app
from app.config import TestingConfig


def test_healthz_answers_while_the_process_is_up(testapp):
    assert testapp.get("/healthz").json == {"status": "ok"}


def test_readyz_answers_200_when_the_database_answers(testapp):
    assert testapp.get("/readyz").json == {"status": "ok", "checks": {"database": "ok", "storage": "ok"}}


def test_readyz_answers_503_with_a_reason_when_the_database_does_not(tmp_path):
    missing = tmp_path / "no-such-folder" / "depot.sqlite3"
    app = create_app(TestingConfig({"DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{missing}"}))

    response = TestApp(app).get("/readyz", status=503)

    assert response.json["error"] == "unavailable"
    assert response.json["fields"] == {"database": ["unavailable"]}
    assert str(missing) not in response.text
