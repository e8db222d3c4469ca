"""The engine options of app/database.py. (Their deadlines against a real PostgreSQL:
integration-tests/test_database_deadlines.py, and with the server stopped under gunicorn:
integration-tests/test_hung_database.py; SQLite's one connection under gevent:
integration-tests/test_sqlite_under_gevent.py.)"""

from __future__ import annotations

import psycopg
import pytest

from app import database
from app.config import TestingConfig
from app.database import POOL_OVERFLOW, POOL_SIZE, RoundTripTimeout, engine_options

PG = "postgresql+psycopg://depot:secret@db.example/depot"


def test_postgresql_waits_for_a_pooled_connection_only_as_long_as_for_an_answer():
    assert engine_options(PG, 3) == {
        "pool_pre_ping": True,
        "pool_size": POOL_SIZE,
        "max_overflow": POOL_OVERFLOW,
        "pool_timeout": 3,
    }


@pytest.mark.parametrize("gevent", [False, True])
def test_sqlite_in_memory_keeps_flask_sqlalchemys_single_static_connection(monkeypatch, gevent):
    monkeypatch.setattr(database, "gevent_active", lambda: gevent)

    assert engine_options("sqlite://", 3) == {"pool_pre_ping": True}


def test_a_sqlite_file_has_one_connection_per_worker_under_gevent(monkeypatch):
    monkeypatch.setattr(database, "gevent_active", lambda: True)

    options = engine_options("sqlite:////var/depot/depot.sqlite3", 3)

    assert (options["pool_size"], options["max_overflow"]) == (1, 0)


def test_a_sqlite_file_keeps_a_connection_per_thread_otherwise(monkeypatch):
    monkeypatch.setattr(database, "gevent_active", lambda: False)

    assert engine_options("sqlite:////var/depot/depot.sqlite3", 3) == {"pool_pre_ping": True}


def test_psycopgs_private_wait_timeout_is_still_there():
    # DeadlineConnection catches it (psycopg is pinned; this fails first if it moves).
    assert issubclass(psycopg.errors._WaitTimeout, psycopg.OperationalError)
    assert issubclass(RoundTripTimeout, psycopg.OperationalError)  # mapped to 503 by app/errors.py


def test_the_timeout_is_a_setting_of_its_own():
    assert TestingConfig({}).DATABASE_TIMEOUT_SECONDS == 3
    assert TestingConfig({"DATABASE_TIMEOUT_SECONDS": "5"}).DATABASE_TIMEOUT_SECONDS == 5


@pytest.mark.parametrize("value", ["0", "-1"])
def test_the_timeout_must_be_positive(value):
    config = TestingConfig({"DATABASE_TIMEOUT_SECONDS": value})

    assert f"DATABASE_TIMEOUT_SECONDS must be more than 0, got {value}" in config.conflicts()
