"""Liveness and readiness probes."""

from __future__ import annotations

from webtest import TestApp

from app import create_app
from app.config import TestingConfig
from tests.helpers import S3_BUCKET, S3_SETTINGS


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


def test_readyz_answers_503_naming_the_store_when_its_bucket_cannot_be_reached(app_factory, s3_client):
    app = app_factory(**{**S3_SETTINGS, "S3_BUCKET": "no-such-bucket"})

    response = TestApp(app).get("/readyz", status=503)

    assert response.json["fields"] == {"storage": ["unavailable"]}


def test_readyz_leaves_nothing_in_the_bucket(app_factory, s3_client):
    testapp = TestApp(app_factory(**S3_SETTINGS))

    for _ in range(3):
        assert testapp.get("/readyz").json["checks"] == {"database": "ok", "storage": "ok"}

    assert s3_client.list_objects_v2(Bucket=S3_BUCKET).get("KeyCount", 0) == 0
