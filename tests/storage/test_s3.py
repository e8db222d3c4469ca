"""S3FileStore specifics, against moto's in-process S3: multipart staging with flat memory,
failures that leave nothing behind (at once, or in the background after a timeout), leftovers
found by the check, presigned URLs, bounded waits on every call, a read-only readiness check.

The same store against a real S3 server (SeaweedFS), stopped with SIGSTOP: integration-tests/
test_hung_store.py."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError, ResponseStreamingError

from app.config import TestingConfig
from app.storage import s3 as s3_module
from app.storage import s3_leftovers
from app.storage.base import ObjectMissing, StorageError
from app.storage.s3 import MIN_PART_SIZE, S3FileStore, S3ObjectReader
from app.storage.s3_client import DATA_PATIENCE, QUICK_PATIENCE
from tests.helpers import S3_BUCKET as BUCKET
from tests.helpers import sha256_hex

KEY = "f" * 32
MIB = 1024 * 1024


class RecordingClient:
    """The real (moto) client, recording calls and optionally failing one operation."""

    def __init__(
        self,
        client,
        fail_on: str | None = None,
        fail_after: int = 0,
        garble_on: str | None = None,
        timeout: bool = False,
    ) -> None:
        self._client, self.fail_on, self.fail_after = client, fail_on, fail_after
        # timeout: the failure is a read timeout (the request may have reached the store).
        self.error = ReadTimeoutError(endpoint_url="http://s3.invalid") if timeout else None
        self.garble_on = garble_on  # this operation's reply keeps only its metadata
        self.calls: list[tuple[str, int]] = []
        self.ranges: list[str | None] = []  # the Range of each get_object

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if not callable(method) or name.startswith(("get_paginator", "meta")):
            return method

        def call(*args, **kwargs):
            body = kwargs.get("Body", b"")
            self.calls.append((name, len(body) if isinstance(body, bytes) else -1))
            if name == "get_object":
                self.ranges.append(kwargs.get("Range"))
            if name == self.fail_on and sum(1 for c in self.calls if c[0] == name) > self.fail_after:
                raise self.error or EndpointConnectionError(endpoint_url="http://s3.invalid")
            reply = method(*args, **kwargs)
            return {"ResponseMetadata": reply["ResponseMetadata"]} if name == self.garble_on else reply

        return call


def mib_chunks(count: int, size: int = MIB):
    for i in range(count):
        yield bytes([i % 251]) * size


def objects_in_bucket(client) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def multipart_uploads(client) -> list[str]:
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


def test_a_large_file_goes_up_in_parts_of_bounded_size(s3_client):
    recorder = RecordingClient(s3_client)
    store = S3FileStore(BUCKET, part_size=MIN_PART_SIZE, client=recorder)
    data = b"".join(mib_chunks(12))

    staged = store.stage(mib_chunks(12))
    store.promote(staged, KEY)

    parts = [size for name, size in recorder.calls if name == "upload_part"]
    assert parts == [5 * MIB, 5 * MIB, 2 * MIB]  # never more than one part held in memory
    assert "put_object" not in [name for name, _ in recorder.calls]
    assert (staged.size, staged.sha256) == (len(data), sha256_hex(data))
    with store.open(KEY) as handle:
        assert sha256_hex(handle.read()) == sha256_hex(data)
    assert objects_in_bucket(s3_client) == [f"objects/{KEY}"]


def test_a_small_file_is_one_put(s3_client):
    recorder = RecordingClient(s3_client)
    store = S3FileStore(BUCKET, part_size=MIN_PART_SIZE, client=recorder)

    store.stage([b"small"])

    assert [name for name, _ in recorder.calls] == ["put_object"]


def test_a_failed_part_aborts_the_multipart_upload_and_leaves_nothing(s3_client):
    store = S3FileStore(BUCKET, part_size=MIN_PART_SIZE, client=RecordingClient(s3_client, "upload_part", 1))

    with pytest.raises(StorageError, match="EndpointConnectionError"):
        store.stage(mib_chunks(12))

    assert objects_in_bucket(s3_client) == []
    assert multipart_uploads(s3_client) == []


@pytest.mark.parametrize("operation", ["create_multipart_upload", "upload_part"])
def test_a_garbled_reply_while_staging_is_a_storage_error_and_leaves_nothing(s3_client, operation):
    # Seen under a network fault: a 200 whose body lacked UploadId, which was a KeyError (500).
    store = S3FileStore(BUCKET, part_size=MIN_PART_SIZE, client=RecordingClient(s3_client, garble_on=operation))

    with pytest.raises(StorageError, match="the store's reply has no"):
        store.stage(mib_chunks(12))

    assert objects_in_bucket(s3_client) == []
    # Even the upload S3 opened whose id never arrived: the cleanup asks the store for it.
    assert multipart_uploads(s3_client) == []


@pytest.mark.parametrize(("operation", "use"), [("get_object", "open"), ("head_object", "stat")])
def test_a_garbled_reply_while_reading_is_a_storage_error(s3_client, operation, use):
    store = S3FileStore(BUCKET, part_size=MIN_PART_SIZE, client=RecordingClient(s3_client, garble_on=operation))
    store.promote(store.stage([b"data"]), KEY)

    with pytest.raises(StorageError, match="the store's reply has no"):
        getattr(store, use)(KEY)


def test_a_failed_copy_at_promotion_is_a_storage_error_and_keeps_the_staged_object(s3_client):
    store = S3FileStore(BUCKET, part_size=MIN_PART_SIZE, client=RecordingClient(s3_client, "copy_object"))
    staged = store.stage([b"data"])

    with pytest.raises(StorageError, match="promotion failed"):
        store.promote(staged, KEY)

    assert store.stat(KEY) is None
    store.discard(staged)  # what the data manager does on abort
    assert objects_in_bucket(s3_client) == []


def test_an_interrupted_multipart_upload_is_listed_as_staged_and_discarded(s3_store, s3_client):
    key = "depot/staging/" + "a" * 32
    s3_client.create_multipart_upload(Bucket=BUCKET, Key=key)  # as if the worker was killed

    assert [s.key for s in s3_store.iter_staged()] == ["a" * 32]
    s3_store.discard_staged("a" * 32)

    assert multipart_uploads(s3_client) == []
    assert list(s3_store.iter_staged()) == []


def test_objects_outside_the_prefix_are_not_ours(s3_store, s3_client):
    s3_client.put_object(Bucket=BUCKET, Key="objects/" + "b" * 32, Body=b"someone else's")
    s3_client.put_object(Bucket=BUCKET, Key="depot/objects/not a key", Body=b"x")

    assert list(s3_store.iter_objects()) == []


def test_presigned_url_names_the_file_and_expires(s3_store):
    s3_store.promote(s3_store.stage([b"hello"]), KEY)

    url = s3_store.presigned_url(KEY, "résumé.pdf", "application/pdf", 60)

    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path.endswith(f"/depot/objects/{KEY}")
    assert query["response-content-type"] == ["application/pdf"]
    assert query["response-content-disposition"][0].startswith('attachment; filename="resume.pdf"')
    assert query["X-Amz-Expires"] == ["60"]


def test_prepare_creates_a_missing_bucket_once(s3_client):
    store = S3FileStore("fresh-bucket", client=s3_client)

    with pytest.raises(StorageError, match="not reachable"):
        store.check()
    assert store.prepare() is True
    assert store.prepare() is False
    store.check()


def test_unreachable_store_errors_name_no_endpoint(s3_client):
    store = S3FileStore(BUCKET, client=RecordingClient(s3_client, "get_object"))

    with pytest.raises(StorageError) as raised:
        store.open(KEY)

    assert "s3.invalid" not in str(raised.value)


def test_a_missing_object_fails_at_open_before_anything_is_sent(s3_store):
    with pytest.raises(ObjectMissing, match="NoSuchKey"):
        s3_store.open(KEY)


class CutBody:
    """A reply body whose connection the store (or the network) cuts before any byte."""

    def read(self, *_args):
        raise ResponseStreamingError(error=ConnectionResetError(104, "Connection reset by peer"))

    def close(self):
        pass


def test_a_connection_cut_right_after_the_reply_fails_at_open_before_anything_is_sent(s3_store, monkeypatch):
    """Opened for a download, the object's first bytes are read at once: a store that cuts the
    connection just after answering fails while the request can still answer a JSON 503,
    not once the response has begun (gunicorn's own HTML 500)."""
    s3_store.promote(s3_store.stage([b"abc" * 1000]), KEY)
    client = s3_store.client
    real_get = client.get_object
    monkeypatch.setattr(client, "get_object", lambda **kwargs: {**real_get(**kwargs), "Body": CutBody()})

    with pytest.raises(StorageError, match="read failed"):
        s3_store.open(KEY)


def test_bytes_read_ahead_at_open_are_the_first_ones_read(s3_store):
    data = bytes(range(256)) * 4096  # 1 MiB, past the first window
    s3_store.promote(s3_store.stage([data]), KEY)

    with s3_store.open(KEY, 10) as handle:
        assert handle.tell() == 10
        assert handle.read(5) == data[10:15]
        assert handle.tell() == 15
        assert handle.read() == data[15:]
    with s3_store.open(KEY) as handle:
        handle.seek(100)  # past what was read ahead: read from there
        assert handle.read(10) == data[100:110]


def test_reading_past_the_end_gives_nothing(s3_store):
    s3_store.promote(s3_store.stage([b"abc"]), KEY)

    with s3_store.open(KEY, 3) as handle:
        assert handle.read() == b""


def test_a_download_reads_the_object_in_growing_windows(s3_client):
    """A slow reader holds one small window, not the whole object pushed ahead by the store."""
    recording = RecordingClient(s3_client)
    store = S3FileStore(BUCKET, part_size=MIN_PART_SIZE, client=recording)
    data = b"".join(bytes([i]) * (MIB // 4) for i in range(14))  # 3.5 MiB
    store.promote(store.stage([data]), KEY)
    first = S3ObjectReader.FIRST_WINDOW_BYTES

    with store.open(KEY) as handle:
        assert recording.ranges == [f"bytes=0-{first - 1}"]  # opened with its first window only
        chunks = [handle.read(MIB)]
        assert chunks[0] == data[:first] and recording.ranges == [f"bytes=0-{first - 1}"]
        chunks += iter(lambda: handle.read(MIB), b"")

    assert b"".join(chunks) == data
    assert recording.ranges == [
        f"bytes=0-{first - 1}",
        f"bytes={first}-{3 * first - 1}",  # each window twice the last
        f"bytes={3 * first}-{len(data) - 1}",  # the last one ends with the object
    ]


def test_windows_are_capped_and_a_seek_starts_small_again(s3_client, monkeypatch):
    monkeypatch.setattr(S3ObjectReader, "FIRST_WINDOW_BYTES", 1000)
    monkeypatch.setattr(S3ObjectReader, "MAX_WINDOW_BYTES", 3000)
    recording = RecordingClient(s3_client)
    store = S3FileStore(BUCKET, part_size=MIN_PART_SIZE, client=recording)
    data = bytes(range(256)) * 40  # 10,240 bytes
    store.promote(store.stage([data]), KEY)

    with store.open(KEY) as handle:
        assert handle.read() == data
        handle.seek(5000)
        assert handle.read(100_000) == data[5000:6000]

    assert recording.ranges == [
        "bytes=0-999",
        "bytes=1000-2999",
        "bytes=3000-5999",
        "bytes=6000-8999",
        "bytes=9000-10239",
        "bytes=5000-5999",
    ]


def test_promotion_is_one_copy_and_one_delete(s3_client):
    recorder = RecordingClient(s3_client)
    store = S3FileStore(BUCKET, client=recorder)
    staged = store.stage([b"data"])
    recorder.calls.clear()

    store.promote(staged, KEY)

    assert [name for name, _ in recorder.calls] == ["copy_object", "delete_object"]


def test_a_multipart_upload_still_receiving_parts_counts_as_recent(s3_store, s3_client):
    key = "depot/staging/" + "c" * 32
    upload_id = s3_client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    time.sleep(1.1)
    s3_client.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 100)

    (staged,) = s3_store.iter_staged()
    (listed,) = s3_client.list_multipart_uploads(Bucket=BUCKET)["Uploads"]

    assert staged.modified_at > listed["Initiated"]  # the part's time, not the start's


# --- bounded waits ----------------------------------------------------------------------------


def test_every_client_waits_a_bounded_time(s3_client):
    config = TestingConfig({"STORAGE_BACKEND": "s3", "S3_BUCKET": BUCKET, "S3_PUBLIC_ENDPOINT_URL": "http://cdn.test"})
    store = S3FileStore.from_config({name: getattr(config, name) for name in dir(config) if name.isupper()})

    clients = {"data": store.client, "presign": store.presign_client, "quick": store.quick_client}
    patience = {name: (c.meta.config.connect_timeout, c.meta.config.read_timeout) for name, c in clients.items()}
    attempts = {name: c.meta.config.retries["total_max_attempts"] for name, c in clients.items()}

    assert patience == {"data": (1, 2), "presign": (1, 2), "quick": (0.5, 1)}
    assert attempts == {"data": 2, "presign": 2, "quick": 1}
    # The promises of issue 11 when the store hangs: /readyz within 2 s, a request within 10 s
    # (after one timed-out call, its cleanups skip the store: test below).
    assert QUICK_PATIENCE.worst_case() < 2
    assert DATA_PATIENCE.worst_case(with_body=True) < 8


def test_the_readiness_check_only_reads(s3_client):
    recorder = RecordingClient(s3_client)
    store = S3FileStore(BUCKET, client=recorder)

    for _ in range(3):
        store.check()

    assert [name for name, _ in recorder.calls] == ["head_bucket"] * 3
    assert objects_in_bucket(s3_client) == []


class Clock:
    """A settable time.monotonic for the leftovers' settle period."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(s3_leftovers, "clock", clock)
    return clock


def foreground_store(client, **options) -> S3FileStore:
    """A store whose leftovers wait for an explicit sweep (no background thread in tests)."""
    return S3FileStore(BUCKET, part_size=MIN_PART_SIZE, client=client, background_cleanup=False, **options)


def test_a_timed_out_part_answers_at_once_and_its_leftovers_go_once_the_store_answers(s3_client, clock):
    recorder = RecordingClient(s3_client, "upload_part", 1, timeout=True)
    store = foreground_store(recorder)

    with pytest.raises(StorageError, match="ReadTimeoutError"):
        store.stage(mib_chunks(12))

    # No cleanup was tried in the request: the store had just timed out, it would wait again.
    assert [name for name, _ in recorder.calls][-1] == "upload_part"
    (key,) = store.leftovers.pending()
    assert multipart_uploads(s3_client) == [key]  # what the store got before it hung

    store.leftovers.sweep()  # the store answers again
    assert multipart_uploads(s3_client) == []
    # A request sent during the outage can still be carried out after the first cleanup.
    s3_client.put_object(Bucket=BUCKET, Key=key, Body=b"carried out late")
    clock.now += s3_leftovers.LEFTOVER_SETTLE_SECONDS
    store.leftovers.sweep()

    assert objects_in_bucket(s3_client) == []
    assert store.leftovers.pending() == set()


def test_cleanups_skip_a_store_that_just_timed_out(s3_client, clock):
    store = foreground_store(RecordingClient(s3_client, "put_object", timeout=True))

    with pytest.raises(StorageError):
        store.stage([b"small"])
    calls_before = len(store.client.calls)
    store.discard_staged("d" * 32)
    with pytest.raises(StorageError, match="delete failed"):
        store.delete(KEY)

    assert len(store.client.calls) == calls_before  # nothing waited on the hung store
    assert len(store.leftovers.pending()) == 3
    clock.now += s3_module.HUNG_SECONDS
    store.delete(KEY)  # the store is tried again
    assert len(store.client.calls) > calls_before


def test_a_failed_delete_is_retried_until_the_object_is_gone(s3_client, clock):
    recorder = RecordingClient(s3_client)
    store = foreground_store(recorder)
    store.promote(store.stage([b"data"]), KEY)
    recorder.fail_on = "delete_object"

    with pytest.raises(StorageError, match="delete failed"):
        store.delete(KEY)
    assert objects_in_bucket(s3_client) == [f"objects/{KEY}"]

    recorder.fail_on = None
    store.leftovers.sweep()
    clock.now += s3_leftovers.LEFTOVER_SETTLE_SECONDS
    store.leftovers.sweep()
    assert objects_in_bucket(s3_client) == []
    assert store.leftovers.pending() == set()


def test_leftovers_are_given_up_after_a_long_outage(s3_client, clock):
    store = foreground_store(RecordingClient(s3_client, "list_multipart_uploads"))
    store.leftovers.add("staging/" + "e" * 32)

    store.leftovers.sweep()
    assert store.leftovers.pending()
    clock.now += s3_leftovers.LEFTOVER_GIVE_UP_SECONDS + 1
    store.leftovers.sweep()
    assert store.leftovers.pending() == set()  # `storage check --repair` finds it


def test_leftovers_are_removed_by_a_background_thread(s3_client, monkeypatch):
    monkeypatch.setattr(s3_leftovers, "LEFTOVER_RETRY_SECONDS", 0.01)
    monkeypatch.setattr(s3_leftovers, "LEFTOVER_SETTLE_SECONDS", 0.05)
    store = S3FileStore(BUCKET, client=s3_client)
    s3_client.put_object(Bucket=BUCKET, Key="staging/" + "f" * 32, Body=b"left over")

    store.leftovers.add("staging/" + "f" * 32)

    deadline = time.monotonic() + 5
    while store.leftovers.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.leftovers.pending() == set()
    assert objects_in_bucket(s3_client) == []


def test_a_large_file_is_promoted_by_copying_it_in_parts(s3_client, monkeypatch):
    monkeypatch.setattr(s3_module, "COPY_PART_SIZE", MIN_PART_SIZE)
    recorder = RecordingClient(s3_client)
    store = S3FileStore(BUCKET, part_size=MIN_PART_SIZE, client=recorder)
    data = b"".join(mib_chunks(12))
    staged = store.stage(mib_chunks(12))
    recorder.calls.clear()

    store.promote(staged, KEY)

    names = [name for name, _ in recorder.calls]
    # No single call copies more than a part, so none outlasts the read timeout.
    copy = ["create_multipart_upload"] + ["upload_part_copy"] * 3 + ["complete_multipart_upload"]
    assert names == [*copy, "delete_object"]  # and the staged object deleted
    with store.open(KEY) as handle:
        assert sha256_hex(handle.read()) == sha256_hex(data)
    assert objects_in_bucket(s3_client) == [f"objects/{KEY}"]
    assert multipart_uploads(s3_client) == []


def test_a_part_copy_that_fails_leaves_no_unfinished_upload(s3_client, monkeypatch):
    monkeypatch.setattr(s3_module, "COPY_PART_SIZE", MIN_PART_SIZE)
    store = foreground_store(RecordingClient(s3_client, "upload_part_copy", 1))
    staged = store.stage(mib_chunks(12))

    with pytest.raises(StorageError, match="promotion failed"):
        store.promote(staged, KEY)

    assert multipart_uploads(s3_client) == []
    assert store.stat(KEY) is None


def test_an_unreachable_store_fails_every_operation_with_a_storage_error():
    # What `flask storage check` / `storage init` meet when the store is down: a domain error
    # with a one-line message, never a botocore exception.
    import socket

    with socket.socket() as sock:  # a loopback port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = S3FileStore(
        BUCKET,
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        addressing_style="path",
        background_cleanup=False,
    )
    operations = {
        "check": store.check,
        "prepare": store.prepare,
        "stage": lambda: store.stage([b"data"]),
        "open": lambda: store.open(KEY),
        "stat": lambda: store.stat(KEY),
        "delete": lambda: store.delete(KEY),
        "objects": lambda: list(store.iter_objects()),
        "staged": lambda: list(store.iter_staged()),
    }

    for name, operation in operations.items():
        with pytest.raises(StorageError) as raised:
            operation()
        assert "\n" not in str(raised.value) and str(port) not in str(raised.value), name
