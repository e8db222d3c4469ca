"""Faults under load: 16 clients upload and download without pause, every checksum verified,
while a gunicorn worker is SIGKILLed in the middle of an upload, PostgreSQL crashes and comes
back, and the S3 endpoint is cut for a while.

Afterwards nothing acknowledged is lost and nothing refused left a trace:

- every upload answered 201 is listed and downloads with the SHA-256 its client computed;
- every visible row is an upload its client saw acknowledged, or one whose outcome it could
  not learn: the connection died after the commit (no server can prevent that), or the
  commit failed and the database could not say whether it went through (503
  "outcome_unknown"); each downloads whole;
- no upload answered with an error status, and not the one whose worker was killed, has a row;
- `flask storage check --repair --grace 0` finds no row without its file and no corrupt file,
  removes the crash leftovers, and a second check reports the store consistent;
- /readyz said 503, naming the dependency, during each outage and 200 after it, and uploads
  went through again, with the same gunicorn master: no restart.

Depot runs here as in production (gunicorn.conf.py, JSON logs, S3 on a real SeaweedFS server
with authentication on) on a PostgreSQL server of its own, so crashing it touches nothing
else. The time each phase runs under load is DEPOT_FAULT_LOAD_SECONDS (3 s; README has the
longer command). The figures go to the robustness report (docs/robustness.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, depot_env, prepare_depot, run_flask, s3_settings
from processes import FaultRelay, Gunicorn, PostgresServer, SeaweedFS, temporary_database, wait_until

from app.services.health import READINESS_TTL_SECONDS
from app.storage.s3_client import QUICK_PATIENCE

pytestmark = pytest.mark.robustness("faults under load")

CLIENTS = 16
USERS = 4  # the clients share four uploader accounts, four clients each
KIB, MIB = 1024, 1024 * 1024
# From a few bytes to a multipart S3 upload (5 MiB parts): every path of the store.
SIZES = (2 * KIB, 64 * KIB, 1536 * KIB, 6 * MIB)
LOAD_SECONDS = float(os.environ.get("DEPOT_FAULT_LOAD_SECONDS", "3"))
BUCKET = "depot-faults"
PASSWORD = "faults under load"
KILLED_NAME = "killed-mid-upload.png"
# Each worker reuses a readiness answer for a moment, and gives the previous one while a
# check runs (app/services/health.py): an outage shows in every worker's answer this late.
READINESS_LAG = READINESS_TTL_SECONDS + QUICK_PATIENCE.worst_case()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png(size: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)


@dataclass
class Depot:
    """Depot under gunicorn, its own PostgreSQL server and the relay in front of S3."""

    server: Gunicorn
    postgres: PostgresServer
    relay: FaultRelay
    env: dict


@pytest.fixture(scope="module")
def depot(tmp_path_factory):
    logs = tmp_path_factory.mktemp("faults")
    # Each part is stopped even if starting a later one, or stopping another, fails.
    with contextlib.ExitStack() as stack:
        postgres = PostgresServer(logs)
        stack.callback(postgres.close)
        store = SeaweedFS(logs / "seaweedfs")
        stack.callback(store.stop)
        relay = FaultRelay(store.port)
        stack.callback(relay.close)
        database_url = stack.enter_context(temporary_database("depot_faults", postgres.admin_url))
        env = depot_env(
            database_url,
            logs / "data",
            **s3_settings(store, BUCKET, relay.url),
            MAX_UPLOAD_BYTES=str(64 * MIB),
            AUTH_RATE_LIMIT="1000 per minute",
            LOG_FORMAT="json",
        )
        prepare_depot(env, storage=True)
        # As many threads as clients, so the readiness probe is not queued behind them.
        server = Gunicorn("faults", env, logs, workers=2, threads=CLIENTS // 2 + 1)
        stack.callback(server.stop)
        yield Depot(server, postgres, relay, env)


@dataclass
class Tally:
    """What the clients saw. Written from many threads: setting a key, adding to a set and
    appending are each atomic; the download counts are not, so they go through `count`."""

    sent: dict[str, str] = field(default_factory=dict)  # filename -> SHA-256 of what was sent
    acknowledged: dict[str, dict] = field(default_factory=dict)  # filename -> the 201 body
    acknowledged_at: list[float] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)  # filename -> error status
    in_doubt: set[str] = field(default_factory=set)  # no answer, or 503 "outcome_unknown"
    downloads: Counter = field(default_factory=Counter)  # "verified", an error status, "cut"
    defects: list[str] = field(default_factory=list)  # 500s, non-JSON errors, wrong bytes
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, download_outcome: str | int) -> None:
        with self._lock:
            self.downloads[download_outcome] += 1


class Load:
    """CLIENTS threads, each uploading, then downloading one of its uploads, until stopped.
    After an error a client waits 0.2 s, as a polite client backs off."""

    def __init__(self, base_url: str, tokens: list[str]) -> None:
        self.tally = Tally()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(index, Api(base_url, tokens[index % len(tokens)])))
            for index in range(CLIENTS)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def acknowledged_since(self, moment: float) -> int:
        return sum(1 for at in self.tally.acknowledged_at if at > moment)

    def _client(self, index: int, api: Api) -> None:
        mine: list[str] = []
        for number in itertools.count():
            if self._stop.is_set():
                return
            try:
                self._round(index, number, api, mine)
            except Exception as error:  # noqa: BLE001 (a dead client would shrink the load unseen)
                self.tally.defects.append(f"client {index} failed: {error!r}")
                return

    def _round(self, index: int, number: int, api: Api, mine: list[str]) -> None:
        """One upload, then a download of one of this client's uploads."""
        tally = self.tally
        name = f"load-{index:02d}-{number:05d}.png"
        data = png(SIZES[(index + number) % len(SIZES)])
        tally.sent[name] = sha256(data)
        try:
            answer = api.post("/api/v1/uploads", files={"file": (name, data)})
        except requests.RequestException:
            tally.in_doubt.add(name)
            time.sleep(0.2)
            return
        if answer.status_code == 201:
            tally.acknowledged[name] = answer.json()
            tally.acknowledged_at.append(time.monotonic())
            mine.append(name)
        elif answer.status_code == 503 and error_code(answer) == "outcome_unknown":
            # The commit failed and the database could not say whether it went through.
            tally.in_doubt.add(name)
            time.sleep(0.2)
        else:
            tally.refused[name] = answer.status_code
            self._check_error(answer, f"upload {name}")
            time.sleep(0.2)
        if mine:
            self._download(api, mine[number % len(mine)])

    def _download(self, api: Api, name: str) -> None:
        tally = self.tally
        try:
            answer = api.get(f"/api/v1/uploads/{tally.acknowledged[name]['id']}/content")
        except requests.RequestException:
            # A killed worker or a store cut mid-stream ends the connection; a short body is
            # never taken as the file (Content-Length is enforced).
            tally.count("cut")
            return
        if answer.status_code == 200:
            if sha256(answer.content) == tally.sent[name]:
                tally.count("verified")
            else:
                tally.defects.append(f"download of {name} returned other bytes")
        else:
            tally.count(answer.status_code)
            self._check_error(answer, f"download of {name}")

    def _check_error(self, answer: requests.Response, what: str) -> None:
        """An outage is a 503 in the JSON error shape; anything else is a defect."""
        if answer.status_code != 503 or error_code(answer) is None:
            self.tally.defects.append(f"{what}: {answer.status_code} {answer.text[:200]}")


