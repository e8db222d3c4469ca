"""HashingWriter: the staged file's bytes hashed and written in order, inline for small files
and on a writer thread past the threshold, with the writer's errors reaching the caller."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from app.storage import local
from app.storage.base import StorageError
from app.storage.local import LocalFileStore
from app.storage.pipeline import HashingWriter
from tests.helpers import sha256_hex

MIB = 1024 * 1024


def chunks_of(data: bytes, size: int):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("total", [10, MIB - 1, 5 * MIB + 7])
def test_every_byte_is_hashed_and_written_in_order(total):
    data = os.urandom(total)
    written = []
    writer = HashingWriter(written.append)

    for chunk in chunks_of(data, 64 * 1024 + 3):
        writer.write(chunk)
    digest = writer.finish()

    assert b"".join(written) == data
    assert digest == sha256_hex(data)


def test_a_thread_is_used_only_past_the_threshold():
    def writes_on(sizes) -> set[str]:
        threads = set()
        writer = HashingWriter(lambda _chunk: threads.add(threading.current_thread().name))
        for size in sizes:
            writer.write(b"x" * size)
        writer.finish()
        return threads

    caller = threading.current_thread().name
    assert writes_on([1000, 1000]) == {caller}
    assert writes_on([MIB, MIB, MIB]) == {caller, "depot-staging-writer"}


def test_a_write_error_on_the_writer_thread_reaches_the_caller():
    calls = []

    def failing(chunk):
        calls.append(len(chunk))
        if len(calls) > 2:
            raise StorageError("staging failed: ENOSPC")

    writer = HashingWriter(failing)
    with pytest.raises(StorageError, match="ENOSPC"):
        for _ in range(50):
            writer.write(b"x" * (512 * 1024))
        writer.finish()
    writer.close()


def test_a_disk_error_past_the_threshold_leaves_nothing_staged(tmp_path, monkeypatch):
    store = LocalFileStore(tmp_path / "store")
    real_write_all = local._write_all
    written = []

    def fill_disk(out, chunk):
        written.append(len(chunk))
        if sum(written) > 3 * MIB:  # well past the threshold: on the writer thread
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(out, chunk)

    monkeypatch.setattr(local, "_write_all", fill_disk)

    with pytest.raises(StorageError, match="ENOSPC"):
        store.stage(b"y" * MIB for _ in range(10))

    assert list(store.iter_staged()) == []
