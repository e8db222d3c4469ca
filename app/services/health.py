"""HealthService: liveness and readiness answers for orchestrators and load balancers.

Readiness asks the database and the file store, which may hang rather than refuse (a stopped
process still accepts connections). So that probes never pile up on a hung dependency and hold
the threads other requests need, a process runs at most one readiness check at a time, in the
background, and an answer is reused for READINESS_TTL_SECONDS. Probes arriving while a check
runs get the previous answer at once if it is recent, and otherwise wait for the running
check's, at most READINESS_WAIT_SECONDS: so every probe answers within 2 s, and readiness
holds at most about one thread (or greenlet) and one database connection per process. Each
check is bounded too: the file store's (app/storage/s3_client.py: QUICK_PATIENCE, about 1.5 s
at worst) and the database's (app/database.py: a round trip, then a new connection, a few
seconds at worst), so a hung dependency shows as 503 within a few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask
from injector import inject
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import scoped_session
from transaction import ThreadTransactionManager

from app.exceptions import Unavailable
from app.storage.base import FileStore, StorageError

log = logging.getLogger(__name__)

# An answer is reused this long: probes from several orchestrators, load balancers and
# replicas' neighbours cost one check per second per process, and a change (the store stops,
# or comes back) shows within a second.
READINESS_TTL_SECONDS = 1.0
# How long a probe waits for the check already running before answering 503 itself: the
# store's check gives up after about 1.5 s, and /readyz must answer within 2 s.
READINESS_WAIT_SECONDS = 1.6
# While a check runs, an answer up to this old is given at once instead of waiting: it is at
# most one TTL plus one check's duration behind, and the probe holds no thread for long. A
# check of a hung database takes a connection attempt (2 s, app/database.py): longer than
# the TTL plus that, so that while it stays hung each probe names it rather than saying that
# the check takes too long.
READINESS_STALE_SECONDS = 4.0


class SingleFlight:
    """Runs `check` at most once at a time, in the background. Its outcome (a value, or an
    Unavailable) is the answer for `ttl` seconds; while the next check runs, callers get the
    last outcome if it is younger than `stale` seconds, or else wait up to `wait` seconds for
    the running one, the caller that started it included."""

    def __init__(
        self,
        check: Callable[[], dict],
        ttl: float,
        wait: float,
        stale: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.check, self.ttl, self.wait, self.stale, self.clock = check, ttl, wait, stale, clock
        self._lock = threading.Lock()
        self._running: _Run | None = None
        self._outcome: tuple[float, dict | None, Unavailable | None] | None = None  # (when, value, error)

    def __call__(self) -> dict:
        with self._lock:
            age = self.clock() - self._outcome[0] if self._outcome else float("inf")
            leading = age >= self.ttl and self._running is None
            if leading:
                self._running = _Run()
            running = self._running
            # Fresh, or a check is running and the last answer is recent enough.
            outcome = self._outcome if age < self.ttl or (not leading and age < self.stale) else None
        if outcome is None:
            if leading:
                # On a thread (a greenlet under gevent) of its own, so that the probe which
                # started it waits no longer than the others, however long the check takes.
                threading.Thread(target=self._lead, args=(running,), name="readiness-check", daemon=True).start()
            if not running.done.wait(self.wait):
                raise Unavailable("The readiness check is taking too long.", fields={"readiness": ["timeout"]})
            outcome = running.outcome
        if outcome is None:  # the leading caller was interrupted (already reported there)
            raise Unavailable("The readiness check was interrupted.")
        _when, value, error = outcome
        if error is not None:
            # A new exception each time: one instance raised in several threads would mix tracebacks.
            raise Unavailable(error.message, fields=error.fields)
        return dict(value)

    def _lead(self, running: _Run) -> None:
        try:
            running.outcome = (self.clock(), self.check(), None)
        except Unavailable as error:
            running.outcome = (self.clock(), None, error)
        except Exception:  # noqa: BLE001 (a bug in a check is still "not ready", and is logged)
            log.exception("readiness: the check failed")
            running.outcome = (self.clock(), None, Unavailable("The readiness check failed."))
        finally:
            with self._lock:
                if running.outcome is not None:
                    self._outcome = running.outcome
                self._running = None
            running.done.set()


class _Run:
    """One run of the check: its outcome, and an event set when it is known."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: tuple[float, dict | None, Unavailable | None] | None = None


class HealthService:
    """Checks the dependencies a request needs."""

    @inject
    def __init__(self, app: Flask, tm: ThreadTransactionManager, session: scoped_session, store: FileStore) -> None:
        self.app = app
        self.tm = tm
        self.session = session
        self.store = store
        self._readiness = SingleFlight(
            self._check_in_app_context, READINESS_TTL_SECONDS, READINESS_WAIT_SECONDS, READINESS_STALE_SECONDS
        )

    def readiness(self) -> dict[str, str]:
        """Every dependency's state; raises Unavailable naming the first that does not answer."""
        return self._readiness()

    def _check_in_app_context(self) -> dict[str, str]:
        # The check runs on a thread of its own, outside the probe's request.
        with self.app.app_context():
            return self._check()

    def _check(self) -> dict[str, str]:
        try:
            with self.tm:
                self.session.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            # The driver's message can include the host and user: log it, do not return it.
            log.warning("readiness: database check failed: %s", error.__class__.__name__)
            raise Unavailable("The database is not answering.", fields={"database": ["unavailable"]}) from None
        try:
            self.store.check()
        except StorageError as error:
            log.warning("readiness: file store check failed: %s", error)
            raise Unavailable("The file store is not answering.", fields={"storage": ["unavailable"]}) from None
        return {"database": "ok", "storage": "ok"}
