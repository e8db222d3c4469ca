"""A download racing a delete of the same upload, over real gunicorn on PostgreSQL with the
local store: every answer is the whole file (200, or 206 for a Range) or a JSON 404, never a
503 nor a truncated body.

Each round uploads a fresh file, makes a share link to it, then starts three downloads (the
whole file, a Range, the share link) and the DELETE together, behind one barrier.
"""

from __future__ import annotations

import collections
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

PNG = b"\x89PNG\r\n\x1a\n"
ROUNDS = 200
FILE_BYTES = 128 * 1024
RANGE = (1000, 99_999)


def _verdict(response, expected: bytes, status: int) -> str:
    """'file' for the whole expected body, 'gone' for a JSON 404, else what went wrong."""
    if response.status_code == status and response.content == expected:
        return "file"
    if response.status_code == 404 and response.headers.get("Content-Type") == "application/json":
        if response.json().get("error") == "not_found":
            return "gone"
    return f"{response.status_code} ({len(response.content)} of {len(expected)} bytes)"


def _race_once(uploader, api) -> list[str]:
    data = PNG + os.urandom(FILE_BYTES - len(PNG))
    created = uploader.post("/api/v1/uploads", files={"file": ("race.png", data, "image/png")})
    assert created.status_code == 201, created.text
    upload = created.json()
    link = uploader.post(f"/api/v1/uploads/{upload['id']}/links", json={})
    assert link.status_code == 201, link.text
    shared_path = urlsplit(link.json()["url"]).path
    start, end = RANGE
    ranged = {"Range": f"bytes={start}-{end}"}

    downloads = [
        (lambda: uploader.get(upload["download_url"]), data, 200),
        (lambda: uploader.get(upload["download_url"], headers=ranged), data[start : end + 1], 206),
        (lambda: api.get(shared_path), data, 200),
    ]
    barrier = threading.Barrier(len(downloads) + 1)
    verdicts: list[str] = []
    deleted: list[int] = []

    def download(fetch, expected, status):
        barrier.wait()
        verdicts.append(_verdict(fetch(), expected, status))

    def delete():
        barrier.wait()
        deleted.append(uploader.delete(f"/api/v1/uploads/{upload['id']}").status_code)

    threads = [threading.Thread(target=download, args=args) for args in downloads]
    threads.append(threading.Thread(target=delete))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert deleted == [204]
    return verdicts


def test_a_download_racing_a_delete_is_the_whole_file_or_404(uploader, api):
    seen: collections.Counter[str] = collections.Counter()
    # Two rounds at a time: eight requests, as many as the server's 2 workers x 4 threads.
    with ThreadPoolExecutor(2) as rounds:
        for verdicts in rounds.map(lambda _: _race_once(uploader, api), range(ROUNDS)):
            seen.update(verdicts)

    print(f"answers to {ROUNDS * 3} downloads racing a delete: {dict(seen)}")
    wrong = {verdict: count for verdict, count in seen.items() if verdict not in ("file", "gone")}
    assert not wrong, f"answers other than the whole file or a JSON 404: {wrong} (all: {dict(seen)})"
    # Both outcomes occurred, so the downloads did race the deletes.
    assert seen["file"] and seen["gone"], dict(seen)
