"""A store that hangs instead of refusing: the real SeaweedFS process is stopped with SIGSTOP
(the kernel still accepts its connections, no reply ever comes) while Depot, under gunicorn as
in production (gunicorn.conf.py, 2 workers x 4 threads, PostgreSQL), serves readiness probes,
uploads, downloads and database-only requests. Checked, with the figures of issue 11:

- every /readyz answers within 2 s, and 503 naming the store once the answer it reuses has
  expired; probes do not pile up: each process runs one store check at a time (counted in
  its log), and probes arriving meanwhile get the previous answer at once;
- a request that needs the store answers a JSON 503 within 10 s (a delete, whose row is
  already gone, may answer 204: its file is removed once the store is back);
- /healthz and GET /api/v1/users/me keep answering, fast, throughout;
- once the process is resumed, without restarting gunicorn: /readyz 200, uploads and
  downloads work, and the bucket holds exactly the files of the rows: no readiness objects,
  nothing staged, no unfinished multipart upload, not even from requests that timed out and
  that the store carried out when it came back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from dataclasses import dataclass

import pytest
import requests
from botocore.exceptions import ClientError
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, depot_env, prepare_depot, s3_settings
from processes import Gunicorn, SeaweedFS, temporary_database, wait_until
from recording import Record, print_figures

from app.storage import s3 as s3_module
from tests.helpers import png_bytes

# A fault under load, as test_faults_under_load.py: counted with it in docs/robustness.md.
pytestmark = pytest.mark.robustness("faults under load")

BUCKET = "depot-hung"
KIB, MIB = 1024, 1024 * 1024
PROBERS = 6  # more concurrent /readyz probes than a worker has threads
# Long enough for a store request sent during the outage to time out within it (about 6 s
# each, app/storage/s3.py), after the one the same client sent just before it.
OUTAGE_SECONDS = 14
# /readyz reuses an answer for 1 s and a failing check takes about 1 s (app/services/health.py):
# every probe sent this long after the pause must say 503.
READINESS_LAG = 2.5
READYZ_BOUND, STORE_BOUND, DATABASE_BOUND = 2.0, 10.0, 2.0


@dataclass
class Depot:
    server: Gunicorn
    store: SeaweedFS
    admin: Api


@pytest.fixture(scope="module")
def depot(tmp_path_factory):
    logs = tmp_path_factory.mktemp("hung-store")
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(temporary_database("depot_hung"))
        store = SeaweedFS(logs / "seaweedfs")
        stack.callback(store.stop)
        env = depot_env(
            database_url,
            logs / "data",
            **s3_settings(store, BUCKET),
            AUTH_RATE_LIMIT="1000 per minute",
            LOG_FORMAT="json",
        )
        prepare_depot(env, storage=True)
        server = Gunicorn("hung", env, logs, workers=2, threads=4)  # production's defaults
        stack.callback(server.stop)
        yield Depot(server, store, Api(server.url).login(ADMIN_EMAIL, ADMIN_PASSWORD))


def upload(depot: Depot, record: Record, data: bytes, kind: str = "upload") -> requests.Response | None:
    return record.call(
        kind,
        "POST",
        f"{depot.server.url}/api/v1/uploads",
        headers=depot.admin.http.headers,
        files={"file": (f"hung-{kind}.png", data)},
    )


def storage_keys_of_rows(admin: Api) -> set[str]:
    keys, params = set(), {"per_page": 100}
    while True:
        page = admin.get("/api/v1/uploads", params=params).json()
        keys |= {f"objects/{item['id'].replace('-', '')}" for item in page["items"]}
        if page["next_cursor"] is None:
            return keys
        params["cursor"] = page["next_cursor"]


def bucket_contents(store: SeaweedFS) -> tuple[set[str], list[str]]:
    """(every object key, every unfinished multipart upload's key), asked of the store itself."""
    client = store.client()
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys |= {item["Key"] for item in page.get("Contents", [])}
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]
    return keys, uploads


def test_the_store_refuses_a_wrong_secret(depot):
    with pytest.raises(ClientError) as refused:
        depot.store.client(secret_key="not-the-secret").head_bucket(Bucket=BUCKET)

    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    depot.store.client().head_bucket(Bucket=BUCKET)  # the right one is accepted


def test_a_large_promotion_is_copied_in_parts_on_the_real_store(depot, monkeypatch):
    # SeaweedFS copies 256 MiB in about 3.7 s in one call, past the read timeout: larger
    # files are copied in parts (UploadPartCopy with a byte range), which it must support.
    monkeypatch.setattr(s3_module, "COPY_PART_SIZE", s3_module.MIN_PART_SIZE)
    client = depot.store.client()
    store = s3_module.S3FileStore(BUCKET, prefix="parts-test", part_size=s3_module.MIN_PART_SIZE, client=client)
    data = os.urandom(12 * MIB)
    key = "a" * 32

    store.promote(store.stage(data[i : i + MIB] for i in range(0, len(data), MIB)), key)

    with store.open(key) as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == hashlib.sha256(data).hexdigest()
    with store.open(key, offset=11 * MIB) as handle:  # a ranged read of the copy
        assert handle.read() == data[11 * MIB :]
    assert [o.key for o in store.iter_objects()] == [key]
    assert list(store.iter_staged()) == []
    store.delete(key)
    assert list(store.iter_objects()) == []


