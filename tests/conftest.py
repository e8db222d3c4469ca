"""Fixtures for the in-process suite: a Depot app per test on SQLite in a temporary folder,
migrated with the real migrations, driven through WebTest with the real transaction manager."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import upgrade
from moto import mock_aws
from webtest import TestApp

from app import create_app
from app.config import TestingConfig
from app.cooperative import gevent_active
from app.extensions import db
from app.models import User
from app.services.users import UserService
from app.storage.s3_client import make_client
from tests.helpers import PASSWORD, S3_BUCKET, bearer, png_bytes

_emails = itertools.count(1)


@pytest.fixture(autouse=True)
def _the_test_process_stays_unpatched():
    """Reading gunicorn.conf.py here must not apply gevent's monkey patches to pytest itself
    (tests.helpers.exec_gunicorn_conf records them instead): every later test would run on
    greenlets. Checked after each test, so the one that did it fails."""
    yield
    assert not gevent_active(), "this test applied gevent's monkey patches to the test process"


@pytest.fixture
def app_factory(tmp_path) -> Callable[..., Flask]:
    """Builds migrated apps on one SQLite file in tmp_path; keyword args override settings."""
    apps: list[Flask] = []

    def build(**settings: str) -> Flask:
        environ = {"DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/depot.sqlite3", **settings}
        app = create_app(TestingConfig(environ))
        with app.app_context():
            upgrade()
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def s3_client():
    """A boto3 S3 client on moto's in-process S3 (no network) holding the bucket S3_BUCKET.

    Apps built while it is active with S3_SETTINGS store their files there."""
    with mock_aws():
        client = make_client(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        client.create_bucket(Bucket=S3_BUCKET)
        yield client


@pytest.fixture
def app(app_factory) -> Flask:
    """A Depot app with the testing config on a fresh, migrated SQLite database."""
    return app_factory()


@pytest.fixture
def testapp(app) -> TestApp:
    """WebTest client for `app`."""
    return TestApp(app)


@pytest.fixture
def make_user(app) -> Callable[..., User]:
    """Creates a user through UserService: make_user(roles=["uploader"], active=False, email=...)."""

    def make(roles=("user",), active=True, email=None, password=PASSWORD, name="Test User") -> User:
        email = email or f"user{next(_emails)}@example.com"
        with app.app_context():
            service = app.injector.get(UserService)
            user = service.create_account(email, password, name, roles)
            if not active:
                with service.tm:
                    service.session.get(User, user.id).active = False
                user.active = False
        return user

    return make


@pytest.fixture
def login(testapp) -> Callable[[User], str]:
    """Logs a user in over the API and returns the session token."""

    def do_login(user: User, password: str = PASSWORD) -> str:
        response = testapp.post_json("/api/v1/auth/token", {"email": user.email, "password": password})
        return response.json["access_token"]

    return do_login


@pytest.fixture
def admin(make_user) -> User:
    """An active admin."""
    return make_user(roles=["admin"])


@pytest.fixture
def admin_headers(admin, login) -> dict[str, str]:
    """Authorization headers of a logged-in admin."""
    return bearer(login(admin))


@pytest.fixture
def uploader(make_user) -> User:
    """An active user with the uploader role."""
    return make_user(roles=["uploader"])


@pytest.fixture
def uploader_headers(uploader, login) -> dict[str, str]:
    """Authorization headers of a logged-in uploader."""
    return bearer(login(uploader))


@pytest.fixture
def uploader_on(app_factory) -> Callable[..., tuple[TestApp, dict[str, str]]]:
    """An app built with other settings and a logged-in uploader on it: uploader_on(KEY="value")."""

    def build(**settings: str) -> tuple[TestApp, dict[str, str]]:
        app = app_factory(**settings)
        client = TestApp(app)
        email = f"user{next(_emails)}@example.com"
        with app.app_context():
            app.injector.get(UserService).create_account(email, PASSWORD, "Uploader", ["uploader"])
        token = client.post_json("/api/v1/auth/token", {"email": email, "password": PASSWORD})
        return client, bearer(token.json["access_token"])

    return build


@pytest.fixture
def upload(testapp) -> Callable:
    """Posts a multipart upload: upload(headers, name, data, status=201, **fields) -> response."""

    def post(headers, name="picture.png", data=None, status=201, content_type=None, **fields):
        data = png_bytes() if data is None else data
        file = (name, data, content_type) if content_type else (name, data)
        return testapp.post("/api/v1/uploads", fields, upload_files=[("file", *file)], headers=headers, status=status)

    return post


@pytest.fixture
def disk(app) -> Callable[[], dict[str, list[str]]]:
    """Lists the file store on disk: disk() -> {"objects": [...keys], "staging": [...ids]}."""
    root = Path(app.config["UPLOAD_DIR"])

    def listing() -> dict[str, list[str]]:
        return {
            "objects": sorted(p.name for p in (root / "objects").glob("*/*")),
            "staging": sorted(p.name for p in (root / "staging").iterdir()),
        }

    return listing


@pytest.fixture
def fetch(app) -> Callable:
    """Reads database state in a fresh app context: fetch(lambda session: session.get(User, id))."""

    def run(query: Callable):
        with app.app_context():
            result = query(db.session)
            # Detach the results first: ending the context rolls back, which would expire them.
            db.session.expunge_all()
            return result

    return run
