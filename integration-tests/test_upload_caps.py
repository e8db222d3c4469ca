"""The caps on concurrent uploads per account and per address (issue 12), over real HTTP: two
gunicorn replicas (gunicorn.conf.py, 2 workers each) on one PostgreSQL database count their
slots in one real Redis, with caps of 2 uploads per account and 3 per address, a 2 s body idle
timeout and a 4 s slot lease.

Slow uploads hold their slots: each sends its headers and a little of its body, then a byte
every half second, and the tests watch the slots in Redis. While they stream, the account's
next upload is refused at once (a JSON 429 with Retry-After and `Connection: close`, its body
unread), another account from the same address is accepted until the address's cap, and a
slot outlives its first lease because its worker renews it. When the slow uploads end,
finished or cut, their slots are free again. Both replicas count against one cap. A worker
SIGKILLed mid-upload releases nothing, and its slots come back when their lease runs out.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
import uuid

import pytest
import redis
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, depot_env, prepare_depot
from processes import Gunicorn, temporary_database, wait_for_http, wait_until

from app.services.upload_slots import RETRY_AFTER_SECONDS, UploadSlots
from tests.helpers import REDIS_URL, redis_key_prefix

PER_ACCOUNT, PER_ADDRESS = 2, 3
IDLE_TIMEOUT, LEASE = 2, 4
PASSWORD = "upload caps password"
SLOW_BODY = 64 * 1024  # bytes a slow upload declares; it never sends them all unless finished
# A refused upload is answered at once; this bound only allows for a busy 2-core machine.
REFUSAL_DEADLINE = 2.0


@pytest.fixture(scope="module")
def depot(tmp_path_factory):
    """Two replicas on one database and one Redis prefix: (replicas, slots), where `slots`
    reads the replicas' counts in Redis."""
    logs = tmp_path_factory.mktemp("upload-caps")
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(temporary_database())
        prefix = stack.enter_context(redis_key_prefix("depot-caps"))
        env = depot_env(
            database_url,
            logs / "data",
            RATELIMIT_STORAGE_URI=REDIS_URL,
            RATELIMIT_KEY_PREFIX=prefix,
            AUTH_RATE_LIMIT="1000 per minute",
            MAX_CONCURRENT_UPLOADS_PER_ACCOUNT=str(PER_ACCOUNT),
            MAX_CONCURRENT_UPLOADS_PER_ADDRESS=str(PER_ADDRESS),
            BODY_IDLE_TIMEOUT_SECONDS=str(IDLE_TIMEOUT),
            UPLOAD_SLOT_LEASE_SECONDS=str(LEASE),
        )
        prepare_depot(env)
        replicas = []
        for name in ("caps-a", "caps-b"):
            replica = Gunicorn(name, env, logs, workers=2)
            stack.callback(replica.stop)
            replicas.append(replica)
        client = redis.Redis.from_url(REDIS_URL)
        stack.callback(client.close)
        yield replicas, UploadSlots(PER_ACCOUNT, PER_ADDRESS, LEASE, prefix=prefix, redis_client=client)


@pytest.fixture(scope="module")
def address(depot) -> str:
    """Every client of these tests calls from the loopback address."""
    return "127.0.0.1"


@pytest.fixture
def make_uploader(depot):
    """Creates an uploader account: make_uploader() -> (token, user id)."""
    replicas, _slots = depot
    admin = Api(replicas[0].url).login(ADMIN_EMAIL, ADMIN_PASSWORD)

    def make() -> tuple[str, str]:
        email = f"caps-{uuid.uuid4().hex[:10]}@example.com"
        created = admin.post(
            "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Caps", "roles": ["uploader"]}
        )
        assert created.status_code == 201, created.text
        return Api(replicas[0].url).login(email, PASSWORD).token, created.json()["id"]

    return make


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=15)


