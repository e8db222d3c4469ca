"""Resumable uploads with tuspy, the tus project's Python client, over real HTTP to Depot
under gunicorn: on the local store, a 100 MiB upload whose connection is cut midway resumes
from the offset the server made durable, and a worker SIGKILLed mid-PATCH leaves an upload
that resumes once its lease has run out; through nginx to two replicas on the S3 store, a cut
upload resumes with its PATCHes spread over both replicas. Every finished file is downloaded and its SHA-256
compared with the source's."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from conftest import TOPOLOGY_MAX_UPLOAD, Api
from processes import FaultRelay, Gunicorn, wait_until
from tusclient import client as tus_client
from tusclient.exceptions import TusUploadFailed

MIB = 1024 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def png_file(folder: Path, size: int) -> tuple[Path, str]:
    """A file of `size` bytes that starts like a PNG, and its SHA-256."""
    path = folder / "big.png"
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        block = PNG_MAGIC + os.urandom(MIB - len(PNG_MAGIC))
        for _ in range(size // MIB):
            out.write(block)
            digest.update(block)
            block = os.urandom(MIB)
    return path, digest.hexdigest()


def downloaded_sha256(api: Api, upload_id: str) -> str:
    response = api.get(f"/api/v1/uploads/{upload_id}/content", stream=True)
    assert response.status_code == 200, response.text
    digest = hashlib.sha256()
    for chunk in response.iter_content(MIB):
        digest.update(chunk)
    return digest.hexdigest()


def head_offset(url: str, token: str) -> int:
    response = requests.head(url, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def test_a_cut_connection_resumes_from_the_durable_offset(server, uploader, tmp_path):
    path, sha256 = png_file(tmp_path, 100 * MIB)
    relay = FaultRelay(int(server.rsplit(":", 1)[1]))
    try:
        tus = tus_client.TusClient(f"{relay.url}/api/v1/tus", headers={"Authorization": f"Bearer {uploader.token}"})
        first = tus.uploader(str(path), metadata={"filename": "big.png", "filetype": "image/png"})
        relay.fail_after_bytes(50 * MIB)  # the one PATCH of the whole file is cut midway

        with pytest.raises(TusUploadFailed):
            first.upload()
        relay.heal()

        # Asks the server for its offset (HEAD); the cut request may still hold the upload for
        # a moment (423), so the client retries, asking for the offset again each time.
        resumed = tus.uploader(str(path), url=first.url, retries=5, retry_delay=1)
        assert 0 < resumed.offset < 50 * MIB + MIB
        resumed.upload()
    finally:
        relay.close()

    upload_id = resumed.request.response_headers["depot-upload-id"]
    assert resumed.offset == 100 * MIB
    assert uploader.get(f"/api/v1/uploads/{upload_id}").json()["sha256"] == sha256
    assert downloaded_sha256(uploader, upload_id) == sha256


def test_an_upload_in_many_patches_with_checksums(server, uploader, tmp_path):
    path, sha256 = png_file(tmp_path, 24 * MIB)
    tus = tus_client.TusClient(f"{server}/api/v1/tus", headers={"Authorization": f"Bearer {uploader.token}"})
    sender = tus.uploader(str(path), chunk_size=5 * MIB + 123, upload_checksum=True, metadata={"filename": "b.png"})

    sender.upload()

    upload_id = sender.request.response_headers["depot-upload-id"]
    assert downloaded_sha256(uploader, upload_id) == sha256


def test_through_nginx_across_both_replicas_to_s3_a_cut_upload_resumes(topology, topology_uploader, tmp_path):
    """The scale-out deployment: nginx spreads the PATCHes over both replicas, which share the
    upload's bytes through the S3 store; the network drops midway and tuspy resumes."""
    size, chunk = 40 * MIB, 8 * MIB
    assert size < TOPOLOGY_MAX_UPLOAD
    path, sha256 = png_file(tmp_path, size)
    relay = FaultRelay(topology.proxy.port)
    try:
        tus = tus_client.TusClient(
            f"{relay.url}/api/v1/tus", headers={"Authorization": f"Bearer {topology_uploader.token}"}
        )
        first = tus.uploader(str(path), chunk_size=chunk, metadata={"filename": "big.png", "filetype": "image/png"})
        relay.fail_after_bytes(size // 2)
        with pytest.raises(TusUploadFailed):
            first.upload()
        relay.heal()

        resumed = tus.uploader(str(path), url=first.url, chunk_size=chunk, retries=5, retry_delay=1)
        assert 0 < resumed.offset < size // 2 + chunk
        resumed.upload()
    finally:
        relay.close()

    upload_id = resumed.request.response_headers["depot-upload-id"]
    assert resumed.offset == size
    assert downloaded_sha256(topology_uploader, upload_id) == sha256
    tus_path = urlsplit(first.url).path
    patched_by = {
        record["upstream"]
        for record in topology.proxy.access_records()
        if record["method"] == "PATCH" and record["path"] == tus_path
    }
    assert patched_by == {f"127.0.0.1:{replica.port}" for replica in topology.replicas}, patched_by


@pytest.fixture
def lone_worker(server, server_env, tmp_path):
    """Depot under gunicorn with one worker, beside `server` as a second replica: the same
    database, files and secret (so the same tokens). (Files of its own would leave rows
    whose files the session server's `storage check` cannot find.)"""
    replica = Gunicorn("lone", server_env, tmp_path, workers=1)
    yield replica
    replica.stop()


def test_a_worker_killed_mid_patch_leaves_an_upload_that_resumes(lone_worker, uploader, tmp_path):
    api = uploader.at(lone_worker.url)
    path, sha256 = png_file(tmp_path, 40 * MIB)
    created = requests.post(
        f"{lone_worker.url}/api/v1/tus",
        headers={
            "Authorization": f"Bearer {api.token}",
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(40 * MIB),
            "Upload-Metadata": "filename YmlnLnBuZw==",
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    body = _SlowFile(path)

    def patch():
        try:
            requests.patch(
                url,
                data=body,
                headers={
                    "Authorization": f"Bearer {api.token}",
                    "Tus-Resumable": "1.0.0",
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                },
                timeout=60,
            )
        except requests.RequestException:
            pass  # its worker is killed under it

    patcher = threading.Thread(target=patch)
    patcher.start()
    assert body.started.wait(10)
    durable = wait_until(lambda: head_offset(url, api.token), timeout=20)  # a checkpoint happened
    (worker,) = lone_worker.worker_pids()
    os.kill(worker, signal.SIGKILL)
    patcher.join(30)

    # tuspy asks for the offset, then PATCHes; 423 until the dead request's lease runs out.
    tus = tus_client.TusClient(f"{lone_worker.url}/api/v1/tus", headers={"Authorization": f"Bearer {api.token}"})
    resumed = wait_until(lambda: _resumable(tus, path, url), timeout=30)
    assert resumed.offset >= durable > 0
    resumed.upload()

    upload_id = resumed.request.response_headers["depot-upload-id"]
    assert downloaded_sha256(api, upload_id) == sha256


class _SlowFile:
    """A file sent at about 10 MiB/s (requests streams an object with read() and len())."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (read to its end by requests, then closed)
        self._length = path.stat().st_size
        self.started = threading.Event()

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        self.started.set()
        time.sleep(0.1)
        data = self._file.read(min(size, MIB) if size and size > 0 else MIB)
        if not data:
            self._file.close()
        return data


def _resumable(tus, path: Path, url: str):
    """tuspy's uploader for `url`, once the server answers (a new worker is up)."""
    try:
        return tus.uploader(str(path), url=url, retries=10, retry_delay=2)
    except Exception:  # noqa: BLE001 (the master is still starting a worker)
        return None
