"""A download racing a DELETE of the same upload gets the whole file or a JSON 404, never a
503, on the local folder and on S3 (moto).

The race is injected at its seam: the DELETE, another request on another thread, commits
(row, then file) after the download has read the upload's row and before it opens the file,
or, on the local folder, just after it has opened it.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import pytest
from webtest import TestApp

from app.services.uploads import UploadService
from app.storage.base import FileStore
from tests.helpers import S3_SETTINGS, png_bytes

UPLOADS = "/api/v1/uploads"
DATA = png_bytes(50_000)
# How each download asks for the file, and the body it must get if it gets one.
DOWNLOADS = {
    "whole": ({}, 200, DATA),
    "range": ({"Range": "bytes=100-4099"}, 206, DATA[100:4100]),
    "share link": ({}, 200, DATA),
}


@pytest.fixture(params=["local", "s3"])
def shared_upload(request, uploader_on):
    """(client, owner's headers, upload id, share-link path) of a fresh upload of DATA, on each store in turn."""
    settings = {}
    if request.param == "s3":
        request.getfixturevalue("s3_client")
        settings = S3_SETTINGS
    client, headers = uploader_on(**settings)
    upload_id = client.post(UPLOADS, upload_files=[("file", "race.png", DATA)], headers=headers).json["id"]
    link = client.post_json(f"{UPLOADS}/{upload_id}/links", {}, headers=headers).json
    return client, headers, upload_id, urlsplit(link["url"]).path


def download(client, headers, upload_id, link_path, how: str):
    """GET the upload as DOWNLOADS[how] says, whatever the status."""
    extra, _status, _body = DOWNLOADS[how]
    if how == "share link":
        return client.get(link_path, status="*")
    return client.get(f"{UPLOADS}/{upload_id}/content", headers={**headers, **extra}, status="*")


def delete_from_another_thread(client, headers, upload_id) -> None:
    """A concurrent DELETE request, run to its end (row deleted, then file) on its own thread."""
    outcome = []
    other = TestApp(client.app)
    thread = threading.Thread(
        target=lambda: outcome.append(other.delete(f"{UPLOADS}/{upload_id}", headers=headers, status="*").status_int)
    )
    thread.start()
    thread.join(timeout=30)
    assert outcome == [204]


@pytest.mark.parametrize("how", DOWNLOADS)
def test_a_delete_committed_between_the_row_read_and_the_file_open_is_a_json_404(shared_upload, monkeypatch, how):
    client, headers, upload_id, link_path = shared_upload
    service = client.app.injector.get(UploadService)
    prepare = service._download

    def row_read_then_deleted(*args):
        ready = prepare(*args)
        delete_from_another_thread(client, headers, upload_id)
        return ready

    monkeypatch.setattr(service, "_download", row_read_then_deleted)
    response = download(client, headers, upload_id, link_path, how)

    assert response.status_int == 404, response.text
    assert response.content_type == "application/json"
    assert response.json["error"] == "not_found"


@pytest.mark.parametrize("how", DOWNLOADS)
def test_a_file_gone_while_its_row_is_still_there_is_still_a_503(shared_upload, how):
    client, headers, upload_id, link_path = shared_upload
    store = client.app.injector.get(FileStore)
    store.delete(download_key(upload_id))  # the store lost it: no delete of the upload was committed

    response = download(client, headers, upload_id, link_path, how)

    assert response.status_int == 503, response.text
    assert response.json["error"] == "unavailable"


@pytest.mark.parametrize("how", DOWNLOADS)
def test_on_the_local_folder_a_delete_after_the_open_does_not_cut_the_download(uploader_on, monkeypatch, how):
    client, headers = uploader_on()
    upload_id = client.post(UPLOADS, upload_files=[("file", "race.png", DATA)], headers=headers).json["id"]
    link_path = urlsplit(client.post_json(f"{UPLOADS}/{upload_id}/links", {}, headers=headers).json["url"]).path
    store = client.app.injector.get(FileStore)
    open_file = store.open
    opened = []

    def opened_then_deleted(key, offset=0):
        handle = open_file(key, offset)
        opened.append(key)
        delete_from_another_thread(client, headers, upload_id)
        return handle

    monkeypatch.setattr(store, "open", opened_then_deleted)
    response = download(client, headers, upload_id, link_path, how)

    _extra, status, body = DOWNLOADS[how]
    assert opened == [download_key(upload_id)]
    assert (response.status_int, response.body) == (status, body)
    assert client.get(f"{UPLOADS}/{upload_id}/content", headers=headers, status="*").status_int == 404


def download_key(upload_id: str) -> str:
    """The storage key Depot gives an upload (its id without dashes)."""
    return upload_id.replace("-", "")