def _head(path: str, token: str, length: int) -> bytes:
    return (
        f"PUT {path} HTTP/1.1\r\nHost: depot\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _answer(conn: socket.socket) -> tuple[int, dict[str, str], dict]:
    """One HTTP answer from `conn`: status, headers (lower-case names), JSON body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, json.loads(body)


class SlowUpload:
    """A raw upload whose body trickles a byte every half second until it is finished or cut."""

    def __init__(self, replica: Gunicorn, token: str) -> None:
        self.replica = replica
        self.conn = _connect(replica.url)
        self.conn.sendall(_head(f"/api/v1/uploads/slow-{uuid.uuid4().hex[:8]}.txt", token, SLOW_BODY))
        self.conn.sendall(b"s" * 1024)
        self.sent = 1024
        self.client_port = self.conn.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock, contextlib.suppress(OSError):  # the server may be gone (killed)
                self.conn.sendall(b"s")
                self.sent += 1

    def _halt(self) -> None:
        self._stop.set()
        self._thread.join()

    def finish(self) -> int:
        """Send the rest of the body; the answer's status."""
        self._halt()
        self.conn.sendall(b"s" * (SLOW_BODY - self.sent))
        status, _headers, body = _answer(self.conn)
        self.conn.close()
        assert status != 201 or body["size"] == SLOW_BODY
        return status

    def cut(self) -> None:
        """Hang up mid-body."""
        self._halt()
        self.conn.close()


def refused_at_once(replica: Gunicorn, token: str) -> dict:
    """Send the head of a 1 MiB upload and none of its body: it must be refused with 429 at
    once, the connection closed after it; the error body."""
    with contextlib.closing(_connect(replica.url)) as conn:
        started = time.monotonic()
        conn.sendall(_head("/api/v1/uploads/refused.txt", token, 1024 * 1024))
        status, headers, body = _answer(conn)
        waited = time.monotonic() - started
    assert status == 429, body
    assert waited < REFUSAL_DEADLINE, f"the refusal took {waited:.1f} s"
    assert headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert headers["connection"].lower() == "close"  # its body was never read
    assert body["error"] == "too_many_uploads"
    return body


def quick_upload(replica: Gunicorn, token: str):
    """A small upload sent whole; the response."""
    return Api(replica.url, token).put(
        f"/api/v1/uploads/quick-{uuid.uuid4().hex[:8]}.txt", data=b"quick", headers={"Content-Type": "text/plain"}
    )


def holding(slots: UploadSlots, scope: str, value: str, count: int) -> None:
    """Wait until `count` slots of the scope are held in Redis (the uploads have reached the
    point where they read their body)."""
    assert wait_until(lambda: slots.in_use(scope, value) == count), (scope, slots.in_use(scope, value), count)


def test_caps_refuse_at_once_past_the_account_and_the_address_and_free_their_slots_after(depot, address, make_uploader):
    (replica, _other), slots = depot
    (alice, alice_id), (bob, bob_id) = make_uploader(), make_uploader()
    streaming = [SlowUpload(replica, alice), SlowUpload(replica, alice)]
    holding(slots, "account", alice_id, 2)

    time.sleep(LEASE + 1)  # longer than a lease: their workers keep renewing them
    assert slots.in_use("account", alice_id) == 2
    body = refused_at_once(replica, alice)
    assert body["message"].startswith(f"You already have {PER_ACCOUNT} uploads in progress")

    streaming.append(SlowUpload(replica, bob))  # another account: accepted, the address's third
    holding(slots, "address", address, PER_ADDRESS)
    body = refused_at_once(replica, bob)
    assert body["message"].startswith(f"{PER_ADDRESS} uploads are already in progress from your network address")

    assert streaming[0].finish() == 201
    streaming[1].cut()
    assert streaming[2].finish() == 201
    holding(slots, "address", address, 0)
    assert slots.in_use("account", alice_id) == slots.in_use("account", bob_id) == 0
    for token in (alice, alice, bob):
        response = quick_upload(replica, token)
        assert response.status_code == 201, response.text


def test_replicas_count_one_cap_together(depot, make_uploader):
    (replica_a, replica_b), slots = depot
    carol, carol_id = make_uploader()
    streaming = [SlowUpload(replica_a, carol), SlowUpload(replica_b, carol)]
    holding(slots, "account", carol_id, 2)

    for replica in (replica_a, replica_b):
        refused_at_once(replica, carol)

    assert [upload.finish() for upload in streaming] == [201, 201]
    assert quick_upload(replica_b, carol).status_code == 201


def test_the_slots_of_a_killed_worker_come_back_when_their_lease_ends(depot, make_uploader):
    (replica_a, replica_b), slots = depot
    dave, dave_id = make_uploader()
    streaming = [SlowUpload(replica_b, dave), SlowUpload(replica_b, dave)]
    holding(slots, "account", dave_id, 2)
    workers = {replica_b.worker_serving(upload.client_port) for upload in streaming}
    assert None not in workers, workers

    for pid in workers:
        os.kill(pid, signal.SIGKILL)  # no finally runs: nothing releases the slots
    killed = time.monotonic()
    for upload in streaming:
        upload.cut()

    refused_at_once(replica_a, dave)  # the dead worker's slots still count, on every replica
    assert slots.in_use("account", dave_id) == 2
    assert wait_until(lambda: slots.in_use("account", dave_id) == 0, timeout=LEASE + 5)
    assert time.monotonic() - killed <= LEASE + 5
    wait_for_http(f"{replica_b.url}/healthz", replica_b.process, replica_b.log_path, "the restarted workers")
    for replica in (replica_a, replica_b):
        response = quick_upload(replica, dave)
        assert response.status_code == 201, response.text
