"""MeteredFileStore: any FileStore, with each failed operation counted for /metrics."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from app.metrics import STORAGE_ERRORS
from app.storage.base import FileStore, ObjectMissing, PartialWriter, StagedFile, StorageError, StoredObject


class MeteredFileStore(FileStore):
    """Delegates to `inner`; a StorageError is counted by operation, then re-raised.

    ObjectMissing is not counted: a download racing a delete meets it with a healthy store.
    A row whose file is gone is logged by UploadService and reported by `storage check`."""

    def __init__(self, inner: FileStore) -> None:
        self.inner = inner

    def _call(self, operation: str, function, *args):
        try:
            return function(*args)
        except ObjectMissing:
            raise
        except StorageError:
            STORAGE_ERRORS.labels(operation).inc()
            raise

    def _iterate(self, operation: str, objects: Iterator[StoredObject]) -> Iterator[StoredObject]:
        try:
            yield from objects
        except StorageError:
            STORAGE_ERRORS.labels(operation).inc()
            raise

    def stage(self, chunks: Iterable[bytes], limit: int | None = None) -> StagedFile:
        return self._call("stage", self.inner.stage, chunks, limit)

    def promote(self, staged: StagedFile, key: str) -> None:
        self._call("promote", self.inner.promote, staged, key)

    def discard(self, staged: StagedFile) -> None:
        self._call("discard", self.inner.discard, staged)

    def discard_staged(self, staging_id: str) -> None:
        self._call("discard", self.inner.discard_staged, staging_id)

    def delete(self, key: str) -> None:
        self._call("delete", self.inner.delete, key)

    def open(self, key: str, offset: int = 0) -> BinaryIO:
        return self._call("open", self.inner.open, key, offset)

    def presigned_url(self, key: str, filename: str, content_type: str, expires_in: int) -> str | None:
        return self._call("presign", self.inner.presigned_url, key, filename, content_type, expires_in)

    def begin_partial(self) -> str:
        return self._call("stage", self.inner.begin_partial)

    def open_partial(self, partial_id: str, offset: int) -> PartialWriter:
        return self._call("stage", self.inner.open_partial, partial_id, offset)

    def seal_partial(self, partial_id: str, size: int, head: bytes) -> StagedFile:
        return self._call("stage", self.inner.seal_partial, partial_id, size, head)

    def stat(self, key: str) -> StoredObject | None:
        return self._call("stat", self.inner.stat, key)

    def iter_objects(self) -> Iterator[StoredObject]:
        return self._iterate("list", self.inner.iter_objects())

    def iter_staged(self) -> Iterator[StoredObject]:
        return self._iterate("list", self.inner.iter_staged())

    def prepare(self) -> bool:
        return self._call("prepare", self.inner.prepare)

    def check(self) -> None:
        self._call("check", self.inner.check)
