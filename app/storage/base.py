"""The FileStore interface: stage bytes, promote them under a final key, read, delete, list.

It is narrow on purpose, so that an object store (S3) can stand behind it: staging is a
temporary object, promotion is a rename or copy, and every call names objects by key.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Protocol

# How many leading bytes are kept for content sniffing.
HEAD_BYTES = 8192


class StorageError(Exception):
    """The store could not read or write (disk full, I/O error, permission)."""


class ObjectMissing(StorageError):
    """The object asked for is not in the store.

    A StorageError still, for callers to whom any unreadable file is a failure; a download
    tells it apart, because a delete committed meanwhile leaves exactly this (see
    UploadService._open_file)."""


class SizeLimitExceeded(Exception):
    """More bytes arrived than the caller allowed; staging stopped and cleaned up."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


class Intake:
    """What every store learns from a file's bytes as they pass: their count (stopping past
    the limit, before the next chunk is read) and the leading bytes kept for sniffing."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.size = 0
        self.head = b""

    def __call__(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if not chunk:
                continue
            self.size += len(chunk)
            if self.limit is not None and self.size > self.limit:
                raise SizeLimitExceeded(self.limit)
            if len(self.head) < HEAD_BYTES:
                self.head += bytes(chunk[: HEAD_BYTES - len(self.head)])
            yield chunk


@dataclass
class StagedFile:
    """Bytes written durably to the staging area, with what was learnt while they arrived."""

    staging_id: str
    size: int
    sha256: str
    head: bytes = field(repr=False)


@dataclass(frozen=True)
class StoredObject:
    """An object found in the store (final or staged), for the consistency check."""

    key: str
    size: int
    modified_at: datetime


# Staging ids of resumable uploads' bytes start with this (storage check tells them apart).
PARTIAL_PREFIX = "tus-"


class PartialWriter(Protocol):
    """Appends to a resumable upload's staged bytes (FileStore.open_partial)."""

    offset: int  # bytes written so far, durable or not

    def write(self, chunk: bytes) -> None: ...

    def sync(self) -> int:
        """Make everything written durable; the offset it reached."""

    def close(self) -> None:
        """Stop writing (what was not synced may be lost)."""


class FileStore(abc.ABC):
    """Where file contents live; upload rows refer to them by key."""

    @abc.abstractmethod
    def stage(self, chunks: Iterable[bytes], limit: int | None = None) -> StagedFile:
        """Write `chunks` to a new staged object, hashing as they arrive, and make it durable.

        Raises SizeLimitExceeded past `limit` bytes and StorageError on I/O failure; either
        way nothing staged stays behind.
        """

    @abc.abstractmethod
    def promote(self, staged: StagedFile, key: str) -> None:
        """Make a staged object durable and visible under `key`."""

    @abc.abstractmethod
    def discard(self, staged: StagedFile) -> None:
        """Remove a staged object (no error if it is already gone)."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove a final object (no error if it is already gone)."""

    @abc.abstractmethod
    def open(self, key: str, offset: int = 0) -> BinaryIO:
        """Open a final object for reading (a seekable binary file), positioned at `offset`.

        Raises at once, before any byte is sent, ObjectMissing when there is no such object
        and StorageError when it cannot be read.
        """

    def presigned_url(self, key: str, filename: str, content_type: str, expires_in: int) -> str | None:
        """A short-lived URL where a client can fetch the object itself, if the store has them."""
        return None

    @abc.abstractmethod
    def stat(self, key: str) -> StoredObject | None:
        """Size and time of a final object, or None if it does not exist."""

    @abc.abstractmethod
    def iter_objects(self) -> Iterator[StoredObject]:
        """Every final object."""

    @abc.abstractmethod
    def iter_staged(self) -> Iterator[StoredObject]:
        """Every staged object (uploads in progress, or leftovers of a crash)."""

    @abc.abstractmethod
    def discard_staged(self, staging_id: str) -> None:
        """Remove a staged object by id (used by the repair of crash leftovers)."""

    # --- resumable uploads: bytes staged across requests, sealed into a StagedFile ----------

    def begin_partial(self) -> str:
        """A new, empty staged object for a resumable upload; its staging id."""
        raise NotImplementedError(f"{type(self).__name__} has no resumable uploads")

    def open_partial(self, partial_id: str, offset: int) -> PartialWriter:
        """Append to a partial at `offset`, the durable offset its row records: bytes past it
        (an interrupted request's) are dropped. ObjectMissing if the partial is gone."""
        raise NotImplementedError(f"{type(self).__name__} has no resumable uploads")

    def seal_partial(self, partial_id: str, size: int, head: bytes) -> StagedFile:
        """The complete partial as a StagedFile (hashed), ready for promote()."""
        raise NotImplementedError(f"{type(self).__name__} has no resumable uploads")

    def prepare(self) -> bool:
        """Create what the store needs before first use (a bucket); True if anything was made."""
        return False

    @abc.abstractmethod
    def check(self) -> None:
        """Raise StorageError if the store cannot be written (readiness probe)."""
