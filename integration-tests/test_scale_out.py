"""The scale-out deployment, from local processes: requests go through nginx (the compose
template) to two gunicorn replicas sharing PostgreSQL, Redis and an S3 server (SeaweedFS,
authentication on).

Nothing a replica keeps in memory may matter to the other: an upload made through one is
downloaded from the other, a token revoked on one is refused by the other, and the login
rate limit counts across both. An S3 outage during an upload leaves neither a row nor an
object, and readiness reports it while it lasts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import uuid

import pytest
import requests
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, TOPOLOGY_MAX_UPLOAD, TOPOLOGY_RATE_LIMIT, Api
from processes import Nginx, free_port, wait_until
from requests.adapters import HTTPAdapter

PASSWORD = "scale-out password"
MIB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png(size: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)


@pytest.fixture(scope="module")
def admin(topology) -> Api:
    return Api(topology.proxy.url).login(ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
def uploader(topology, admin) -> tuple[str, Api]:
    """(email, client through the proxy) of a fresh uploader."""
    email = f"so-{uuid.uuid4().hex[:10]}@example.com"
    created = admin.post(
        "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "S", "roles": ["uploader"]}
    )
    assert created.status_code == 201, created.text
    return email, Api(topology.proxy.url).login(email, PASSWORD)


def upload_count(admin: Api) -> int:
    """Every upload, counted by following the listing's cursors."""
    count, params = 0, {"per_page": 100}
    while True:
        page = admin.get("/api/v1/uploads", params=params).json()
        count += len(page["items"])
        if page["next_cursor"] is None:
            return count
        params["cursor"] = page["next_cursor"]


def test_an_upload_through_the_proxy_is_served_by_the_other_replica(topology, uploader):
    _email, client = uploader
    data = png(12 * MIB)  # three S3 parts
    request_id = f"so-{uuid.uuid4().hex}"

    created = client.post("/api/v1/uploads", files={"file": ("big.png", data)}, headers={"X-Request-ID": request_id})

    assert created.status_code == 201, created.text
    assert created.headers["X-Request-ID"] == request_id
    served_by = topology.replica_serving(request_id)
    other = next(r for r in topology.replicas if r is not served_by)
    upload_id = created.json()["id"]
    downloaded = client.at(other.url).get(f"/api/v1/uploads/{upload_id}/content")
    through_proxy = client.get(f"/api/v1/uploads/{upload_id}/content", headers={"Range": "bytes=5242870-5242889"})
    assert downloaded.status_code == 200
    assert sha256(downloaded.content) == sha256(data) == created.json()["sha256"]
    assert through_proxy.status_code == 206
    assert through_proxy.content == data[5242870:5242890]
    assert f"objects/{upload_id.replace('-', '')}" in topology.bucket_keys()
    assert not [key for key in topology.bucket_keys() if key.startswith("staging/")]


def test_a_logout_on_one_replica_is_refused_by_the_other(topology, uploader):
    email, _client = uploader
    replica_a, replica_b = topology.replicas
    session = Api(replica_a.url).login(email, PASSWORD)
    token_client = session
    api_token = token_client.post("/api/v1/users/me/tokens", json={"name": "script"}).json()
    script = Api(replica_b.url, api_token["token"])

    assert session.at(replica_b.url).get("/api/v1/users/me").status_code == 200
    assert script.get("/api/v1/users/me").status_code == 200
    assert token_client.delete(f"/api/v1/users/me/tokens/{api_token['id']}").status_code == 204
    assert token_client.post("/api/v1/auth/logout").status_code == 204

    assert session.at(replica_b.url).get("/api/v1/users/me").status_code == 401
    assert script.get("/api/v1/users/me").status_code == 401


