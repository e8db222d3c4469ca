"""Uploads Depot refuses before reading their bodies, through nginx's upstream keep-alive.

nginx (the compose template: `keepalive`, HTTP/1.1 to the replicas, request buffering off)
keeps a connection to gunicorn after each answer. When Depot refused an upload from its
headers alone (no token, a Content-Length over the limit, a refused file type), the body
was left unread on that connection; gunicorn drained only 64 KiB of it and then closed the
connection it had just announced as kept alive, and nginx, which had already sent the whole
body and pooled the connection, sent the next request on it and answered 502 (shown as 503).
Now Depot drains a small body before answering and closes after a larger one (app.keepalive).

Here several keep-alive clients mix such refusals, of bodies Depot drains and of bodies it
does not, with ordinary requests through one nginx and one gunicorn replica, and not one
answer may be a 502 or 503.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
import requests
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, depot_env, prepare_depot
from processes import Gunicorn, Nginx, find_nginx, temporary_database

from app.keepalive import DRAIN_BYTES

MAX_UPLOAD = 128 * 1024
SMALL_BODY = 256 * 1024  # over MAX_UPLOAD, over what gunicorn drains, drained by Depot
LARGE_BODY = 2 * DRAIN_BYTES  # left unread: the connection closes (nginx allows MAX_UPLOAD + 1 MiB)
CLIENTS = 4
ROUNDS = 40  # per client, each of 4 requests: 640 requests
PASSWORD = "keep-alive password"


@dataclass
class Proxied:
    """The proxy's URL, the replica's, and an uploader's token and upload (to PATCH) there."""

    url: str
    replica_url: str
    token: str
    upload_id: str


@pytest.fixture(scope="module")
def proxied(tmp_path_factory) -> Proxied:
    """nginx (the compose template) in front of one gunicorn replica (gunicorn.conf.py) with
    a small upload limit; an uploader with one upload."""
    find_nginx()
    logs = tmp_path_factory.mktemp("keepalive")
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(temporary_database())
        env = depot_env(
            database_url,
            logs / "data",
            MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
            AUTH_RATE_LIMIT="1000 per minute",
            PROXY_COUNT="1",
        )
        prepare_depot(env)
        replica = Gunicorn("replica", env, logs)
        stack.callback(replica.stop)
        proxy = Nginx([f"127.0.0.1:{replica.port}"], MAX_UPLOAD, logs)
        stack.callback(proxy.stop)

        admin = Api(proxy.url).login(ADMIN_EMAIL, ADMIN_PASSWORD)
        email = f"ka-{uuid.uuid4().hex[:10]}@example.com"
        created = admin.post(
            "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "K", "roles": ["uploader"]}
        )
        assert created.status_code == 201, created.text
        uploader = Api(proxy.url).login(email, PASSWORD)
        upload = uploader.put("/api/v1/uploads/notes.txt", data=b"notes\n")
        assert upload.status_code == 201, upload.text
        yield Proxied(proxy.url, replica.url, uploader.token, upload.json()["id"])


def _client(proxied: Proxied, seen: Counter, wrong: list, lock: threading.Lock) -> None:
    """One keep-alive client: ROUNDS of (a refused upload, GET /users/me, PATCH metadata)."""
    small, large = os.urandom(SMALL_BODY), os.urandom(LARGE_BODY)
    # nginx answers the client as soon as Depot does; with the client's body not all read by
    # then, it closes the client's connection after the answer, which a client reusing it
    # may find closed: so the client itself closes after sending a body Depot leaves unread.
    unread = {"Authorization": None, "Connection": "close"}
    refusals = [
        # No token: 401 before the body is read.
        ("POST", "/api/v1/uploads", {"files": {"file": ("a.png", small)}, "headers": {"Authorization": None}}, 401),
        # A Content-Length over MAX_UPLOAD_BYTES (nginx allows it: its limit adds 1 MiB).
        ("PUT", "/api/v1/uploads/big.txt", {"data": small}, 413),
        # A file type Depot refuses: 415 from the name alone.
        ("PUT", "/api/v1/uploads/tool.exe", {"data": small[: MAX_UPLOAD - 1]}, 415),
        # No token, and a body too large to drain.
        ("PUT", "/api/v1/uploads/large.txt", {"data": large, "headers": unread}, 401),
    ]
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {proxied.token}"
        for round_ in range(ROUNDS):
            method, path, kwargs, refused = refusals[round_ % len(refusals)]
            steps = [
                (method, path, kwargs, refused),
                ("GET", "/api/v1/users/me", {}, 200),
                ("PATCH", f"/api/v1/uploads/{proxied.upload_id}", {"json": {"description": f"r{round_}"}}, 200),
                ("GET", "/healthz", {}, 200),
            ]
            for method_, path_, kwargs_, expected in steps:
                try:
                    status = http.request(method_, proxied.url + path_, timeout=30, **kwargs_).status_code
                except requests.RequestException as error:
                    status = f"{type(error).__name__}: {error}"[:200]
                with lock:
                    seen[status] += 1
                    if status != expected:
                        wrong.append((method_, path_, expected, status))


def test_refused_uploads_never_cost_the_next_request_a_503(proxied):
    seen: Counter = Counter()
    wrong: list = []
    lock = threading.Lock()
    clients = [threading.Thread(target=_client, args=(proxied, seen, wrong, lock)) for _ in range(CLIENTS)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=120)

    unavailable = seen[502] + seen[503]
    assert sum(seen.values()) == CLIENTS * ROUNDS * 4, seen
    assert unavailable == 0, f"{unavailable} answers were 502/503 of {sum(seen.values())}: {dict(seen)}"
    assert not wrong, f"{len(wrong)} unexpected answers, first {wrong[:5]}; all: {dict(seen)}"


def test_gunicorn_says_and_does_close_after_a_refusal_that_left_the_body_unread(proxied):
    with requests.Session() as http:
        refused = http.put(f"{proxied.replica_url}/api/v1/uploads/large.txt", data=os.urandom(LARGE_BODY), timeout=30)
        drained = http.put(f"{proxied.replica_url}/api/v1/uploads/small.txt", data=os.urandom(SMALL_BODY), timeout=30)
        served = http.get(f"{proxied.replica_url}/healthz", timeout=30)

    assert (refused.status_code, refused.headers["Connection"]) == (401, "close")
    assert (drained.status_code, drained.headers["Connection"]) == (401, "keep-alive")
    assert served.status_code == 200
