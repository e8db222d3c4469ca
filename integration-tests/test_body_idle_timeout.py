"""An upload whose body stops arriving is ended after BODY_IDLE_TIMEOUT_SECONDS (issue 12):
real gunicorn with gunicorn.conf.py, PostgreSQL and the local store, the timeout shortened
to 2 s. The client declares a body, sends part of it and then nothing, keeping its socket
open: it is answered a JSON 408 with `Connection: close`, nothing is staged and no upload
row exists. Without the timeout the gunicorn thread waits for as long as the client keeps
the socket open. A client that keeps sending, slowly but more often than the timeout,
finishes its upload, and the connection it kept alive has no timeout left on it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid

import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, depot_env, prepare_depot
from processes import Gunicorn, temporary_database

IDLE_TIMEOUT = 2
# Far longer than the idle timeout: a client that waits this long has hung on the server.
CLIENT_TIMEOUT = 15
KIB = 1024


@pytest.fixture(scope="module")
def depot(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("body-idle")
    with temporary_database() as database_url:
        data_dir = tmp_path / "data"
        env = depot_env(database_url, data_dir, BODY_IDLE_TIMEOUT_SECONDS=str(IDLE_TIMEOUT))
        prepare_depot(env)
        server = Gunicorn("body-idle", env, tmp_path, workers=1, threads=4)
        try:
            admin = Api(server.url).login(ADMIN_EMAIL, ADMIN_PASSWORD)
            yield server, admin, data_dir / "uploads" / "staging"
        finally:
            server.stop()


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=CLIENT_TIMEOUT)


def _head(method: str, path: str, token: str, length: int, content_type: str) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\n"
        "Host: depot\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _answer(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer read from `conn`: status, headers (lower-case names), body."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pytest.fail(f"no answer within {CLIENT_TIMEOUT} s: the server still waits for the body")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def _assert_nothing_stored(admin: Api, staging) -> None:
    assert list(staging.iterdir()) == [], "staged bytes were left behind"
    listing = admin.get("/api/v1/uploads")
    assert listing.status_code == 200, listing.text
    assert listing.json()["items"] == []


def _assert_body_timeout(status: int, headers: dict[str, str], body: bytes, waited: float) -> None:
    assert status == 408, body
    assert headers.get("connection", "").lower() == "close"
    error = json.loads(body)
    assert error["error"] == "body_timeout"
    assert error["message"] == f"The request body stopped arriving for {IDLE_TIMEOUT} s; nothing was stored."
    assert waited >= IDLE_TIMEOUT  # not answered before the client had stalled that long


def test_a_raw_upload_that_stops_sending_is_ended_with_408_and_nothing_stored(depot):
    server, admin, staging = depot
    with contextlib.closing(_connect(server.url)) as conn:
        conn.sendall(_head("PUT", "/api/v1/uploads/stalled.txt", admin.token, 1024 * KIB, "text/plain"))
        conn.sendall(b"x" * (100 * KIB))
        stalled = time.monotonic()
        status, headers, body = _answer(conn)
        _assert_body_timeout(status, headers, body, time.monotonic() - stalled)
        assert conn.recv(1) == b""  # the server closed the connection
    _assert_nothing_stored(admin, staging)


def test_a_multipart_upload_that_stops_sending_is_ended_with_408_and_nothing_stored(depot):
    server, admin, staging = depot
    boundary = uuid.uuid4().hex
    start = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="description"\r\n\r\n'
        "stalls halfway\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="stalled.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    with contextlib.closing(_connect(server.url)) as conn:
        content_type = f"multipart/form-data; boundary={boundary}"
        conn.sendall(_head("POST", "/api/v1/uploads", admin.token, 1024 * KIB, content_type))
        conn.sendall(start + b"x" * (100 * KIB))
        stalled = time.monotonic()
        status, headers, body = _answer(conn)
        _assert_body_timeout(status, headers, body, time.monotonic() - stalled)
    _assert_nothing_stored(admin, staging)


def test_a_body_trickling_faster_than_the_timeout_is_stored_and_leaves_no_timeout_behind(depot):
    server, admin, staging = depot
    chunks = 4
    with contextlib.closing(_connect(server.url)) as conn:
        conn.sendall(_head("PUT", "/api/v1/uploads/trickled.txt", admin.token, chunks * 10 * KIB, "text/plain"))
        for _ in range(chunks):
            time.sleep(1)  # half the idle timeout between chunks, 4 s in all
            conn.sendall(b"y" * (10 * KIB))
        status, headers, body = _answer(conn)
        assert status == 201, body
        assert json.loads(body)["size"] == chunks * 10 * KIB
        assert headers.get("connection", "").lower() != "close"

        # The same connection, kept alive: a request whose small body comes after a pause
        # longer than the idle timeout is answered (the timeout is an upload's, not the
        # connection's).
        login = json.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).encode()
        conn.sendall(
            b"POST /api/v1/auth/token HTTP/1.1\r\nHost: depot\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(login)}\r\n\r\n".encode()
        )
        time.sleep(IDLE_TIMEOUT + 1)
        conn.sendall(login)
        status, _headers, body = _answer(conn)
        assert status == 200, body
    assert list(staging.iterdir()) == []
    listing = admin.get("/api/v1/uploads").json()["items"]
    assert [item["filename"] for item in listing] == ["trickled.txt"]


# --- downloads: a client that stops reading --------------------------------------------------

DOWNLOAD_BYTES = 8 * 1024 * KIB


def _download_records(server: Gunicorn, path: str) -> list[dict]:
    records = []
    for line in server.log().splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("logger") == "gunicorn.access" and record.get("path") == path:
                records.append(record)
    return records


def _reader(server: Gunicorn, path: str, token: str) -> socket.socket:
    """A connection with a small receive window asking for `path`; it reads nothing yet."""
    host, port = server.url.removeprefix("http://").split(":")
    conn = socket.socket()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * KIB)  # before connecting: the window
    conn.settimeout(CLIENT_TIMEOUT)
    conn.connect((host, int(port)))
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: depot\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    return conn


@pytest.fixture(scope="module")
def large_file(depot) -> str:
    _server, admin, _staging = depot
    response = admin.put(
        "/api/v1/uploads/large.txt", data=b"d" * DOWNLOAD_BYTES, headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 201, response.text
    return f"/api/v1/uploads/{response.json()['id']}/content"


def test_a_download_whose_client_stops_reading_is_ended(depot, large_file):
    """Without a bound, the worker's greenlet (or thread) sending it, its file and its socket
    would wait for as long as the client keeps the connection open without reading."""
    server, admin, _staging = depot
    with contextlib.closing(_reader(server, large_file, admin.token)):
        started = time.monotonic()
        deadline = started + CLIENT_TIMEOUT + 5
        while not _download_records(server, large_file) and time.monotonic() < deadline:
            time.sleep(0.2)
        ended_after = time.monotonic() - started
        records = _download_records(server, large_file)
        assert records, f"the download was still being sent after {ended_after:.1f} s"
        assert records[0]["bytes_sent"] < DOWNLOAD_BYTES
        # The kernel's zero-window probes back off, so the end comes a few seconds after the
        # idle timeout; far sooner than never.
        assert ended_after < IDLE_TIMEOUT + 10


def test_a_download_read_slowly_but_steadily_goes_on(depot, large_file):
    server, admin, _staging = depot
    before = len(_download_records(server, large_file))
    with contextlib.closing(_reader(server, large_file, admin.token)) as conn:
        received = 0
        for _ in range(16):  # 8 s, four times the idle timeout, reading 4 KiB every half second
            time.sleep(0.5)
            received += len(conn.recv(4 * KIB))
        assert received > 16 * KIB
        assert len(_download_records(server, large_file)) == before  # still being sent
