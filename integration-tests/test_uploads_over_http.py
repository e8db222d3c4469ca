"""Uploads and downloads over real HTTP against gunicorn and PostgreSQL, checksums verified."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
from conftest import USER_PASSWORD

PNG = b"\x89PNG\r\n\x1a\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_multipart_upload_download_and_range(uploader):
    data = PNG + os.urandom(20 * 1024 * 1024)

    created = uploader.post(
        "/api/v1/uploads",
        files={"file": ("large.png", data, "image/png")},
        data={"description": "twenty megabytes", "tags": "big,test"},
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["size"], body["sha256"]) == (len(data), sha256(data))
    download = uploader.get(body["download_url"])
    assert download.status_code == 200
    assert sha256(download.content) == body["sha256"]
    assert download.headers["ETag"] == f'"{body["sha256"]}"'
    ranged = uploader.get(body["download_url"], headers={"Range": "bytes=1000000-1999999"})
    assert ranged.status_code == 206
    assert ranged.content == data[1_000_000:2_000_000]
    assert uploader.get(body["download_url"], headers={"If-None-Match": f'"{body["sha256"]}"'}).status_code == 304


def test_raw_streamed_put_with_content_digest(uploader):
    data = PNG + os.urandom(8 * 1024 * 1024)
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()

    def chunks():  # a generator body: requests sends it chunked, with no Content-Length
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]

    created = uploader.put(
        "/api/v1/uploads/streamed.png",
        data=chunks(),
        headers={"Content-Type": "image/png", "Content-Digest": f"sha-256=:{digest}:"},
    )

    assert created.status_code == 201, created.text
    assert created.json()["sha256"] == sha256(data)
    assert sha256(uploader.get(created.json()["download_url"]).content) == sha256(data)


def test_a_wrong_digest_over_http_stores_nothing(uploader):
    response = uploader.put(
        "/api/v1/uploads/wrong.png",
        data=PNG + b"x" * 1000,
        headers={
            "Content-Type": "image/png",
            "Content-Digest": "sha-256=:" + base64.b64encode(b"\0" * 32).decode() + ":",
        },
    )

    assert response.status_code == 422
    assert uploader.get("/api/v1/uploads", params={"q": "wrong.png"}).json()["items"] == []


def test_a_signed_link_works_without_authorization(uploader, server):
    data = PNG + os.urandom(100_000)
    upload = uploader.post("/api/v1/uploads", files={"file": ("shared.png", data)}).json()

    link = uploader.post(f"/api/v1/uploads/{upload['id']}/links", json={"expires_in": 300}).json()
    anonymous = requests.get(link["url"], timeout=30)

    assert link["url"].startswith(server)
    assert anonymous.status_code == 200
    assert sha256(anonymous.content) == sha256(data)
    assert uploader.delete(f"/api/v1/uploads/{upload['id']}/links").status_code == 204
    assert requests.get(link["url"], timeout=30).status_code == 404


def test_other_users_get_404(uploader, api, admin_api):
    upload = uploader.post("/api/v1/uploads", files={"file": ("private.png", PNG + b"1" * 100)}).json()
    email = f"other-{uuid.uuid4().hex[:8]}@example.com"
    api.post("/api/v1/auth/register", json={"email": email, "password": USER_PASSWORD, "name": "O"})
    other = api.login(email, USER_PASSWORD)

    assert other.get(f"/api/v1/uploads/{upload['id']}").status_code == 404
    assert other.get(upload["download_url"]).status_code == 404
    assert admin_api.get(upload["download_url"]).status_code == 200


def test_parallel_uploads_with_the_same_name_keep_their_content(uploader):
    payloads = [PNG + os.urandom(300_000) for _ in range(16)]

    def send(data):
        return uploader.post("/api/v1/uploads", files={"file": ("same.png", data, "image/png")})

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(send, payloads))

    assert [r.status_code for r in responses] == [201] * len(payloads)
    for response, data in zip(responses, payloads, strict=True):
        assert sha256(uploader.get(response.json()["download_url"]).content) == sha256(data)


def test_delete_then_storage_check_is_consistent(uploader, flask_cli):
    upload = uploader.post("/api/v1/uploads", files={"file": ("gone.png", PNG + b"2" * 100)}).json()

    assert uploader.delete(f"/api/v1/uploads/{upload['id']}").status_code == 204
    assert uploader.get(upload["download_url"]).status_code == 404
    check = flask_cli("storage", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().endswith("consistent")


def test_bad_chunk_framing_is_a_json_400(uploader, server):
    """gunicorn's own error for a chunk size that is not hex must become Depot's 400."""
    host, port = server.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("PUT", "/api/v1/uploads/notes.txt")
    for name, value in (
        ("Authorization", f"Bearer {uploader.token}"),
        ("Content-Type", "text/plain"),
        ("Transfer-Encoding", "chunked"),
    ):
        connection.putheader(name, value)
    connection.endheaders()
    connection.send(b"5\r\nhello\r\nzz\r\n")
    response = connection.getresponse()
    body = response.read()
    connection.close()

    assert response.status == 400, body
    assert json.loads(body)["error"] == "bad_request"


def test_listing_pages_with_cursors_on_postgresql(uploader):
    created = [
        uploader.post(
            "/api/v1/uploads", files={"file": (f"p{i}.png", PNG + os.urandom(100))}, data={"tags": "paging"}
        ).json()["id"]
        for i in range(5)
    ]

    seen, params = [], {"per_page": 2, "tag": "paging"}
    while True:
        page = uploader.get("/api/v1/uploads", params=params).json()
        seen.extend(item["id"] for item in page["items"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]

    assert seen == created[::-1]
