"""The database engine's options, and the bounds on every wait for the database.

Why: a database server that hangs instead of refusing (stopped with SIGSTOP, a frozen VM, a
path that drops packets) would otherwise hold each request that touches it for ever. The
kernel of a stopped server still accepts connections and acknowledges what is sent, so TCP
keepalives and TCP_USER_TIMEOUT never fire: only the client can put a deadline on waiting.
So, on PostgreSQL (psycopg 3):

- a new connection waits at most CONNECT_TIMEOUT_SECONDS (libpq's connect_timeout; 2 s is
  the least it takes, and a healthy server answers in milliseconds);
- every round trip on an open connection (a query, COMMIT, ROLLBACK, the pool's pre-ping)
  waits at most DATABASE_TIMEOUT_SECONDS (`DeadlineConnection.wait`, psycopg's one waiting
  point). On expiry the connection is mid-protocol and unusable: it is closed, so SQLAlchemy
  sees a disconnect, invalidates it (never reused) and replaces the pool's older connections
  too, and the request gets the usual JSON 503 (app/errors.py);
- a request waits at most DATABASE_TIMEOUT_SECONDS for a connection from a full pool.

The two-phase commit needs nothing more: zope.sqlalchemy commits the session with a plain
COMMIT in its tpc_vote (no PREPARE TRANSACTION), one round trip bounded like the others, and
the file store's answer to a failed commit asks on fresh, equally bounded, connections.
A request that needs the database therefore fails within a few such waits: a round trip, a
reconnection, and for a cut COMMIT two more connection attempts (about 7 s by default).

A round trip legitimately longer than DATABASE_TIMEOUT_SECONDS (a lock held that long by
another transaction) fails too: Depot's queries take milliseconds, so the default is ample.

SQLite (development, and the embedded default) cannot hang this way, but under gevent every
request of a worker shares one OS thread, and SQLite waits for its lock by blocking that
thread: a request waiting to write would stop the very request holding the lock, until the
busy timeout fails it. So under gevent a worker has one SQLite connection, and a request
waits for it cooperatively, as greenlets wait for anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from app.cooperative import gevent_active

CONNECT_TIMEOUT_SECONDS = 2
# SQLAlchemy's QueuePool defaults, named because the tests bound connections by them.
POOL_SIZE, POOL_OVERFLOW = 5, 10
# A wait for SQLite's one connection under gevent: requests queue behind each other's short
# transactions there, with no server that could hang; SQLAlchemy's default.
SQLITE_POOL_TIMEOUT_SECONDS = 30

# What psycopg's wait raises when its timeout expires (private, so pinned by a test).
_WaitTimeout = pg_errors._WaitTimeout


class RoundTripTimeout(psycopg.OperationalError):
    """The database did not answer one round trip in time; the connection was closed."""


class DeadlineConnection(psycopg.Connection):
    """A psycopg connection whose every round trip gives up after `round_trip_timeout`."""

    round_trip_timeout: float = 3.0

    def wait(self, gen, interval: float = 0.1, timeout: float | None = None):
        limit = self.round_trip_timeout if timeout is None else min(timeout, self.round_trip_timeout)
        try:
            return super().wait(gen, interval, limit)
        except _WaitTimeout:
            # Half a request sent or half an answer read: nothing can be said on it any more.
            self.close()
            raise RoundTripTimeout(f"the database did not answer within {limit:g} s") from None


def engine_options(database_uri: str, timeout: float) -> dict[str, Any]:
    """SQLALCHEMY_ENGINE_OPTIONS for `database_uri`, with `timeout` (DATABASE_TIMEOUT_SECONDS)."""
    url = make_url(database_uri)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "sqlite":
        in_memory = url.database in (None, "", ":memory:")  # Flask-SQLAlchemy gives it a StaticPool
        if gevent_active() and not in_memory:
            options.update(pool_size=1, max_overflow=0, pool_timeout=SQLITE_POOL_TIMEOUT_SECONDS)
        return options
    options.update(pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_timeout=timeout)
    return options


def bound_waits(engine: Engine, timeout: float) -> None:
    """Make `engine`'s psycopg connections DeadlineConnections with `timeout` per round trip
    and CONNECT_TIMEOUT_SECONDS to connect (a connect_timeout in the URL wins)."""
    if engine.dialect.driver != "psycopg":
        return
    connection_class = type("DeadlineConnection", (DeadlineConnection,), {"round_trip_timeout": timeout})

    @event.listens_for(engine, "do_connect")
    def connect(_dialect, _record, cargs: tuple, cparams: Mapping[str, Any]) -> psycopg.Connection:
        return connection_class.connect(*cargs, **{"connect_timeout": CONNECT_TIMEOUT_SECONDS, **cparams})
