"""LocalFileStore on a real temporary folder: what is particular to it (fsync, disk errors);
the behaviour every store shares is in test_file_store_contract.py."""

from __future__ import annotations

import errno
import os

import pytest

from app.storage import local
from app.storage.base import StorageError
from app.storage.local import LocalFileStore
from tests.helpers import sha256_hex


@pytest.fixture
def store(tmp_path) -> LocalFileStore:
    """A store in a fresh temporary folder."""
    return LocalFileStore(tmp_path / "store")


def staged_names(store):
    return sorted(p.name for p in store.staging.iterdir())


def test_stage_hashes_counts_and_keeps_the_head_while_writing(store):
    chunks = [b"a" * 5000, b"b" * 5000, b"c"]

    staged = store.stage(iter(chunks))

    data = b"".join(chunks)
    assert (staged.size, staged.sha256) == (len(data), sha256_hex(data))
    assert staged.head == data[:8192]
    assert (store.staging / staged.staging_id).read_bytes() == data


def test_a_write_error_leaves_nothing(store, monkeypatch):
    def full(_out, _chunk):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local, "_write_all", full)

    with pytest.raises(StorageError, match="ENOSPC"):
        store.stage([b"data"])
    assert staged_names(store) == []


def test_an_fsync_error_leaves_nothing(store, monkeypatch):
    def broken_fsync(_fd):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(local.os, "fsync", broken_fsync)

    with pytest.raises(StorageError, match="EIO"):
        store.stage([b"data"])
    assert staged_names(store) == []


def test_stage_fsyncs_the_file_and_promote_fsyncs_the_directory(store, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        local.os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd)
    )

    staged = store.stage([b"data"])
    store.promote(staged, "a" * 32)
    second = store.stage([b"more"])
    store.promote(second, "a" * 31 + "b")

    assert synced == [
        str(store.staging / staged.staging_id),
        str(store.objects),  # the new shard folder "aa" itself
        str(store.objects / "aa"),
        str(store.staging / second.staging_id),
        str(store.objects / "aa"),  # an existing shard: only its entries change
    ]


def test_check_reports_an_unwritable_store(store, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(type(store.staging), "write_bytes", refuse)

    with pytest.raises(StorageError, match="not writable"):
        store.check()


def test_an_open_file_stays_readable_whole_after_its_delete(store):
    data = os.urandom(100_000)
    store.promote(store.stage([data]), "k" * 32)

    with store.open("k" * 32, 10) as handle:
        store.delete("k" * 32)  # what a DELETE committed during a download does
        assert handle.read() == data[10:]
    assert store.stat("k" * 32) is None
