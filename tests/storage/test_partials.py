"""What every FileStore must do for resumable uploads (begin_partial, open_partial,
seal_partial), checked on the local folder and on S3 (moto, parts of 5 MiB) alike: pieces of
any size, resumed at odd offsets, on a new writer as on another replica; bytes past the
durable offset dropped; sealed, promoted and read back whole; discarded without a trace."""

from __future__ import annotations

import random

import pytest

from app.storage.base import HEAD_BYTES, ObjectMissing
from tests.helpers import sha256_hex

KEY = "p" * 32
MIB = 1024 * 1024


def random_bytes(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def write_pieces(writer, data: bytes, sizes: list[int]) -> None:
    start = 0
    for size in sizes:
        writer.write(data[start : start + size])
        start += size
    assert start == len(data), "the pieces must add up to the data"


def promoted_bytes(store, staged) -> bytes:
    store.promote(staged, KEY)
    with store.open(KEY) as handle:
        return handle.read()


def test_pieces_of_odd_sizes_resumed_at_odd_offsets_seal_into_the_whole_file(any_store):
    # Pieces smaller than a part, several parts in one, a single byte, a part boundary crossed
    # by a few bytes; each request on a writer of its own, as each PATCH (maybe on another
    # replica). Parts are 5 MiB on S3.
    requests = [[3 * MIB + 1, 7], [1], [MIB, 4 * MIB], [5 * MIB - 10], [12, 2 * MIB + 12_345]]
    data = random_bytes(sum(map(sum, requests)))
    partial_id = any_store.begin_partial()
    offset = 0
    for sizes in requests:
        writer = any_store.open_partial(partial_id, offset)
        assert writer.offset == offset
        piece = data[offset : offset + sum(sizes)]
        write_pieces(writer, piece, sizes)
        offset = writer.sync()
        writer.close()
        assert offset == writer.offset
    assert offset == len(data)

    staged = any_store.seal_partial(partial_id, len(data), data[:HEAD_BYTES])

    assert (staged.staging_id, staged.size, staged.sha256) == (partial_id, len(data), sha256_hex(data))
    assert staged.head == data[:HEAD_BYTES]
    assert promoted_bytes(any_store, staged) == data
    assert list(any_store.iter_staged()) == []


@pytest.mark.parametrize(
    "durable",
    [3 * MIB + 7, 5 * MIB, 6 * MIB + 1],
    ids=["inside-the-first-part", "at-a-part-boundary", "inside-the-second-part"],
)
def test_reopening_drops_what_a_killed_writer_wrote_past_the_durable_offset(any_store, durable):
    data = random_bytes(14 * MIB + 3)
    garbage = random_bytes(9 * MIB, seed=2)
    partial_id = any_store.begin_partial()
    writer = any_store.open_partial(partial_id, 0)
    write_pieces(writer, data[:durable], [durable // 2, durable - durable // 2])
    assert writer.sync() == durable  # the offset the row records
    # The same request goes on: other bytes (a different client's resend would differ too),
    # across a part boundary, synced once and then written further, and the worker is
    # killed before the new offset reaches the row: no close(), no later sync().
    writer.write(garbage[: 6 * MIB])
    writer.sync()
    writer.write(garbage[6 * MIB :])

    resumed = any_store.open_partial(partial_id, durable)
    resumed.write(data[durable:])
    assert resumed.sync() == len(data)
    resumed.close()
    staged = any_store.seal_partial(partial_id, len(data), data[:HEAD_BYTES])

    assert (staged.size, staged.sha256) == (len(data), sha256_hex(data))
    assert promoted_bytes(any_store, staged) == data


def test_a_small_file_in_one_piece_seals(any_store):
    data = random_bytes(10)
    partial_id = any_store.begin_partial()
    writer = any_store.open_partial(partial_id, 0)
    writer.write(data)
    writer.sync()
    writer.close()

    staged = any_store.seal_partial(partial_id, 10, data)

    assert promoted_bytes(any_store, staged) == data


def test_a_partial_is_listed_once_as_staged_and_discard_removes_it(any_store):
    partial_id = any_store.begin_partial()
    writer = any_store.open_partial(partial_id, 0)
    writer.write(random_bytes(7 * MIB + 5))
    durable = writer.sync()
    writer.write(random_bytes(MIB))  # unsynced bytes of a request still running

    listed = list(any_store.iter_staged())
    any_store.discard_staged(partial_id)
    any_store.discard_staged(partial_id)  # already gone: no error

    assert [s.key for s in listed] == [partial_id]
    assert listed[0].size >= durable
    assert list(any_store.iter_staged()) == []
    with pytest.raises(ObjectMissing):
        any_store.open_partial(partial_id, durable)


def test_opening_past_the_staged_bytes_is_object_missing(any_store):
    partial_id = any_store.begin_partial()
    writer = any_store.open_partial(partial_id, 0)
    writer.write(b"x" * 100)
    writer.sync()
    writer.close()

    with pytest.raises(ObjectMissing):
        any_store.open_partial(partial_id, 200)
