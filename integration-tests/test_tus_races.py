"""Two PATCHes racing on one resumable upload, over real HTTP to gunicorn: one writes, the
other is refused (423 while the first holds the upload, 409 once its offset is stale), and
the finished file is exactly the source."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import requests

MIB = 1024 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


class _Trickle:
    """A body sent in 256 KiB pieces with a pause between them (requests streams it)."""

    def __init__(self, data: bytes, pause: float) -> None:
        self._data, self._pause, self._at = data, pause, 0
        self.started = threading.Event()

    def __len__(self) -> int:
        return len(self._data)

    def read(self, size: int = -1) -> bytes:
        self.started.set()
        time.sleep(self._pause)
        piece = self._data[self._at : self._at + 256 * 1024]
        self._at += len(piece)
        return piece


def _patch(url: str, token: str, offset: int, body) -> requests.Response:
    return requests.patch(
        url,
        data=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
        timeout=60,
    )


def test_racing_patches_never_corrupt_an_upload(server, uploader):
    data = PNG_MAGIC + os.urandom(4 * MIB - len(PNG_MAGIC))
    created = uploader.post(
        "/api/v1/tus",
        headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)), "Upload-Metadata": "filename ci5wbmc="},
    )
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    first_body = _Trickle(data, pause=0.05)
    answers: dict[str, requests.Response] = {}
    first = threading.Thread(target=lambda: answers.setdefault("first", _patch(url, uploader.token, 0, first_body)))
    first.start()
    assert first_body.started.wait(10)
    time.sleep(0.3)  # the first PATCH holds the upload now

    rival = _patch(url, uploader.token, 0, os.urandom(len(data)))  # other bytes at the same offset
    first.join(60)
    late = _patch(url, uploader.token, 0, os.urandom(len(data)))  # the same, once the first is done

    assert rival.status_code == 423, rival.text
    assert answers["first"].status_code == 204, answers["first"].text
    assert late.status_code == 409, late.text
    upload_id = answers["first"].headers["Depot-Upload-Id"]
    content = uploader.get(f"/api/v1/uploads/{upload_id}/content")
    assert hashlib.sha256(content.content).hexdigest() == hashlib.sha256(data).hexdigest()
