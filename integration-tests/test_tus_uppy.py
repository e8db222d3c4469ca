"""Uppy with @uppy/tus, the most used browser upload widget, in Debian's Chromium (driven by
Playwright) uploading to Depot: the page is a single-page app on another origin (one that
Depot's CORS_ORIGINS allows), the file is chosen in its file input, the upload is paused
midway and resumed, and the finished file is downloaded and compared by SHA-256.

- Through the scale-out deployment (nginx, the compose template, in front of two gunicorn
  replicas, the S3 store), the upload's PATCHes reach both replicas: any replica continues
  any upload.
- On the session's gunicorn server, with the local store.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from conftest import TOPOLOGY_MAX_UPLOAD, Api
from js_clients import chromium_context, open_uppy_page

MIB = 1024 * 1024
# Under the topology's upload limit; several PATCHes of CHUNK, so nginx spreads them.
SIZE = 48 * MIB
CHUNK = 8 * MIB
# Past half the file, while a PATCH is in flight (Chromium reports an upload's progress in
# coarse steps, so the pause may come once that PATCH's body has gone but before its answer).
PAUSE_AT = 3 * CHUNK + CHUNK // 2
TUS = {"Tus-Resumable": "1.0.0"}
# Generous bounds for a browser on a 2-core machine; a hang fails instead of blocking.
WAIT_MS = 180_000

assert SIZE < TOPOLOGY_MAX_UPLOAD


def write_source(folder: Path) -> tuple[Path, str]:
    """SIZE random bytes starting like a PNG, in a file a user would pick, and their SHA-256."""
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(SIZE - 8)
    path = folder / f"holiday-{uuid.uuid4().hex[:6]}.png"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def after(marks: list[dict], kind: str) -> list[dict]:
    """The page's exchanges after its `kind` mark ("pause" or "resume")."""
    index = next(i for i, entry in enumerate(marks) if entry["kind"] == kind)
    return marks[index + 1 :]


def upload_paused_and_resumed(base_url: str, uploader: Api, tmp_path: Path) -> str:
    """Upload a file with Uppy in Chromium to the Depot at `base_url`, paused midway then
    resumed; check that it resumed rather than restarted and that the finished upload it names
    holds the file. The upload's tus path."""
    source, source_sha256 = write_source(tmp_path)

    with chromium_context(tmp_path / "chromium-profile") as context:
        page = open_uppy_page(context)
        versions = page.evaluate("() => depot.state.versions")
        assert versions == {"core": "6.0.1", "tus": "6.0.0"}, versions  # the locked bundle
        page.evaluate(
            "options => depot.configure(options)",
            {
                "endpoint": f"{base_url}/api/v1/tus",
                "token": uploader.token,
                "chunkSize": CHUNK,
                "pauseAtBytes": PAUSE_AT,
            },
        )
        page.set_input_files("#file", str(source))
        page.evaluate("() => depot.start()")
        page.wait_for_function("() => depot.state.paused !== null || depot.state.error !== null", timeout=WAIT_MS)
        paused = page.evaluate("() => depot.state")
        assert paused["error"] is None, json.dumps(paused)

        # Paused midway: the server has part of it, and no finished upload exists yet.
        tus_path = urlsplit(paused["paused"]["uploadURL"]).path
        status = uploader.get(tus_path, headers=TUS)
        assert status.status_code == 200, status.text
        assert 0 < status.json()["offset"] < SIZE and status.json()["upload"] is None
        listed = uploader.get("/api/v1/uploads", params={"per_page": 100}).json()["items"]
        assert source.name not in [item["filename"] for item in listed]

        page.evaluate("() => depot.resume()")
        page.wait_for_function("() => depot.state.success !== null || depot.state.error !== null", timeout=WAIT_MS)
        state = page.evaluate("() => depot.state")

    assert state["error"] is None, json.dumps(state)
    # Resumed, not restarted: Uppy asked how far the server got (HEAD) and sent only the rest.
    resumed = after(state["exchanges"], "resume")
    assert not [e for e in resumed if e.get("method") == "POST"], resumed
    head = next(e for e in resumed if e["kind"] == "response" and e["method"] == "HEAD")
    resumed_at = int(head["uploadOffset"])
    assert resumed_at > 0, json.dumps(resumed)
    first_patch = next(e for e in resumed if e["kind"] == "request" and e["method"] == "PATCH")
    assert first_patch["uploadOffset"] == str(resumed_at), json.dumps(resumed)

    # The finished upload, as Uppy's upload-success event tells it.
    upload_id = state["success"]["depotUploadId"]
    assert upload_id and state["success"]["contentLocation"] == f"{base_url}/api/v1/uploads/{upload_id}", state[
        "success"
    ]
    described = uploader.get(f"/api/v1/uploads/{upload_id}")
    assert described.status_code == 200, described.text
    assert (described.json()["size"], described.json()["sha256"]) == (SIZE, source_sha256)
    download = uploader.get(f"/api/v1/uploads/{upload_id}/content")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == source_sha256
    return tus_path


def test_uppy_in_chromium_pauses_and_resumes_through_nginx_across_both_replicas(topology, topology_uploader, tmp_path):
    uploader = topology_uploader
    tus_path = upload_paused_and_resumed(topology.proxy.url, uploader, tmp_path)

    # nginx sent this upload's PATCHes to both replicas.
    patched_by = {
        record["upstream"]
        for record in topology.proxy.access_records()
        if record["method"] == "PATCH" and record["path"] == tus_path
    }
    assert patched_by == {f"127.0.0.1:{replica.port}" for replica in topology.replicas}, patched_by


def test_uppy_in_chromium_pauses_and_resumes_on_the_local_store(server, uploader, tmp_path):
    upload_paused_and_resumed(server, uploader, tmp_path)
