"""What every FileStore must do, checked on the local folder and on S3 (moto) alike."""

from __future__ import annotations

import io

import pytest

from app.storage.base import ObjectMissing, SizeLimitExceeded
from tests.helpers import sha256_hex

KEY = "k" * 32


def test_stage_hashes_and_keeps_the_head_but_shows_nothing_yet(any_store):
    data = b"a" * 5000 + b"b" * 5000

    staged = any_store.stage(iter([data[:5000], data[5000:]]))

    assert (staged.size, staged.sha256, staged.head) == (len(data), sha256_hex(data), data[:8192])
    assert [s.key for s in any_store.iter_staged()] == [staged.staging_id]
    assert list(any_store.iter_objects()) == []


def test_promote_makes_it_final_and_removes_the_staged_copy(any_store):
    staged = any_store.stage([b"hello"])

    any_store.promote(staged, KEY)

    assert list(any_store.iter_staged()) == []
    assert [(o.key, o.size) for o in any_store.iter_objects()] == [(KEY, 5)]
    assert any_store.stat(KEY).size == 5
    with any_store.open(KEY) as handle:
        assert handle.read() == b"hello"


def test_open_at_an_offset_and_seek(any_store):
    any_store.promote(any_store.stage([b"0123456789"]), KEY)

    with any_store.open(KEY, 4) as handle:
        assert handle.read(3) == b"456"
        assert handle.tell() == 7
        handle.seek(1)
        assert handle.read() == b"123456789"


def test_exceeding_the_limit_stops_reading_and_leaves_nothing(any_store):
    consumed = []

    def chunks():
        for i in range(100):
            consumed.append(i)
            yield b"x" * 1000

    with pytest.raises(SizeLimitExceeded):
        any_store.stage(chunks(), limit=2500)

    assert len(consumed) == 3
    assert list(any_store.iter_staged()) == []


def test_an_error_from_the_body_leaves_nothing(any_store):
    def chunks():
        yield b"x" * 1000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        any_store.stage(chunks())

    assert list(any_store.iter_staged()) == []


def test_delete_and_discard_tolerate_missing_objects(any_store):
    staged = any_store.stage([b"x"])
    any_store.discard(staged)
    any_store.discard(staged)
    any_store.delete("b" * 32)

    assert list(any_store.iter_staged()) == []
    assert any_store.stat("b" * 32) is None


def test_opening_a_missing_object_says_it_is_missing(any_store):
    any_store.promote(any_store.stage([b"x"]), KEY)
    any_store.delete(KEY)

    with pytest.raises(ObjectMissing):
        any_store.open(KEY)


def test_delete_removes_a_final_object(any_store):
    any_store.promote(any_store.stage([b"x"]), KEY)

    any_store.delete(KEY)

    assert any_store.stat(KEY) is None
    assert list(any_store.iter_objects()) == []


@pytest.mark.parametrize("key", ["../escape", "a/b", "", "short", "x" * 200])
def test_unsafe_keys_are_refused(any_store, key):
    with pytest.raises(ValueError):
        any_store.open(key)


def test_check_and_prepare_succeed_on_a_working_store(any_store):
    any_store.check()
    any_store.prepare()
    any_store.check()


def test_an_empty_file_can_be_staged(any_store):
    staged = any_store.stage(io.BytesIO(b""))

    assert (staged.size, staged.sha256) == (0, sha256_hex(b""))
