"""The database deadlines of app/database.py against a real PostgreSQL, in a plain threaded
process (gunicorn's gthread worker, the development server, the CLI): a round trip that
outlasts DATABASE_TIMEOUT_SECONDS fails within it, its connection is closed and never handed
out again, and the next request gets a working one. (The gevent worker, with the whole server
stopped: test_hung_database.py.)"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from app.database import RoundTripTimeout, bound_waits, engine_options

DEADLINE = 0.5


@pytest.fixture
def engine(database_url):
    engine = create_engine(database_url, **engine_options(database_url, DEADLINE))
    bound_waits(engine, DEADLINE)
    yield engine
    engine.dispose()


def test_a_round_trip_longer_than_the_deadline_fails_within_it(engine):
    with engine.connect() as connection:
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        began = time.monotonic()
        with pytest.raises(OperationalError) as failed:
            connection.execute(text("SELECT pg_sleep(5)"))
        waited = time.monotonic() - began

    assert DEADLINE <= waited < DEADLINE + 1.0, waited
    assert isinstance(failed.value.orig, RoundTripTimeout)
    assert failed.value.connection_invalidated  # closed mid-protocol: never back in the pool
    with engine.connect() as connection:  # a new connection, which works
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar() != backend


def test_a_commit_is_bounded_too(engine):
    with engine.connect() as connection:
        connection.execute(text("CREATE TEMPORARY TABLE t (x int)"))
        connection.execute(
            text(
                "CREATE FUNCTION pg_temp.slow() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED "
                "FOR EACH ROW EXECUTE FUNCTION pg_temp.slow()"
            )
        )
        connection.commit()
        connection.execute(text("INSERT INTO t VALUES (1)"))
        began = time.monotonic()
        with pytest.raises(OperationalError):
            connection.commit()  # the deferred trigger runs in COMMIT
        assert time.monotonic() - began < DEADLINE + 1.0


def test_the_deadline_applies_to_the_url_of_the_configured_app(database_url):
    from app import create_app
    from app.config import TestingConfig
    from app.extensions import db

    app = create_app(TestingConfig({"DATABASE_URL": database_url, "DATABASE_TIMEOUT_SECONDS": "1"}))
    with app.app_context():
        began = time.monotonic()
        with pytest.raises(OperationalError):
            db.session.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - began < 2.0
        db.session.rollback()
        assert db.session.execute(text("SELECT 1")).scalar() == 1


def test_a_slow_promotion_does_not_hold_up_the_same_accounts_other_uploads(fresh_database_url, tmp_path):
    """An upload's promotion (on S3 a server-side copy, seconds for a large file) must not run
    while it holds its owner's row lock: another upload of the same account waits for that lock,
    and a wait longer than DATABASE_TIMEOUT_SECONDS would be refused as a hung database (503),
    after its whole body was received. Here the promotion is made slow (2 s, the deadline 1 s)."""
    import threading

    from flask_migrate import upgrade
    from webtest import TestApp

    from app import create_app
    from app.config import TestingConfig
    from app.services.users import UserService
    from app.storage.base import FileStore

    app = create_app(
        TestingConfig({"DATABASE_URL": fresh_database_url, "DATABASE_TIMEOUT_SECONDS": "1", "DATA_DIR": str(tmp_path)})
    )
    with app.app_context():
        upgrade()
        app.injector.get(UserService).create_account("slow@example.com", "correct horse battery", "S", ["uploader"])
        store = app.injector.get(FileStore)
    client = TestApp(app)
    token = client.post_json(
        "/api/v1/auth/token", {"email": "slow@example.com", "password": "correct horse battery"}
    ).json["access_token"]

    promote, first = store.promote, threading.Event()

    def slow_promote(staged, key):
        if not first.is_set():
            first.set()
            time.sleep(2)
        promote(staged, key)

    store.promote = slow_promote
    statuses: list[int] = []

    def upload(name: str) -> None:
        response = TestApp(app).put(
            f"/api/v1/uploads/{name}",
            b"x" * 1024,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
            expect_errors=True,
        )
        statuses.append(response.status_int)

    slow = threading.Thread(target=upload, args=("slow.txt",))
    slow.start()
    assert first.wait(10)
    time.sleep(0.2)  # the slow one is inside its promotion
    upload("quick.txt")
    slow.join(30)
    assert sorted(statuses) == [201, 201]
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()
