"""Uploads and downloads with STORAGE_BACKEND=s3, on moto's in-process S3: the same promises
as on a local folder (one transaction, nothing left on failure), plus presigned redirects."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from botocore.exceptions import EndpointConnectionError

from app.storage.base import FileStore
from tests.helpers import S3_BUCKET, S3_SETTINGS, png_bytes, sha256_hex


def bucket_keys(s3_client) -> list[str]:
    return sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=S3_BUCKET).get("Contents", []))


def post_file(client, headers, data, status=201, name="picture.png"):
    return client.post("/api/v1/uploads", upload_files=[("file", name, data)], headers=headers, status=status)


@pytest.fixture
def s3_uploader(s3_client, uploader_on):
    """(client, headers) of an uploader on an app whose files live in the moto bucket."""
    return uploader_on(**S3_SETTINGS)


def test_upload_lands_in_the_bucket_and_downloads_whole(s3_uploader, s3_client):
    client, headers = s3_uploader
    data = png_bytes(300_000)

    created = post_file(client, headers, data).json
    response = client.get(f"/api/v1/uploads/{created['id']}/content", headers=headers, status=200)

    assert bucket_keys(s3_client) == [f"objects/{created['id'].replace('-', '')}"]
    assert response.body == data
    assert response.headers["ETag"] == f'"{sha256_hex(data)}"'
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Content-Disposition"].startswith('attachment; filename="picture.png"')


def test_ranges_and_revalidation_work_from_the_bucket(s3_uploader):
    client, headers = s3_uploader
    data = png_bytes(100_000)
    url = f"/api/v1/uploads/{post_file(client, headers, data).json['id']}/content"

    partial = client.get(url, headers={**headers, "Range": "bytes=1000-1999"}, status=206)
    tail = client.get(url, headers={**headers, "Range": "bytes=-10"}, status=206)
    etag = partial.headers["ETag"]
    client.get(url, headers={**headers, "If-None-Match": etag}, status=304)
    stale = client.get(url, headers={**headers, "Range": "bytes=10-19", "If-Range": '"other"'}, status=200)

    assert partial.body == data[1000:2000]
    assert partial.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert tail.body == data[-10:]
    assert stale.body == data  # If-Range did not match: the whole file, from its first byte


def test_delete_removes_the_object_after_the_row(s3_uploader, s3_client):
    client, headers = s3_uploader
    upload_id = post_file(client, headers, png_bytes()).json["id"]

    client.delete(f"/api/v1/uploads/{upload_id}", headers=headers, status=204)

    assert bucket_keys(s3_client) == []


def test_a_store_failure_at_commit_leaves_neither_row_nor_object(s3_uploader, s3_client, monkeypatch):
    client, headers = s3_uploader
    store = client.app.injector.get(FileStore).inner

    def unreachable(**_kwargs):
        raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    monkeypatch.setattr(store.client, "copy_object", unreachable)
    response = post_file(client, headers, png_bytes(), status=503)

    assert response.json["error"] == "unavailable"
    assert "s3.invalid" not in response.text
    assert client.get("/api/v1/uploads", headers=headers).json["items"] == []
    assert bucket_keys(s3_client) == []


def test_a_missing_object_is_a_503_not_a_broken_download(s3_uploader, s3_client):
    client, headers = s3_uploader
    upload_id = post_file(client, headers, png_bytes()).json["id"]
    s3_client.delete_object(Bucket=S3_BUCKET, Key="objects/" + upload_id.replace("-", ""))

    response = client.get(f"/api/v1/uploads/{upload_id}/content", headers=headers, status=503)

    assert response.json["error"] == "unavailable"


def test_presigned_mode_redirects_to_a_short_lived_url(s3_client, uploader_on):
    client, headers = uploader_on(**S3_SETTINGS, DOWNLOAD_REDIRECT="presigned", PRESIGNED_URL_TTL_SECONDS="30")
    upload_id = post_file(client, headers, png_bytes()).json["id"]

    response = client.get(f"/api/v1/uploads/{upload_id}/content", headers=headers, status=302)
    link = client.post_json(f"/api/v1/uploads/{upload_id}/links", {}, headers=headers).json
    shared = client.get(urlsplit(link["url"]).path, status=302)

    location = response.headers["Location"]
    assert response.json == {"url": location}
    assert response.headers["Cache-Control"] == "no-store"
    assert f"/objects/{upload_id.replace('-', '')}" in location
    assert "X-Amz-Expires=30" in location and "X-Amz-Signature=" in location
    assert "X-Amz-Signature=" in shared.headers["Location"]


@pytest.fixture
def s3_unreadable(s3_uploader, monkeypatch):
    """(client, headers, content url, data) for an upload whose object can no longer be read."""
    client, headers = s3_uploader
    data = png_bytes(5000)
    url = f"/api/v1/uploads/{post_file(client, headers, data).json['id']}/content"
    store = client.app.injector.get(FileStore).inner

    def unreachable(**_kwargs):
        raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    monkeypatch.setattr(store.client, "get_object", unreachable)
    return client, headers, url, data


def test_conditional_head_and_unsatisfiable_requests_never_touch_the_store(s3_unreadable):
    client, headers, url, data = s3_unreadable
    etag = f'"{sha256_hex(data)}"'

    head = client.head(url, headers=headers, status=200)
    not_modified = client.get(url, headers={**headers, "If-None-Match": etag}, status=304)
    ranged_but_current = client.get(url, headers={**headers, "If-None-Match": etag, "Range": "bytes=0-9"}, status=304)
    failed = client.get(url, headers={**headers, "If-Match": '"other"'}, status=412)
    unsatisfiable = client.get(url, headers={**headers, "Range": "bytes=999999-"}, status=416)

    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["ETag"] == etag and head.headers["Accept-Ranges"] == "bytes"
    assert not_modified.body == b"" and ranged_but_current.body == b""
    assert failed.json["error"] == "precondition_failed"  # the JSON error, never the file
    assert unsatisfiable.json["status"] == 416
    assert unsatisfiable.headers["Content-Range"] == f"bytes */{len(data)}"
    client.get(url, headers=headers, status=503)  # only a body needs the store


def test_a_head_request_is_answered_here_even_in_presigned_mode(s3_client, uploader_on):
    client, headers = uploader_on(**S3_SETTINGS, DOWNLOAD_REDIRECT="presigned")
    upload_id = post_file(client, headers, png_bytes(700)).json["id"]

    head = client.head(f"/api/v1/uploads/{upload_id}/content", headers=headers, status=200)

    assert head.headers["Content-Length"] == "700"
    assert "Location" not in head.headers
