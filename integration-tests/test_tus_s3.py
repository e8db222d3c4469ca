"""tus uploads on the scale-out topology: two gunicorn replicas on one S3 server (SeaweedFS,
5 MiB parts), over real HTTP.

A file sent in PATCHes of uneven sizes (smaller than a part, several parts, one byte),
each to the other replica, is downloaded whole; a worker SIGKILLed in the middle of a PATCH,
after sending a part past the durable offset, leaves an upload that the other replica
continues from that offset, the killed request's bytes dropped."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
import time
import uuid

import pytest
from conftest import TOPOLOGY_BUCKET, Api
from processes import wait_until

from app.storage.s3 import S3FileStore

MIB = 1024 * 1024
TUS = "/api/v1/tus"
V = {"Tus-Resumable": "1.0.0"}
OFFSET_TYPE = {"Content-Type": "application/offset+octet-stream"}


def png(size: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def token(topology_uploader) -> str:
    """The bearer token of a fresh uploader."""
    return topology_uploader.token


def create(topology, client: Api, length: int) -> tuple[str, str]:
    """A new tus upload of `length` bytes: its path, and the key of its bytes in the bucket
    (the multipart upload that appeared with it)."""
    before = set(topology.unfinished_multipart_uploads())
    name = base64.b64encode(b"big.png").decode()
    created = client.post(TUS, headers={**V, "Upload-Length": str(length), "Upload-Metadata": f"filename {name}"})
    assert created.status_code == 201, created.text
    (key,) = set(topology.unfinished_multipart_uploads()) - before
    return "/" + created.headers["Location"].split("/", 3)[3], key


def offset_of(client: Api, path: str) -> int:
    head = client.head(path, headers=V)
    assert head.status_code == 200, head.text
    return int(head.headers["Upload-Offset"])


def leftovers(topology, key: str) -> list[str]:
    """What the bucket still holds of an upload's staged bytes: objects (its segments, the
    sealed file) and its multipart upload."""
    return [k for k in topology.bucket_keys() + topology.unfinished_multipart_uploads() if k.startswith(key)]


def test_patches_of_uneven_sizes_alternating_replicas_make_the_whole_file(topology, token):
    replicas = [Api(r.url, token) for r in topology.replicas]
    data = png(40 * MIB + 12_345)
    path, key = create(topology, replicas[0], len(data))
    sizes = [3 * MIB, 7 * MIB, 1, 5 * MIB - 1, 2 * MIB + 3, 11 * MIB, 1, 4 * MIB + 77]
    offset = 0
    last = None
    for turn, size in enumerate([*sizes, len(data) - sum(sizes)]):
        client, other = replicas[turn % 2], replicas[(turn + 1) % 2]
        last = client.patch(
            path, data=data[offset : offset + size], headers={**V, **OFFSET_TYPE, "Upload-Offset": str(offset)}
        )
        assert last.status_code == 204, last.text
        offset += size
        assert int(last.headers["Upload-Offset"]) == offset
        assert offset_of(other, path) == offset  # the other replica sees the same durable offset

    upload_id = last.headers["Depot-Upload-Id"]
    through_proxy = Api(topology.proxy.url, token)
    upload = through_proxy.get(f"/api/v1/uploads/{upload_id}").json()
    downloaded = through_proxy.get(f"/api/v1/uploads/{upload_id}/content")
    assert downloaded.status_code == 200
    assert sha256(downloaded.content) == sha256(data) == upload["sha256"]
    assert upload["size"] == len(data)
    assert f"objects/{upload_id.replace('-', '')}" in topology.bucket_keys()
    assert leftovers(topology, key) == []


def test_a_worker_killed_mid_patch_leaves_an_upload_the_other_replica_continues(topology, token):
    replica, other_replica = topology.replicas
    data = png(14 * MIB + 5)
    other = Api(other_replica.url, token)
    path, key = create(topology, Api(replica.url, token), len(data))
    sent = 3 * MIB
    garbage = os.urandom(6 * MIB)  # differs from the file: none of it may end up in it
    request = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{replica.port}\r\nAuthorization: Bearer {token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", replica.port)) as sock:
        sock.sendall(request + data[:sent])
        worker = wait_until(lambda: replica.worker_serving(sock.getsockname()[1]))
        assert worker, "no worker holds the PATCH's connection"
        # The service checkpoints (sync, then the row's offset) when a block arrives 2 s or
        # more after the last checkpoint: the next bytes make what it has read of the 3 MiB
        # durable (all but the block still waiting for the rest of its bytes).
        time.sleep(2.5)
        sock.sendall(garbage)  # past the first 5 MiB part: part 1 goes up, garbage included

        def part_one_sent():
            (upload,) = topology.s3.list_multipart_uploads(Bucket=TOPOLOGY_BUCKET, Prefix=key)["Uploads"]
            return topology.s3.list_parts(Bucket=TOPOLOGY_BUCKET, Key=key, UploadId=upload["UploadId"]).get("Parts")

        assert wait_until(part_one_sent, timeout=10), "the killed request sent no part"
        os.kill(worker, signal.SIGKILL)

    durable = offset_of(other, path)
    assert sent - MIB < durable <= sent  # a checkpoint, with none of the garbage
    # The dead request's lease runs out (10 s) and the other replica takes the upload over.
    headers = {**V, **OFFSET_TYPE, "Upload-Offset": str(durable)}
    resumed = wait_until(
        lambda: (r := other.patch(path, data=data[durable : 9 * MIB], headers=headers)).status_code != 423 and r,
        timeout=20,
    )
    assert resumed and resumed.status_code == 204, resumed and resumed.text
    last = Api(replica.url, token).patch(
        path, data=data[9 * MIB :], headers={**V, **OFFSET_TYPE, "Upload-Offset": str(9 * MIB)}
    )

    assert last.status_code == 204, last.text
    upload_id = last.headers["Depot-Upload-Id"]
    downloaded = other.get(f"/api/v1/uploads/{upload_id}/content")
    assert sha256(downloaded.content) == sha256(data)
    assert leftovers(topology, key) == []
    assert wait_until(lambda: len(replica.worker_pids()) == 2, 30), "gunicorn did not replace the killed worker"


def test_on_seaweedfs_a_part_sent_twice_counts_once_and_a_sealed_partial_is_taken_up_again(topology):
    """The store alone against the real S3 server, for what moto does not do as SeaweedFS
    does: a part number sent twice is listed twice; a multipart upload copies its parts from
    the object at its own key."""
    prefix = f"store-{uuid.uuid4().hex[:8]}"
    store = S3FileStore(TOPOLOGY_BUCKET, prefix=prefix, part_size=5 * MIB, client=topology.s3, background_cleanup=False)
    data = png(13 * MIB)
    partial_id = store.begin_partial()
    killed = store.open_partial(partial_id, 0)
    killed.write(data[: 2 * MIB])
    durable = killed.sync()
    killed.write(os.urandom(4 * MIB))  # part 1 goes up with other bytes; then the worker dies
    writer = store.open_partial(partial_id, durable)
    writer.write(data[durable:])  # part 1 again, and part 2
    assert writer.sync() == len(data)
    store.seal_partial(partial_id, len(data), b"")
    # The commit after sealing failed: the client sends the rest again from the row's offset.
    resumed_at = 8 * MIB + 17
    writer = store.open_partial(partial_id, resumed_at)
    writer.write(data[resumed_at:])
    assert writer.sync() == len(data)

    staged = store.seal_partial(partial_id, len(data), b"")
    store.promote(staged, "k" * 32)

    assert staged.sha256 == sha256(data)
    with store.open("k" * 32) as handle:
        assert sha256(handle.read()) == sha256(data)
    assert [k for k in topology.bucket_keys() if k.startswith(prefix)] == [f"{prefix}/objects/{'k' * 32}"]
    assert [k for k in topology.unfinished_multipart_uploads() if k.startswith(prefix)] == []
