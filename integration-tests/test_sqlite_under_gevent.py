"""SQLite under gunicorn's gevent worker (the default): concurrent writers of one worker do not
stall each other (measured before the fix: 2 of 32 uploads by 8 writers answered within 2 min).

Every request of a gevent worker is a greenlet on one OS thread, and SQLite waits for its
write lock by blocking that thread. With a connection per request, an upload holding the lock
while it waits for the network (its file's promotion on the S3 store, between its INSERT and
its COMMIT; the local store's rename does not yield) would be stopped by a second upload
waiting for the lock, until SQLite's busy timeout (5 s) failed the second one with "database
is locked". With one connection per worker (app/database.py) the second waits for it
cooperatively, and both are stored promptly.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import requests
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, depot_env, prepare_depot, s3_settings
from processes import Gunicorn, SeaweedFS

from tests.helpers import png_bytes

WRITERS, ROUNDS = 4, 3
# SQLite's busy timeout: a writer that waited for the lock by blocking the worker's thread
# would stall the others this long, and then fail. (The writers of one worker take turns on
# its connection, each commit copying a file on the S3 server: well under this, even on a
# busy machine.)
PROMPTLY = 5.0


@pytest.fixture(scope="module")
def depot(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sqlite-gevent")
    with contextlib.ExitStack() as stack:
        store = SeaweedFS(folder / "seaweedfs")
        stack.callback(store.stop)
        env = depot_env(
            f"sqlite:///{folder / 'depot.sqlite3'}",
            folder / "data",
            **s3_settings(store, "depot-sqlite"),
            AUTH_RATE_LIMIT="1000 per minute",
        )
        prepare_depot(env, storage=True)
        server = Gunicorn("sqlite-gevent", env, folder, workers=1)  # one worker: every writer shares its thread
        stack.callback(server.stop)
        yield server


def test_concurrent_uploads_to_one_worker_all_succeed_promptly(depot):
    admin = Api(depot.url).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    answers: list[tuple[int, float, str]] = []
    start = threading.Barrier(WRITERS)

    def writer(index: int) -> None:
        start.wait()
        for round_ in range(ROUNDS):
            began = time.monotonic()
            files = {"file": (f"w{index}-{round_}.png", png_bytes(8 * 1024))}
            answer = requests.post(f"{depot.url}/api/v1/uploads", headers=admin.http.headers, files=files, timeout=30)
            answers.append((answer.status_code, time.monotonic() - began, answer.text[:200]))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert len(answers) == WRITERS * ROUNDS
    assert [a for a in answers if a[0] != 201] == []
    slowest = max(seconds for _, seconds, _ in answers)
    assert slowest < PROMPTLY, sorted(seconds for _, seconds, _ in answers)[-5:]
    listed = admin.get("/api/v1/uploads", params={"per_page": 100}).json()["items"]
    assert len(listed) == WRITERS * ROUNDS
