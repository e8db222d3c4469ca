"""tus-js-client (npm), the JavaScript tus client most applications use, under Node against
Depot over real HTTP (gunicorn, PostgreSQL, the local store): about 100 MiB, cut off midway,
resumed, finished, then downloaded and compared by SHA-256.

Two ways an upload is cut off, each resumed the way tus-js-client resumes it:
- the network path drops (a relay resets the TCP connection midway): the same process
  retries on its own, asks the server how far it got (HEAD) and sends only the rest;
- the program stops (upload.abort() midway, then the process ends): a new process finds the
  upload's URL where tus-js-client stored it (FileUrlStorage) and continues it.

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
from js_clients import NodeRun, run_tus_js_client
from processes import FaultRelay

MIB = 1024 * 1024
SIZE = 100 * MIB
TUS = {"Tus-Resumable": "1.0.0"}
# Enough retries to outlast the lease a cut-off request may still hold on the server
# (ResumableUploadService.LEASE_SECONDS): a PATCH sent meanwhile is refused with 423.
RETRY_DELAYS = [0, 500, 1000, 2000, 4000, 8000]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, str]:
    """About 100 MiB of random bytes starting like a PNG, on disk, and their SHA-256."""
    path = tmp_path_factory.mktemp("tus-js-client") / "source.png"
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for index in range(SIZE // MIB):
            block = (b"\x89PNG\r\n\x1a\n" + os.urandom(MIB - 8)) if index == 0 else os.urandom(MIB)
            digest.update(block)
            file.write(block)
    return path, digest.hexdigest()


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


def exchanges(run: NodeRun, method: str) -> list[tuple[dict, dict]]:
    """The (request, response) pairs of `method` the run completed, in order."""
    requests = [e for e in run.of("request") if e["method"] == method]
    responses = [e for e in run.of("response") if e["method"] == method]
    return list(zip(requests, responses, strict=False))


def assert_downloads_intact(uploader, upload_id: str, source_sha256: str) -> None:
    """The finished upload is listed with the file's size and SHA-256, and its download has them."""
    described = uploader.get(f"/api/v1/uploads/{upload_id}")
    assert described.status_code == 200, described.text
    assert (described.json()["size"], described.json()["sha256"]) == (SIZE, source_sha256)
    download = uploader.http.get(f"{uploader.base_url}/api/v1/uploads/{upload_id}/content", stream=True, timeout=60)
    assert download.status_code == 200, download.text
    digest, size = hashlib.sha256(), 0
    for block in download.iter_content(MIB):
        digest.update(block)
        size += len(block)
    assert (size, digest.hexdigest()) == (SIZE, source_sha256)


def test_tus_js_client_resumes_after_the_network_drops_midway(uploader, relay, source):
    path, source_sha256 = source
    relay.fail_after_bytes(SIZE // 2, then_heal=True)

    run = run_tus_js_client(
        {
            "endpoint": f"{relay.url}/api/v1/tus",
            "token": uploader.token,
            "file": str(path),
            "metadata": metadata(),
            "retryDelays": RETRY_DELAYS,
        }
    )

    assert run.returncode == 0, run.describe()
    assert run.of("retry"), f"the connection was never cut:\n{run.describe()}"
    patches = [request for request in run.of("request") if request["method"] == "PATCH"]
    assert patches[0]["uploadOffset"] == "0"
    # After the cut, tus-js-client asked how far the server got, and went on from there.
    heads = exchanges(run, "HEAD")
    assert heads, run.describe()
    resumed_at = int(heads[-1][1]["uploadOffset"])
    assert 0 < resumed_at < SIZE, run.describe()
    assert patches[-1]["uploadOffset"] == str(resumed_at), run.describe()
    # What crossed the relay after the cut was less than the whole file: it was not sent again.
    assert relay.upstream_bytes < SIZE // 2 + SIZE
    success = run.last("success")
    assert success["depotUploadId"], run.describe()
    assert success["contentLocation"] == f"/api/v1/uploads/{success['depotUploadId']}"
    assert_downloads_intact(uploader, success["depotUploadId"], source_sha256)


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
    assert int(status.json()["offset"]) < SIZE and status.json()["upload"] is None

    second = run_tus_js_client({**options, "resume": True, "retryDelays": RETRY_DELAYS})

    assert second.returncode == 0, second.describe()
    assert second.last("previous")["urls"] == [upload_url]
    assert not [r for r in second.of("request") if r["method"] == "POST"], "it created a new upload"
    head_request, head_response = exchanges(second, "HEAD")[0]
    assert (head_request["url"], head_response["status"]) == (upload_url, 200)
    resumed_at = int(head_response["uploadOffset"])
    assert resumed_at > 0, second.describe()
    patches = [request for request in second.of("request") if request["method"] == "PATCH"]
    assert patches[0]["uploadOffset"] == str(resumed_at), second.describe()
    success = second.last("success")
    assert success["url"] == upload_url and success["depotUploadId"], second.describe()
    assert_downloads_intact(uploader, success["depotUploadId"], source_sha256)
