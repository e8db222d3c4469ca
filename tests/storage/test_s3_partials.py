"""Resumable uploads on S3 specifically (app/storage/s3_partials.py), against moto: what goes
to the bucket (whole parts and their records, segments of only the new bytes, merged when
opened, nothing left once sealed or discarded), a partial continued by a replica configured
with another part size, a sealed partial whose finish failed taken up again, store failures.

The store-independent promises: tests/storage/test_partials.py. The same against a real S3
server, over HTTP, alternating replicas: integration-tests/test_tus_s3.py."""

from __future__ import annotations

import pytest

from app.storage.base import HEAD_BYTES, StorageError
from app.storage.s3 import MIN_PART_SIZE, S3FileStore
from tests.helpers import S3_BUCKET as BUCKET
from tests.helpers import sha256_hex
from tests.storage.test_partials import random_bytes
from tests.storage.test_s3 import RecordingClient, multipart_uploads, objects_in_bucket

MIB = 1024 * 1024
KEY = "q" * 32


def store_on(client, part_size: int = MIN_PART_SIZE) -> S3FileStore:
    return S3FileStore(BUCKET, prefix="depot", part_size=part_size, client=client, background_cleanup=False)


def append(store: S3FileStore, partial_id: str, offset: int, data: bytes, piece: int = MIB) -> int:
    """One PATCH: open at `offset`, write `data` in pieces, sync, close; the new offset."""
    writer = store.open_partial(partial_id, offset)
    for start in range(0, len(data), piece):
        writer.write(data[start : start + piece])
    durable = writer.sync()
    writer.close()
    return durable


def test_whole_parts_go_up_as_they_fill_and_the_rest_as_segments(s3_client):
    recorder = RecordingClient(s3_client)
    store = store_on(recorder)
    data = random_bytes(12 * MIB + 3)
    partial_id = store.begin_partial()
    key = f"depot/staging/{partial_id}"

    offset = append(store, partial_id, 0, data[: 4 * MIB])
    offset = append(store, partial_id, offset, data[offset : 11 * MIB + 3])
    sent = [(name, size) for name, size in recorder.calls if name in ("upload_part", "put_object")]
    record = ("put_object", len('"' + "0" * 32 + '"'))  # an ETag

    # A segment of 4 MiB; parts 1 and 2 whole (5 MiB each), each followed by its record; a
    # segment of part 3's first bytes.
    part = ("upload_part", MIN_PART_SIZE)
    assert sent == [("put_object", 4 * MIB), part, record, part, record, ("put_object", MIB + 3)]
    # Part 1's segment outlives the request that filled part 1 (its new offset might not
    # have reached the row): the next opening, at an offset past part 1, removes it.
    offset = append(store, partial_id, offset, data[offset:])
    assert objects_in_bucket(s3_client) == [
        f"{key}.part-00001",
        f"{key}.part-00002",
        f"{key}.seg-{10 * MIB:015d}",
        f"{key}.seg-{11 * MIB + 3:015d}",
    ]
    assert multipart_uploads(s3_client) == [key]

    staged = store.seal_partial(partial_id, len(data), data[:HEAD_BYTES])

    assert (staged.size, staged.sha256) == (len(data), sha256_hex(data))
    assert objects_in_bucket(s3_client) == [key]  # the whole file, staged; no segment, no upload
    assert multipart_uploads(s3_client) == []
    store.promote(staged, KEY)
    assert objects_in_bucket(s3_client) == [f"depot/objects/{KEY}"]


def test_each_sync_sends_only_the_new_bytes_and_the_next_opening_merges_them(s3_client):
    recorder = RecordingClient(s3_client)
    store = store_on(recorder)
    data = random_bytes(MIB)
    partial_id = store.begin_partial()
    key = f"depot/staging/{partial_id}"
    writer = store.open_partial(partial_id, 0)
    for start, end in [(0, 100_000), (100_000, 300_000), (300_000, 300_001), (300_001, 300_001)]:
        writer.write(data[start:end])  # a slow client's request, synced every 2 s
        writer.sync()

    puts = [size for name, size in recorder.calls if name == "put_object"]
    assert puts == [100_000, 200_000, 1]  # nothing rewritten, nothing sent for no bytes
    recorder.calls.clear()
    append(store, partial_id, 300_001, data[300_001:])

    assert [size for name, size in recorder.calls if name == "put_object"] == [300_001, MIB - 300_001]
    assert objects_in_bucket(s3_client) == [f"{key}.seg-{0:015d}", f"{key}.seg-{300_001:015d}"]
    assert store.seal_partial(partial_id, MIB, b"").sha256 == sha256_hex(data)


def test_a_replica_with_another_part_size_continues_a_partial(s3_client):
    data = random_bytes(17 * MIB + 1)
    partial_id = store_on(s3_client, MIN_PART_SIZE).begin_partial()
    offset = append(store_on(s3_client, MIN_PART_SIZE), partial_id, 0, data[: 7 * MIB + 9])

    other = store_on(s3_client, 6 * MIB)  # S3_PART_SIZE_BYTES changed during a rollout
    offset = append(other, partial_id, offset, data[offset:])
    staged = other.seal_partial(partial_id, len(data), data[:HEAD_BYTES])

    assert (staged.size, staged.sha256) == (len(data), sha256_hex(data))
    other.promote(staged, KEY)
    with other.open(KEY) as handle:
        assert handle.read() == data


