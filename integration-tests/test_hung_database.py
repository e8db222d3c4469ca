"""A database that hangs instead of refusing: every process of a real PostgreSQL server (the
postmaster and its backends) is stopped with SIGSTOP, so the kernel still accepts connections
and queries and no reply ever comes, while Depot, under gunicorn as in production
(gunicorn.conf.py: gevent workers), serves readiness and liveness probes, profile reads,
listings and uploads. Checked, with the figures of issue 12:

- every /readyz answers within 2 s, and 503 naming the database once the answer it reuses
  has expired;
- every request that needs the database answers a JSON 503 within 10 s, without the DSN;
- /healthz (no database) keeps answering, fast: the workers are not stuck;
- an upload whose COMMIT was on its way when the server stopped is, afterwards, stored whole
  or not at all (its row with its file, or neither);
- within about a second of SIGCONT, without restarting gunicorn (the same worker pids),
  requests are answered normally, and the database holds no more of Depot's connections
  than its pools allow.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from dataclasses import dataclass

import psycopg
import pytest
import requests
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, depot_env, prepare_depot, run_flask
from processes import Gunicorn, PostgresServer, temporary_database, wait_until
from recording import Record, print_figures

from app.database import POOL_OVERFLOW, POOL_SIZE
from tests.helpers import png_bytes

# A fault under load, as test_faults_under_load.py: counted with it in docs/robustness.md.
pytestmark = pytest.mark.robustness("faults under load")

KIB = 1024

WORKERS = 2
PROBERS = 6
OUTAGE_SECONDS = 10
# A small slack over the bounds for a machine whose two cores other tests share.
READYZ_BOUND, DATABASE_BOUND, HEALTHZ_BOUND = 2.5, 10.0, 1.0
# Probes sent this long after the pause must say 503: a worker reuses an answer for a second
# and gives the previous one while the next check runs (app/services/health.py).
READINESS_LAG = 3.5
NAMED_LAG = 7.0
# Normal answers again this soon after SIGCONT (the second, plus a little slack).
RECOVERY_BOUND = 1.5
CUT_NAME = "cut-at-commit.png"
# A constraint trigger makes the COMMIT of that one upload take a while on the server, so the
# test can stop PostgreSQL while that COMMIT is certainly on its way: the fault is real, only
# its timing is arranged.
SLOW_COMMIT = f"""
CREATE FUNCTION depot_test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.filename = '{CUT_NAME}' THEN PERFORM pg_sleep(2); END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER depot_test_slow_commit AFTER INSERT ON uploads
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION depot_test_slow_commit();
"""


@dataclass
class Depot:
    server: Gunicorn
    postgres: PostgresServer
    database_url: str
    env: dict
    admin: Api

    def connect(self) -> psycopg.Connection:
        """A connection of the test's own to Depot's database."""
        return psycopg.connect(self.database_url.replace("+psycopg", ""), autocommit=True, connect_timeout=5)


@pytest.fixture(scope="module")
def depot(tmp_path_factory):
    logs = tmp_path_factory.mktemp("hung-database")
    with contextlib.ExitStack() as stack:
        postgres = PostgresServer(logs)
        stack.callback(postgres.close)
        database_url = stack.enter_context(temporary_database("depot_hung_db", postgres.admin_url))
        env = depot_env(database_url, logs / "data", AUTH_RATE_LIMIT="1000 per minute", LOG_FORMAT="json")
        prepare_depot(env)
        server = Gunicorn("hung-db", env, logs, workers=WORKERS)  # gevent: the default
        stack.callback(server.stop)
        depot = Depot(server, postgres, database_url, env, Api(server.url).login(ADMIN_EMAIL, ADMIN_PASSWORD))
        with depot.connect() as connection:
            connection.execute(SLOW_COMMIT)
        yield depot


def depot_connections(depot: Depot) -> int:
    with depot.connect() as connection:
        return connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]


def commit_in_progress(depot: Depot) -> bool:
    """Whether the slow upload's COMMIT is running on the server (in the trigger's sleep)."""
    with depot.connect() as connection:
        return bool(
            connection.execute(
                "SELECT 1 FROM pg_stat_activity WHERE query = 'COMMIT' AND wait_event = 'PgSleep'"
            ).fetchone()
        )


def test_a_hung_database_costs_bounded_time_and_nothing_else(depot):
    server, admin, record = depot.server, depot.admin, Record()
    master, workers = server.process.pid, sorted(server.worker_pids())
    headers = admin.http.headers
    assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
    stop = threading.Event()

    def loop(body) -> None:
        while not stop.is_set():
            body()
            time.sleep(0.05)

    def upload(kind: str, name: str, data: bytes):
        files = {"file": (name, data)}
        return record.call(kind, "POST", f"{server.url}/api/v1/uploads", headers=headers, files=files)

    loads = [lambda: record.call("readyz", "GET", f"{server.url}/readyz")] * PROBERS + [
        lambda: record.call("healthz", "GET", f"{server.url}/healthz"),
        *[lambda: record.call("me", "GET", f"{server.url}/api/v1/users/me", headers=headers)] * 2,
        *[lambda: record.call("list", "GET", f"{server.url}/api/v1/uploads?per_page=10", headers=headers)] * 2,
        *[lambda: upload("upload", "load.png", png_bytes(16 * KIB))] * 2,
    ]
    threads = [threading.Thread(target=loop, args=(body,), daemon=True) for body in loads]
    cut_data = png_bytes(48 * KIB)
    cut = threading.Thread(target=upload, args=("cut", CUT_NAME, cut_data), daemon=True)
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)  # under load, the database answering
        cut.start()
        assert wait_until(lambda: commit_in_progress(depot), timeout=10), "the slow COMMIT never began"
        paused = time.monotonic()
        depot.postgres.pause()
        time.sleep(OUTAGE_SECONDS)
        resumed = time.monotonic()
        depot.postgres.resume()
        time.sleep(2)
    finally:
        depot.postgres.resume()
        stop.set()
        for thread in [*threads, cut]:
            thread.join(60)

    print_figures(record, ("readyz", "healthz", "me", "list", "upload", "cut"), paused, resumed)
    print_figures(record, ("readyz", "me", "list", "upload"), resumed, resumed + 2)
    # /readyz: within 2 s, always; 503 naming the database once the answers from before the
    # pause have expired.
    sent = record.during("readyz", paused, resumed - READYZ_BOUND)
    assert len(sent) >= PROBERS * 3, sent
    assert max(p.seconds for p in sent) < READYZ_BOUND, sorted(p.seconds for p in sent)[-5:]
    late = [p for p in sent if p.started >= paused + READINESS_LAG]
    assert late and all(p.status == 503 for p in late), late
    # The first check after the pause may take longer than a probe waits (a round trip, then
    # a connection attempt): meanwhile probes say the check is taking too long; then they
    # name the database.
    later = [p for p in late if p.started >= paused + NAMED_LAG]
    assert later and all(p.body["fields"] == {"database": ["unavailable"]} for p in later), later

    # Requests that need the database: a JSON 503 within 10 s, none left hanging until the
    # resume, and no secret in the answer.
    for kind in ("me", "list", "upload"):
        sent = record.during(kind, paused, resumed)
        assert max(s.seconds for s in sent) < DATABASE_BOUND, (kind, sorted(s.seconds for s in sent)[-3:])
        answered = record.of(kind, after=paused + 0.1, before=resumed)
        assert len(answered) >= 2 * 2, (kind, answered)  # each of the two clients, at least twice
        assert all(s.status == 503 and s.body["error"] == "unavailable" for s in answered), answered
        assert all("postgres" not in str(s.body).lower() for s in answered), answered
    (cut_sample,) = record.of("cut")
    answered = cut_sample.started + cut_sample.seconds - paused
    print(f"cut at its COMMIT: {cut_sample.status} {cut_sample.body}, answered {answered:.2f} s after the pause")
    assert cut_sample.started + cut_sample.seconds < paused + DATABASE_BOUND, cut_sample
    assert cut_sample.status == 503 and cut_sample.body["error"] in ("unavailable", "outcome_unknown"), cut_sample

    # Liveness needs no database: answered throughout, fast.
    alive = record.of("healthz", after=paused, before=resumed)
    assert len(alive) >= OUTAGE_SECONDS * 5 and all(s.status == 200 for s in alive), alive
    assert max(s.seconds for s in alive) < HEALTHZ_BOUND, sorted(s.seconds for s in alive)[-3:]

    # Back within a second, without a restart: the same master and workers.
    for kind in ("me", "list"):
        after = record.during(kind, resumed + RECOVERY_BOUND, float("inf"))
        assert after and all(s.status == 200 for s in after), (kind, after)
    assert (server.process.poll(), server.process.pid, sorted(server.worker_pids())) == (None, master, workers)
    assert wait_until(lambda: requests.get(f"{server.url}/readyz", timeout=5).status_code == 200, timeout=5)
    stored = admin.post("/api/v1/uploads", files={"file": ("after.png", png_bytes(KIB))})
    assert stored.status_code == 201, stored.text

    # Nothing piled up: once the connections opened during the outage have been turned away,
    # Depot holds no more than its pools allow.
    bound = WORKERS * (POOL_SIZE + POOL_OVERFLOW)
    assert wait_until(lambda: depot_connections(depot) <= bound, timeout=10), depot_connections(depot)

    # The upload cut at its COMMIT: its row with its whole file, or neither.
    rows = [item for item in admin.get("/api/v1/uploads", params={"q": CUT_NAME}).json()["items"]]
    if rows:
        (row,) = rows
        content = admin.get(f"/api/v1/uploads/{row['id']}/content").content
        assert hashlib.sha256(content).hexdigest() == hashlib.sha256(cut_data).hexdigest()
    check = run_flask(depot.env, "storage", "check", "--grace", "0")
    assert "upload rows whose file is missing: 0" in check.stdout, check.stdout + check.stderr
    assert "upload rows whose file is corrupt (size or SHA-256 differs): 0" in check.stdout, check.stdout
