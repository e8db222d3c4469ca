"""tus-js-client (npm), the JavaScript tus client most applications use, under Node against
Depot over real HTTP (gunicorn, PostgreSQL, the local store): about 100 MiB, cut off midway,
resumed, finished, then downloaded and compared by SHA-256.

Two ways an upload is cut off, each resumed the way tus-js-client resumes it:
- the network path drops (a relay resets the TCP connection midway): the same process
  retries on its own, asks the server how far it got (HEAD) and sends only the rest;
- the program stops (upload.abort() midway, then the process ends): a new process finds the
  upload's URL where tus-js-client stored it (FileUrlStorage) and continues it.
The first also runs through the scale-out deployment (nginx, two replicas, the S3 store),
with the file sent in PATCHes of a few MiB as a client behind a proxy would. And with
`uploadDataDuringCreation`, tus-js-client's first chunk rides on the creation request
(creation-with-upload).

The finished upload is learnt as an application would: from the `Depot-Upload-Id` header of
the PATCH that completed it.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import TOPOLOGY_MAX_UPLOAD, Api
from js_clients import NodeRun, run_tus_js_client
from processes import FaultRelay

MIB = 1024 * 1024
SIZE = 100 * MIB
# Through the scale-out deployment: under its upload limit, in PATCHes of CHUNK.
TOPOLOGY_SIZE = 56 * MIB
CHUNK = 8 * MIB
TUS = {"Tus-Resumable": "1.0.0"}
# Enough retries to outlast the lease a cut-off request may still hold on the server
# (ResumableUploadService.LEASE_SECONDS): a PATCH sent meanwhile is refused with 423.
RETRY_DELAYS = [0, 500, 1000, 2000, 4000, 8000]

assert TOPOLOGY_SIZE < TOPOLOGY_MAX_UPLOAD


def write_source(path: Path, size: int) -> str:
    """`size` random bytes starting like a PNG, written to `path`; their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for index in range(size // MIB):
            block = (b"\x89PNG\r\n\x1a\n" + os.urandom(MIB - 8)) if index == 0 else os.urandom(MIB)
            digest.update(block)
            file.write(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, str]:
    """About 100 MiB of random bytes starting like a PNG, on disk, and their SHA-256."""
    path = tmp_path_factory.mktemp("tus-js-client") / "source.png"
    return path, write_source(path, SIZE)


@pytest.fixture
def relay(server):
    """A TCP relay in front of the `server` Depot, which can cut connections midway."""
    relay = FaultRelay(urlsplit(server).port)
    yield relay
    relay.close()


def metadata(source_sha256: str | None = None) -> dict[str, str]:
    pairs = {"filename": f"tus-js-{uuid.uuid4().hex[:8]}.png", "filetype": "image/png"}
    if source_sha256:
        pairs["sha256"] = source_sha256
    return pairs


def assert_resumed(run: NodeRun, events: list[dict], size: int) -> int:
    """In `events` (a part of `run`'s), tus-js-client created nothing new, asked the server how
    far the upload got (HEAD), and sent its next PATCH from there, past 0: the offset."""
    assert not [e for e in events if e["event"] == "request" and e["method"] == "POST"], run.describe()
    at = next(i for i, e in enumerate(events) if e["event"] == "response" and e["method"] == "HEAD")
    resumed_at = int(events[at]["uploadOffset"])
    assert 0 < resumed_at < size, run.describe()
    patch = next(e for e in events[at:] if e["event"] == "request" and e["method"] == "PATCH")
    assert patch["uploadOffset"] == str(resumed_at), run.describe()
    return resumed_at


def after_first(run: NodeRun, kind: str) -> list[dict]:
    """`run`'s events after its first `kind` event."""
    index = next((i for i, e in enumerate(run.events) if e["event"] == kind), None)
    assert index is not None, f"tus-js-client reported no {kind!r} event:\n{run.describe()}"
    return run.events[index + 1 :]


def assert_downloads_intact(uploader: Api, upload_id: str, source_sha256: str, size: int) -> None:
    """The finished upload is listed with the file's size and SHA-256, and its download has them."""
    described = uploader.get(f"/api/v1/uploads/{upload_id}")
    assert described.status_code == 200, described.text
    assert (described.json()["size"], described.json()["sha256"]) == (size, source_sha256)
    download = uploader.http.get(f"{uploader.base_url}/api/v1/uploads/{upload_id}/content", stream=True, timeout=60)
    assert download.status_code == 200, download.text
    digest, received = hashlib.sha256(), 0
    for block in download.iter_content(MIB):
        digest.update(block)
        received += len(block)
    assert (received, digest.hexdigest()) == (size, source_sha256)


def upload_through_a_dropping_network(uploader: Api, relay: FaultRelay, path: Path, size: int, **options) -> str:
    """Upload `path` with tus-js-client through `relay`, which cuts the connection once half the
    file went through; check it resumed rather than restarted. The finished upload's id."""
    relay.fail_after_bytes(size // 2, then_heal=True)

    run = run_tus_js_client(
        {
            "endpoint": f"{relay.url}/api/v1/tus",
            "token": uploader.token,
            "file": str(path),
            "metadata": metadata(),
            "retryDelays": RETRY_DELAYS,
            **options,
        }
    )

    assert run.returncode == 0, run.describe()
    assert [e for e in run.of("request") if e["method"] == "PATCH"][0]["uploadOffset"] == "0"
    # After the cut, tus-js-client asked how far the server got, and went on from there.
    assert_resumed(run, after_first(run, "retry"), size)
    # What crossed the relay after the cut was less than the whole file: it was not sent again.
    assert relay.upstream_bytes < size // 2 + size, run.describe()
    success = run.last("success")
    assert success["depotUploadId"], run.describe()
    # Absolute, on the address the client used (here the relay's).
    assert success["contentLocation"] == f"{relay.url}/api/v1/uploads/{success['depotUploadId']}", run.describe()
    return success["depotUploadId"]


def test_tus_js_client_resumes_after_the_network_drops_midway(uploader, relay, source):
    path, source_sha256 = source

    upload_id = upload_through_a_dropping_network(uploader, relay, path, SIZE)

    assert_downloads_intact(uploader, upload_id, source_sha256, SIZE)


def test_tus_js_client_resumes_after_the_network_drops_through_nginx_to_s3(topology, topology_uploader, tmp_path):
    path = tmp_path / "source.png"
    source_sha256 = write_source(path, TOPOLOGY_SIZE)
    relay = FaultRelay(topology.proxy.port)
    try:
        upload_id = upload_through_a_dropping_network(topology_uploader, relay, path, TOPOLOGY_SIZE, chunkSize=CHUNK)
    finally:
        relay.close()

    assert_downloads_intact(topology_uploader, upload_id, source_sha256, TOPOLOGY_SIZE)


def test_tus_js_client_in_a_new_process_resumes_the_upload_an_aborted_one_began(uploader, server, source, tmp_path):
    path, source_sha256 = source
    url_storage = tmp_path / "tus-urls.json"
    options = {
        "endpoint": f"{server}/api/v1/tus",
        "token": uploader.token,
        "file": str(path),
        "metadata": metadata(source_sha256),
        "urlStorage": str(url_storage),
    }

    first = run_tus_js_client({**options, "abortAfterBytes": SIZE // 2})

    assert first.returncode == 0, first.describe()
    upload_url = first.last("aborted")["url"]
    assert upload_url.startswith(f"{server}/api/v1/tus/"), first.describe()
    status = uploader.get(urlsplit(upload_url).path, headers=TUS)
    assert status.status_code == 200, status.text
    assert status.json()["offset"] < SIZE and status.json()["upload"] is None

    second = run_tus_js_client({**options, "resume": True, "retryDelays": RETRY_DELAYS})

    assert second.returncode == 0, second.describe()
    assert second.last("previous")["urls"] == [upload_url]
    assert second.of("request")[0] == {"event": "request", "method": "HEAD", "url": upload_url, "uploadOffset": None}
    assert_resumed(second, second.events, SIZE)
    success = second.last("success")
    assert success["url"] == upload_url and success["depotUploadId"], second.describe()
    assert_downloads_intact(uploader, success["depotUploadId"], source_sha256, SIZE)


def test_tus_js_client_sends_its_first_chunk_with_the_creation_request(uploader, server, tmp_path):
    path = tmp_path / "source.png"
    source_sha256 = write_source(path, 3 * CHUNK)

    run = run_tus_js_client(
        {
            "endpoint": f"{server}/api/v1/tus",
            "token": uploader.token,
            "file": str(path),
            "metadata": metadata(source_sha256),
            "chunkSize": CHUNK,
            "uploadDataDuringCreation": True,
        }
    )

    assert run.returncode == 0, run.describe()
    answers = [(e["method"], e["status"], e["uploadOffset"]) for e in run.of("response")]
    assert answers == [
        ("POST", 201, str(CHUNK)),
        ("PATCH", 204, str(2 * CHUNK)),
        ("PATCH", 204, str(3 * CHUNK)),
    ], run.describe()
    assert_downloads_intact(uploader, run.last("success")["depotUploadId"], source_sha256, 3 * CHUNK)
