"""Parallel uploads with the same original filename each keep their own content."""

from __future__ import annotations

import os
import threading

from webtest import TestApp

from tests.helpers import sha256_hex

THREADS = 6
PER_THREAD = 4


def test_parallel_uploads_of_the_same_name_all_survive_with_their_own_content(app, uploader_headers):
    results, errors = [], []

    def worker(n: int) -> None:
        client = TestApp(app)  # one client per thread, one app and one database for all
        try:
            for i in range(PER_THREAD):
                data = b"\x89PNG\r\n\x1a\n" + f"{n}-{i}".encode() + os.urandom(50_000)
                response = client.post(
                    "/api/v1/uploads", upload_files=[("file", "same.png", data)], headers=uploader_headers
                )
                results.append((response.json, data))
        except Exception as error:  # noqa: BLE001 (reported below, with the thread's number)
            errors.append((n, error))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert len(results) == THREADS * PER_THREAD
    assert len({body["id"] for body, _data in results}) == THREADS * PER_THREAD
    client = TestApp(app)
    for body, data in results:
        assert body["filename"] == "same.png"
        assert body["sha256"] == sha256_hex(data)
        assert client.get(f"/api/v1/uploads/{body['id']}/content", headers=uploader_headers).body == data
    listing = client.get("/api/v1/uploads", {"per_page": 100}, headers=uploader_headers).json
    assert len(listing["items"]) == THREADS * PER_THREAD