def test_a_hung_store_costs_bounded_time_and_nothing_else(depot):
    server, admin, record = depot.server, depot.admin, Record()
    master, workers = server.process.pid, sorted(server.worker_pids())
    kept = png_bytes(64 * KIB)
    kept_id = admin.post("/api/v1/uploads", files={"file": ("kept.png", kept)}).json()["id"]
    doomed_id = admin.post("/api/v1/uploads", files={"file": ("doomed.png", png_bytes(KIB))}).json()["id"]
    assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
    log_before = server.log().count("readiness: file store check failed")
    stop = threading.Event()

    def loop(body) -> None:
        while not stop.is_set():
            body()
            time.sleep(0.05)

    loads = [lambda: record.call("readyz", "GET", f"{server.url}/readyz")] * PROBERS + [
        lambda: record.call("healthz", "GET", f"{server.url}/healthz"),
        lambda: record.call("me", "GET", f"{server.url}/api/v1/users/me", headers=admin.http.headers),
        lambda: upload(depot, record, png_bytes(64 * KIB)),
        lambda: record.call(
            "download", "GET", f"{server.url}/api/v1/uploads/{kept_id}/content", headers=admin.http.headers
        ),
    ]
    threads = [threading.Thread(target=loop, args=(body,), daemon=True) for body in loads]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)  # under load, the store answering
        paused = time.monotonic()
        depot.store.pause()
        time.sleep(0.5)
        # One of each of the other requests that need the store: a delete, a multipart upload
        # (its parts go out on the staging writer thread).
        record.call("delete", "DELETE", f"{server.url}/api/v1/uploads/{doomed_id}", headers=admin.http.headers)
        upload(depot, record, png_bytes(6 * MIB), kind="multipart")
        time.sleep(max(0.0, paused + OUTAGE_SECONDS - time.monotonic()))
        resumed = time.monotonic()
        depot.store.resume()
        time.sleep(1)
    finally:
        depot.store.resume()
        stop.set()
        for thread in threads:
            thread.join(60)

    print_figures(record, ("readyz", "healthz", "me", "upload", "download", "multipart", "delete"), paused, resumed)
    # /readyz: within 2 s, always; 503 naming the store once the answers from before the
    # pause have expired.
    probes = record.of("readyz", after=paused, before=resumed)
    assert len(probes) >= PROBERS * 3, probes
    assert max(p.seconds for p in probes) < READYZ_BOUND, sorted(p.seconds for p in probes)[-5:]
    late = [p for p in probes if p.started >= paused + READINESS_LAG]
    assert late and all(p.status == 503 and p.body["fields"] == {"storage": ["unavailable"]} for p in late), late
    # ...and the probes did not pile up: each process ran one store check at a time, each
    # giving up after about 1 s, so at most about one failed check per second per worker.
    checks = server.log().count("readiness: file store check failed") - log_before
    assert 0 < checks <= len(workers) * (OUTAGE_SECONDS + 2), checks

    # Requests that need the store: a JSON 503 within 10 s.
    for kind in ("upload", "download", "multipart"):
        hung = record.of(kind, after=paused + 0.1, before=resumed)
        assert hung, f"no {kind} was answered during the outage"
        assert max(s.seconds for s in hung) < STORE_BOUND, (kind, hung)
        if kind == "multipart":  # Depot may answer before the whole body was read: then the client sees a reset
            assert all(s.status in (503, None) for s in hung), hung
        else:
            assert all(s.status == 503 and s.body["error"] == "unavailable" for s in hung), hung
    (delete,) = record.of("delete")
    assert delete.seconds < STORE_BOUND and delete.status in (204, 503), delete
    everything_during = [s for s in record.samples if s.started >= paused and s.started < resumed]
    assert max(s.seconds for s in everything_during) < STORE_BOUND

    # Requests that need only the database, or nothing: answered throughout, fast.
    for kind in ("healthz", "me"):
        answered = record.of(kind, after=paused, before=resumed)
        assert len(answered) >= OUTAGE_SECONDS, (kind, len(answered))
        assert all(s.status == 200 for s in answered), answered
        assert max(s.seconds for s in answered) < DATABASE_BOUND, (kind, sorted(s.seconds for s in answered)[-3:])

    # Back without a restart: the same master and workers, ready, storing and serving files.
    assert wait_until(lambda: requests.get(f"{server.url}/readyz", timeout=5).status_code == 200, timeout=10)
    assert (server.process.poll(), server.process.pid, sorted(server.worker_pids())) == (None, master, workers)
    data = png_bytes(6 * MIB)
    stored = admin.post("/api/v1/uploads", files={"file": ("after.png", data)})
    assert stored.status_code == 201, stored.text
    downloaded = admin.get(f"/api/v1/uploads/{stored.json()['id']}/content")
    assert hashlib.sha256(downloaded.content).hexdigest() == hashlib.sha256(data).hexdigest()
    assert admin.get(f"/api/v1/uploads/{kept_id}/content").content == kept

    # The bucket holds the rows' files and nothing else, once the requests the store carried
    # out late have been cleaned up (app/storage/s3.py: Leftovers).
    def only_the_rows_files():
        keys, uploads = bucket_contents(depot.store)
        return (keys, uploads) == (storage_keys_of_rows(admin), [])

    assert wait_until(only_the_rows_files, timeout=20), bucket_contents(depot.store)
    keys, _ = bucket_contents(depot.store)
    assert not [k for k in keys if ".ready-" in k or k.startswith("staging/")]
