"""HealthService: liveness and readiness answers for orchestrators and load balancers.

Readiness asks the database and the file store, which may hang rather than refuse (a stopped
process still accepts connections). So that probes never pile up on a hung dependency and hold
the threads other requests need, a process runs at most one readiness check at a time:
probes arriving meanwhile wait for its answer, and an answer is reused for READINESS_TTL_SECONDS.
The file store's own check is bounded (app/storage/s3.py: QUICK_PATIENCE, about 1.5 s at worst).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

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


class SingleFlight:
    """Runs `check` at most once at a time, sharing its outcome (a value, or an Unavailable)
    with the callers that arrive while it runs and for `ttl` seconds after."""

    def __init__(
        self, check: Callable[[], dict], ttl: float, wait: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.check, self.ttl, self.wait, self.clock = check, ttl, wait, clock
        self._lock = threading.Lock()
        self._running: _Run | None = None
        self._outcome: tuple[float, dict | None, Unavailable | None] | None = None  # (when, value, error)

    def __call__(self) -> dict:
        with self._lock:
            outcome = self._outcome if self._outcome and self.clock() - self._outcome[0] < self.ttl else None
            leading = outcome is None and self._running is None
            if leading:
                self._running = _Run()
            running = self._running
        if outcome is None:
            if leading:
                self._lead(running)
            elif not running.done.wait(self.wait):
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
    def __init__(self, tm: ThreadTransactionManager, session: scoped_session, store: FileStore) -> None:
        self.tm = tm
        self.session = session
        self.store = store
        self._readiness = SingleFlight(self._check, READINESS_TTL_SECONDS, READINESS_WAIT_SECONDS)

    def readiness(self) -> dict[str, str]:
        """Every dependency's state; raises Unavailable naming the first that does not answer."""
        return self._readiness()

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