@pytest.mark.parametrize("resume_at", [0, 5 * MIB, 8 * MIB + 17])
def test_a_sealed_partial_whose_finish_failed_takes_the_last_bytes_again(s3_client, resume_at):
    store = store_on(s3_client)
    data = random_bytes(13 * MIB)
    partial_id = store.begin_partial()
    append(store, partial_id, 0, data[:resume_at])
    append(store, partial_id, resume_at, data[resume_at:])
    store.seal_partial(partial_id, len(data), data[:HEAD_BYTES])
    # The commit failed after sealing (the database, a lost lease): the row still says
    # `resume_at`, and the client sends the rest again, other bytes this time.
    other = random_bytes(len(data) - resume_at, seed=3)
    assert append(store, partial_id, resume_at, other) == len(data)
    staged = store.seal_partial(partial_id, len(data), data[:HEAD_BYTES])

    expected = data[:resume_at] + other
    assert (staged.size, staged.sha256) == (len(data), sha256_hex(expected))
    store.promote(staged, KEY)
    with store.open(KEY) as handle:
        assert handle.read() == expected
    assert multipart_uploads(s3_client) == []
    assert objects_in_bucket(s3_client) == [f"depot/objects/{KEY}"]


def test_discarding_a_partial_leaves_nothing_in_the_bucket(s3_client):
    store = store_on(s3_client)
    partial_id = store.begin_partial()
    writer = store.open_partial(partial_id, 0)
    writer.write(random_bytes(11 * MIB))
    writer.sync()
    writer.write(random_bytes(MIB))  # not synced

    store.discard_staged(partial_id)

    assert objects_in_bucket(s3_client) == []
    assert multipart_uploads(s3_client) == []


def test_a_partial_whose_upload_was_aborted_is_still_listed_by_its_segments_for_repair(s3_client):
    store = store_on(s3_client)
    partial_id = store.begin_partial()
    append(store, partial_id, 0, random_bytes(MIB))
    key = f"depot/staging/{partial_id}"
    (upload_id,) = [u["UploadId"] for u in s3_client.list_multipart_uploads(Bucket=BUCKET)["Uploads"]]
    s3_client.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)  # half a discard

    assert [(s.key, s.size) for s in store.iter_staged()] == [(partial_id, MIB)]
    store.discard_staged(partial_id)
    assert objects_in_bucket(s3_client) == []


def test_a_failed_part_is_a_storage_error_and_the_partial_resumes_at_its_durable_offset(s3_client):
    data = random_bytes(9 * MIB)
    store = store_on(s3_client)
    partial_id = store.begin_partial()
    durable = append(store, partial_id, 0, data[: 2 * MIB])
    failing = store_on(RecordingClient(s3_client, fail_on="upload_part"))

    writer = failing.open_partial(partial_id, durable)
    with pytest.raises(StorageError):
        writer.write(data[durable:])
    writer.close()
    with pytest.raises(StorageError):
        store_on(RecordingClient(s3_client, fail_on="get_object")).open_partial(partial_id, durable)

    assert append(store, partial_id, durable, data[durable:]) == len(data)
    assert store.seal_partial(partial_id, len(data), b"").sha256 == sha256_hex(data)


class ListsEveryPartSent:
    """moto, but ListParts lists every upload of a part number, as SeaweedFS does (its parts
    sent earlier last, so that taking the last one listed would take a stale one)."""

    def __init__(self, client) -> None:
        self._client = client
        self.sent: dict[int, list[dict]] = {}

    def __getattr__(self, name):
        return getattr(self._client, name)

    def upload_part(self, **kwargs):
        reply = self._client.upload_part(**kwargs)
        number = kwargs["PartNumber"]
        part = {"PartNumber": number, "ETag": reply["ETag"], "Size": len(kwargs["Body"])}
        self.sent.setdefault(number, []).insert(0, part)
        return reply

    def get_paginator(self, name):
        if name != "list_parts":
            return self._client.get_paginator(name)
        sent = self.sent

        class Pages:
            def paginate(self, **kwargs):
                yield {"Parts": [part for number in sorted(sent) for part in sent[number]]}

        return Pages()


def test_a_part_sent_again_counts_once_where_the_store_lists_every_upload_of_it(s3_client):
    client = ListsEveryPartSent(s3_client)
    store = store_on(client)
    data = random_bytes(8 * MIB)
    partial_id = store.begin_partial()
    writer = store.open_partial(partial_id, 0)
    writer.write(data[: 2 * MIB])
    durable = writer.sync()
    writer.write(random_bytes(4 * MIB, seed=4))  # part 1 goes up with other bytes; then killed

    assert append(store, partial_id, durable, data[durable:]) == len(data)  # part 1 sent again
    staged = store.seal_partial(partial_id, len(data), b"")

    assert len(client.sent[1]) == 2
    assert staged.sha256 == sha256_hex(data)