def error_code(answer: requests.Response) -> str | None:
    """The `error` of Depot's JSON error shape, or None if the body is not in that shape."""
    try:
        body = answer.json()
        return body["error"] if body["status"] == answer.status_code else None
    except (ValueError, KeyError, TypeError):
        return None


class Readiness:
    """Polls /readyz every 0.1 s in the background; remembers (time, status, failing checks)."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/readyz"
        self.seen: list[tuple[float, int | str, tuple[str, ...]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll)

    def __enter__(self) -> Readiness:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                # A new connection each time, as an orchestrator's probe makes.
                answer = requests.get(self.url, timeout=5, headers={"Connection": "close"})
                failing = tuple(answer.json().get("fields", {})) if answer.status_code == 503 else ()
                self.seen.append((time.monotonic(), answer.status_code, failing))
            except requests.RequestException as error:
                self.seen.append((time.monotonic(), error.__class__.__name__, ()))
            time.sleep(0.1)

    def wait_for(self, status: int, since: float, failing: str | None = None, timeout: float = 30) -> float | None:
        """When /readyz first answered `status` (naming `failing`) after `since`, waiting up to `timeout`."""

        def matches(at, seen, checks) -> bool:
            return at > since and seen == status and (failing is None or failing in checks)

        return wait_until(lambda: next((seen[0] for seen in self.seen if matches(*seen)), None), timeout)

    def unanswered(self, excusing: tuple[float, float]) -> list[tuple[float, str]]:
        """Probes that got no answer, except in the window `excusing`: a probe the killed
        worker had accepted dies with it, as any request it held."""
        return [
            (at, seen) for at, seen, _ in self.seen if isinstance(seen, str) and not excusing[0] <= at <= excusing[1]
        ]


def uploaders(base_url: str) -> list[str]:
    """Session tokens of USERS fresh uploader accounts."""
    admin = Api(base_url).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    tokens = []
    for _ in range(USERS):
        email = f"load-{uuid.uuid4().hex[:10]}@example.com"
        account = {"email": email, "password": PASSWORD, "name": "Load", "roles": ["uploader"]}
        assert admin.post("/api/v1/users", json=account).status_code == 201
        tokens.append(Api(base_url).login(email, PASSWORD).token)
    return tokens


def kill_the_worker_receiving_an_upload(server: Gunicorn, token: str) -> int:
    """Send the headers and 6 MiB of an 8 MiB upload, find the worker reading it, SIGKILL it;
    its pid. The connection must die with it."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{KILLED_NAME}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    content = png(8 * MIB)
    length = len(head) + len(content) + len(tail)
    request = (
        f"POST /api/v1/uploads HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(request + head + content[: 6 * MIB])
        worker = wait_until(lambda: server.worker_serving(sock.getsockname()[1]))
        assert worker, "no worker holds the upload's connection"
        time.sleep(0.3)  # let it pass the first S3 part upstream
        os.kill(worker, signal.SIGKILL)
        sock.settimeout(10)
        try:
            answer = sock.recv(65536)
        except ConnectionResetError:
            answer = b""
        assert answer == b"", f"the killed worker answered: {answer[:200]!r}"
    return worker


def outage(
    readiness: Readiness, load: Load, what: str, dependency: str, cause, repair
) -> tuple[str, float, float, float]:
    """Take `dependency` down with `cause()` for LOAD_SECONDS under load, then `repair()` it.
    /readyz must answer 503 naming it from soon after the cause until the repair (once every
    worker's previous answer has expired: READINESS_LAG), then 200, and uploads must go
    through again. (what, began, repaired, ready again)."""
    began = time.monotonic()
    cause()
    first = readiness.wait_for(503, began, failing=dependency)
    assert first, f"{what}: /readyz never said 503: {readiness.seen[-5:]}"
    settled = max(first, began + READINESS_LAG)
    time.sleep(LOAD_SECONDS)
    repairing = time.monotonic()
    repair()
    back = readiness.wait_for(200, repairing)
    assert back, f"{what}: /readyz never said 200 again: {readiness.seen[-5:]}"
    otherwise = [
        seen
        for seen in readiness.seen
        if settled <= seen[0] < repairing and (seen[1], dependency in seen[2]) != (503, True)
    ]
    assert not otherwise, f"{what}: /readyz answered otherwise during the outage: {otherwise[:5]}"
    assert wait_until(lambda: load.acknowledged_since(back) >= CLIENTS, timeout=60), f"no uploads after: {what}"
    return what, began, repairing, back


def all_rows(base_url: str) -> dict[str, dict]:
    """Every upload row, by filename, from the admin's listing (following its cursors)."""
    admin = Api(base_url).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    rows, params = {}, {"per_page": 100}
    while True:
        page = admin.get("/api/v1/uploads", params=params).json()
        rows.update((item["filename"], item) for item in page["items"])
        if page["next_cursor"] is None:
            return rows
        params["cursor"] = page["next_cursor"]


def test_nothing_acknowledged_is_lost_and_nothing_refused_is_kept(depot, record_property):
    server, base = depot.server, depot.server.url
    master = server.process.pid
    tokens = uploaders(base)
    faults: list[tuple[str, float, float, float]] = []  # (what, began, repaired, recovered)

    with Readiness(base) as readiness, Load(base, tokens) as load:
        started = time.monotonic()
        assert wait_until(lambda: load.acknowledged_since(started) >= 2 * CLIENTS, timeout=60), load.tally
        time.sleep(LOAD_SECONDS)

        # 1. A worker dies mid-upload (and with it whatever else it was serving).
        began = time.monotonic()
        killed = kill_the_worker_receiving_an_upload(server, tokens[0])
        assert wait_until(lambda: killed not in server.worker_pids() and len(server.worker_pids()) == 2, 30)
        back = readiness.wait_for(200, time.monotonic())
        assert back, readiness.seen[-5:]
        assert wait_until(lambda: load.acknowledged_since(back) >= CLIENTS, timeout=60), "no uploads after the kill"
        faults.append(("gunicorn worker SIGKILLed mid-upload", began, began, back))
        time.sleep(LOAD_SECONDS)

        # 2. PostgreSQL crashes (no checkpoint; it recovers from its WAL) and comes back.
        faults.append(
            outage(
                readiness,
                load,
                "PostgreSQL crashed, restarted after a while",
                "database",
                depot.postgres.crash,
                depot.postgres.start,
            )
        )
        time.sleep(LOAD_SECONDS)
        # 3. The S3 endpoint drops every connection and refuses new ones for a while.
        faults.append(
            outage(
                readiness,
                load,
                "S3 endpoint cut, restored after a while",
                "storage",
                depot.relay.fail,
                depot.relay.heal,
            )
        )
        time.sleep(LOAD_SECONDS)

    tally = load.tally
    rows = all_rows(base)
    acknowledged, refused, in_doubt = set(tally.acknowledged), set(tally.refused), tally.in_doubt
    admin = Api(base).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    whole = {
        name
        for name, row in rows.items()
        if row["sha256"] == tally.sent.get(name) == sha256(admin.get(f"/api/v1/uploads/{row['id']}/content").content)
    }
    repair = run_flask(depot.env, "storage", "check", "--repair", "--grace", "0")
    check = run_flask(depot.env, "storage", "check")
    removed = re.search(r"removed by --repair: (\d+)", repair.stdout)
    # Recorded before the assertions, so a failing run still reports what it saw.
    record_property(
        "figures",
        {
            "clients": CLIENTS,
            "load_seconds": LOAD_SECONDS,
            "uploads_sent": len(tally.sent) + 1,  # and the one whose worker was killed
            "acknowledged": len(acknowledged),
            "refused_503": len(refused),
            "outcome_unknown": len(in_doubt) + 1,  # and the one whose worker was killed
            "outcome_unknown_but_stored": len(set(rows) & in_doubt),
            "downloads_verified": tally.downloads["verified"] + len(whole),
            "downloads_refused_503": tally.downloads[503],
            "downloads_cut": tally.downloads["cut"],
            "leftovers_removed_by_repair": int(removed.group(1)) if removed else -1,
            "lost": len(acknowledged - whole),
            "kept_though_refused": len((refused | {KILLED_NAME}) & set(rows)),
            "faults": [(what, repaired - began, back - repaired) for what, began, repaired, back in faults],
        },
    )

    assert server.process.poll() is None and server.process.pid == master, "gunicorn was restarted"
    assert not tally.defects, tally.defects[:10]
    unanswered = readiness.unanswered(excusing=(faults[0][1], faults[0][3]))
    assert not unanswered, f"/readyz did not answer: {unanswered[:5]}"
    assert acknowledged <= whole, f"acknowledged but lost or damaged: {sorted(acknowledged - whole)[:10]}"
    assert all(rows[name]["id"] == body["id"] for name, body in tally.acknowledged.items())
    assert not refused & set(rows), f"refused but kept: {sorted(refused & set(rows))[:10]}"
    assert KILLED_NAME not in rows
    assert set(rows) <= acknowledged | in_doubt, f"rows nobody sent: {sorted(set(rows) - acknowledged - in_doubt)}"
    assert whole == set(rows), f"rows that do not download whole: {sorted(set(rows) - whole)[:10]}"
    assert "upload rows whose file is missing: 0" in repair.stdout, repair.stdout + repair.stderr
    assert "upload rows whose file is corrupt (size or SHA-256 differs): 0" in repair.stdout, repair.stdout
    assert check.returncode == 0 and check.stdout.strip().endswith("consistent"), check.stdout + check.stderr