class SourceAddressAdapter(HTTPAdapter):
    """Connects from a chosen loopback address, so the proxy sees a distinct client."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def test_the_login_rate_limit_counts_across_replicas(topology):
    # A client of its own (127.0.0.x) behind the proxy: nginx forwards its address, Depot
    # trusts one proxy hop, and both replicas count it in Redis.
    client = requests.Session()
    client.mount("http://", SourceAddressAdapter(f"127.0.0.{uuid.uuid4().int % 200 + 20}"))
    wrong = {"email": "nobody@example.com", "password": "wrong password"}
    request_ids = [f"rl-{uuid.uuid4().hex}" for _ in range(TOPOLOGY_RATE_LIMIT + 1)]

    statuses = [
        client.post(f"{topology.proxy.url}/api/v1/auth/token", json=wrong, headers={"X-Request-ID": rid})
        for rid in request_ids
    ]

    assert [r.status_code for r in statuses] == [401] * TOPOLOGY_RATE_LIMIT + [429]
    assert statuses[-1].json()["error"] == "rate_limited"
    assert 0 < int(statuses[-1].headers["Retry-After"]) <= 60
    assert {topology.replica_serving(rid).port for rid in request_ids} == {r.port for r in topology.replicas}


def test_an_s3_outage_before_an_upload_stores_nothing_and_readiness_says_so(topology, uploader, admin):
    _email, client = uploader
    rows, keys = upload_count(admin), topology.bucket_keys()

    def readiness(status: int) -> list[dict | None]:
        """Each replica's /readyz body once it answers `status` (None if it never does): a
        replica reuses its readiness answer for a moment (app/services/health.py)."""

        def answered(replica):
            response = requests.get(f"{replica.url}/readyz", timeout=5)
            return response.json() if response.status_code == status else None

        return [wait_until(lambda r=r: answered(r), timeout=5) for r in topology.replicas]

    topology.relay.fail()
    try:
        refused = client.post("/api/v1/uploads", files={"file": ("a.png", png(1000))})
        during = readiness(503)
    finally:
        topology.relay.heal()

    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "unavailable"
    assert all(during), during
    assert during[0]["fields"] == {"storage": ["unavailable"]}
    assert all(readiness(200))
    assert (upload_count(admin), topology.bucket_keys()) == (rows, keys)


def test_an_s3_failure_in_the_middle_of_an_upload_leaves_neither_row_nor_object(topology, uploader, admin):
    _email, client = uploader
    rows, keys = upload_count(admin), topology.bucket_keys()
    data = png(24 * MIB)

    topology.relay.fail_after_bytes(8 * MIB)  # the second part never arrives
    try:
        try:
            response = client.post("/api/v1/uploads", files={"file": ("big.png", data)})
            status = response.status_code
        except requests.ConnectionError:
            status = None  # the server may answer and close before the client has sent everything
    finally:
        topology.relay.heal()

    assert status in (503, None)
    assert upload_count(admin) == rows
    assert topology.bucket_keys() == keys
    # The unfinished multipart upload (its abort failed too, the connection being cut) is
    # removed by the replica itself once the store answers again...
    assert wait_until(lambda: topology.unfinished_multipart_uploads() == [], timeout=15)
    assert topology.bucket_keys() == keys
    # ...and the storage check finds nothing more to repair.
    repaired = topology.flask("storage", "check", "--repair", "--grace", "0", "--quick")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert topology.unfinished_multipart_uploads() == []
    assert topology.bucket_keys() == keys


def test_the_proxy_refuses_a_body_over_the_limit_with_a_json_413(topology):
    request = (
        "POST /api/v1/uploads HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{topology.proxy.port}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {TOPOLOGY_MAX_UPLOAD + 2 * MIB}\r\n"
        "X-Request-ID: too-large-1\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", topology.proxy.port), timeout=10) as sock:
        sock.sendall(request.encode())  # the body is never sent: the limit is checked first
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk

    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"Content-Type: application/json" in head
    assert json.loads(body) == {
        "status": 413,
        "error": "payload_too_large",
        "message": "The request body is larger than this server accepts.",
        "fields": {},
        "request_id": "too-large-1",
    }


def test_the_proxy_answers_a_url_too_long_for_it_with_json(topology):
    response = requests.get(f"{topology.proxy.url}/api/v1/uploads?q={'x' * 20000}", timeout=10)

    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert "too long" in response.json()["message"]


def test_the_proxy_answers_a_json_503_when_no_replica_answers(tmp_path):
    proxy = Nginx([f"127.0.0.1:{free_port()}"], TOPOLOGY_MAX_UPLOAD, tmp_path)
    try:
        response = requests.get(f"{proxy.url}/api/v1/users/me", headers={"X-Request-ID": "no-replica-1"}, timeout=10)
    finally:
        proxy.stop()

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json() == {
        "status": 503,
        "error": "unavailable",
        "message": "No replica of the service is answering; try again shortly.",
        "fields": {},
        "request_id": "no-replica-1",
    }


def test_cors_preflight_and_security_headers_pass_through_the_proxy(topology):
    preflight = requests.options(
        f"{topology.proxy.url}/api/v1/uploads",
        headers={
            "Origin": "https://spa.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=10,
    )
    health = requests.get(f"{topology.proxy.url}/healthz", timeout=10)

    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://spa.example.com"
    assert health.headers["X-Content-Type-Options"] == "nosniff"
    assert "Server" not in health.headers or "nginx/" not in health.headers["Server"]


def test_metrics_add_up_the_workers_of_a_replica_and_stay_internal(topology, uploader):
    _email, client = uploader
    for _ in range(4):  # with two workers per replica, several land on each worker
        assert client.post("/api/v1/uploads", files={"file": ("m.png", png(2000))}).status_code == 201

    totals = []
    for replica in topology.replicas:
        text = requests.get(f"{replica.url}/metrics", timeout=10).text
        totals.append(
            sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("depot_uploads_total"))
        )
    blocked = requests.get(f"{topology.proxy.url}/metrics", timeout=10)

    assert sum(totals) >= 4
    assert blocked.status_code == 404 and blocked.json()["error"] == "not_found"


# Every JSON log line's time: ISO 8601 in UTC to the millisecond, with its zone.
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def test_logs_are_json_follow_the_request_id_and_hold_no_secrets(topology, uploader):
    _email, client = uploader
    token = client.token
    upload_id = client.post("/api/v1/uploads", files={"file": ("l.png", png(500))}).json()["id"]
    link = client.post(f"/api/v1/uploads/{upload_id}/links", json={}).json()
    link_token = link["url"].rsplit("/", 1)[1]
    request_id = f"trace-{uuid.uuid4().hex}"
    assert client.get("/api/v1/users/me", headers={"X-Request-ID": request_id}).status_code == 200
    assert requests.get(f"{topology.proxy.url}/api/v1/links/{link_token}", timeout=10).status_code == 200

    def replica_records() -> list[dict]:
        lines = [line for r in topology.replicas for line in r.log().splitlines() if line.strip()]
        return [json.loads(line) for line in lines]  # every line must be a JSON object

    assert wait_until(
        lambda: any(
            r.get("request_id") == request_id and r.get("path") == "/api/v1/users/me" for r in replica_records()
        )
    )
    assert wait_until(lambda: any(r["request_id"] == request_id for r in topology.proxy.access_records()))
    assert wait_until(lambda: "/api/v1/links/[redacted]" in topology.proxy.access_log.read_text())
    assert wait_until(lambda: any(r.get("path") == "/api/v1/links/[redacted]" for r in replica_records()))
    replica_lines = [line for r in topology.replicas for line in r.log().splitlines()]
    proxy_text = topology.proxy.access_log.read_text()
    for text in ("\n".join(replica_lines), proxy_text):
        assert token not in text
        assert link_token not in text
        assert "/api/v1/links/[redacted]" in text
    # One time format in every line, the proxy's and the replicas' (app, gunicorn, access).
    times = [r["time"] for r in replica_records()] + [r["time"] for r in topology.proxy.access_records()]
    assert times and [t for t in times if not ISO_TIME.match(t)] == []


def test_the_proxys_own_answers_name_only_an_allowed_origin(topology):
    def too_large(origin: str) -> requests.Response:
        return requests.put(
            f"{topology.proxy.url}/api/v1/raw-uploads/big.png",
            headers={"Origin": origin, "Content-Length": str(TOPOLOGY_MAX_UPLOAD + 2 * MIB)},
            data=b"",
            timeout=10,
        )

    allowed, other = too_large("https://spa.example.com"), too_large("https://elsewhere.example.com")

    assert (allowed.status_code, other.status_code) == (413, 413)
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://spa.example.com"
    assert "X-Request-ID" in allowed.headers["Access-Control-Expose-Headers"]
    assert not any(name.lower().startswith("access-control-") for name in other.headers), other.headers
