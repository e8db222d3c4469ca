"""LocalFileStore: files in a folder on this machine (the embedded default, UPLOAD_DIR).

Layout: `staging/<random id>` for bytes still arriving or waiting for commit, and
`objects/<key[:2]>/<key>` for committed files. Staging and objects share a filesystem, so
promotion is an atomic rename. Durability: the staged file is fsynced when written; the
rename is made durable by fsyncing the destination directory.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from app.cooperative import offload
from app.storage.base import (
    HEAD_BYTES,
    PARTIAL_PREFIX,
    FileStore,
    Intake,
    ObjectMissing,
    PartialWriter,
    StagedFile,
    StorageError,
    StoredObject,
)
from app.storage.pipeline import HashingWriter

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{8,128}$")


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalFileStore(FileStore):
    """A FileStore in a local folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.staging = self.root / "staging"
        self.objects = self.root / "objects"
        with _storage_io("opening the folder"):
            self.staging.mkdir(parents=True, exist_ok=True)
            self.objects.mkdir(parents=True, exist_ok=True)

    # --- paths ------------------------------------------------------------------------------

    def _object_path(self, key: str) -> Path:
        # Keys are generated ids; refusing anything else keeps paths inside the store.
        if not _SAFE_KEY.match(key):
            raise ValueError(f"unsafe storage key {key!r}")
        return self.objects / key[:2] / key

    def _staging_path(self, staging_id: str) -> Path:
        if not _SAFE_KEY.match(staging_id):
            raise ValueError(f"unsafe staging id {staging_id!r}")
        return self.staging / staging_id

    # --- writing ----------------------------------------------------------------------------

    def stage(self, chunks: Iterable[bytes], limit: int | None = None) -> StagedFile:
        staging_id = secrets.token_hex(16)
        path = self._staging_path(staging_id)
        intake = Intake(limit)
        with _storage_io("staging"):
            out = open(path, "xb", buffering=0)  # noqa: SIM115 (closed by the with below)

        def write(chunk: bytes) -> None:
            with _storage_io("staging"):
                _write_all(out, chunk)

        try:
            with out:
                # Errors raised by `chunks` (the client's body) pass through unchanged: only
                # this store's own reads and writes are storage failures.
                sha256 = HashingWriter(write, blocking_io=True).drain(intake(chunks))
                with _storage_io("staging"):
                    offload(os.fsync, out.fileno())
        except BaseException:
            _remove_quietly(path)
            raise
        return StagedFile(staging_id=staging_id, size=intake.size, sha256=sha256, head=intake.head)

    def promote(self, staged: StagedFile, key: str) -> None:
        target = self._object_path(key)
        try:
            if not target.parent.exists():
                target.parent.mkdir(exist_ok=True)
                _fsync_directory(self.objects)  # the new shard's own entry must survive a crash
            os.replace(self._staging_path(staged.staging_id), target)
            _fsync_directory(target.parent)
        except OSError as error:
            raise StorageError(f"promotion failed: {_describe(error)}") from error

    def discard(self, staged: StagedFile) -> None:
        self.discard_staged(staged.staging_id)

    def discard_staged(self, staging_id: str) -> None:
        _remove_quietly(self._staging_path(staging_id))

    def delete(self, key: str) -> None:
        try:
            self._object_path(key).unlink(missing_ok=True)
        except OSError as error:
            raise StorageError(f"delete failed: {_describe(error)}") from error

    # --- resumable uploads ------------------------------------------------------------------

    def begin_partial(self) -> str:
        partial_id = PARTIAL_PREFIX + secrets.token_hex(16)
        with _storage_io("staging"):
            self._staging_path(partial_id).touch(exist_ok=False)
        return partial_id

    def open_partial(self, partial_id: str, offset: int) -> PartialWriter:
        path = self._staging_path(partial_id)
        with _storage_io("staging"):
            try:
                out = open(path, "r+b", buffering=0)  # noqa: SIM115 (the writer closes it)
            except FileNotFoundError as error:
                raise ObjectMissing("the upload's staged bytes are gone") from error
            try:
                size = os.fstat(out.fileno()).st_size
                if size < offset:
                    raise ObjectMissing(f"the staged bytes end at {size}, before offset {offset}")
                if size > offset:  # an interrupted request's bytes past the durable offset
                    out.truncate(offset)
                out.seek(offset)
            except BaseException:
                out.close()
                raise
        return _LocalPartial(out, offset)

    def seal_partial(self, partial_id: str, size: int, head: bytes) -> StagedFile:
        path = self._staging_path(partial_id)
        with _storage_io("sealing"):
            sha256, actual = offload(_hash_file, path)
        if actual != size:
            raise StorageError(f"sealing failed: {actual} bytes staged, {size} expected")
        return StagedFile(staging_id=partial_id, size=size, sha256=sha256, head=head[:HEAD_BYTES])

    # --- reading ----------------------------------------------------------------------------

    def open(self, key: str, offset: int = 0) -> BinaryIO:
        # The open descriptor keeps the bytes readable after a delete unlinks the file, so a
        # download that got this far is sent whole.
        try:
            handle = open(self._object_path(key), "rb")  # noqa: SIM115 (the caller closes it)
            handle.seek(offset)
            return handle
        except FileNotFoundError as error:
            raise ObjectMissing("open failed: no such object") from error
        except OSError as error:
            raise StorageError(f"open failed: {_describe(error)}") from error

    def stat(self, key: str) -> StoredObject | None:
        try:
            st = self._object_path(key).stat()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StorageError(f"stat failed: {_describe(error)}") from error
        return StoredObject(key=key, size=st.st_size, modified_at=_mtime(st))

    def iter_objects(self) -> Iterator[StoredObject]:
        with _storage_io("listing"):
            for shard in sorted(p for p in self.objects.iterdir() if p.is_dir()):
                yield from _listing(shard)

    def iter_staged(self) -> Iterator[StoredObject]:
        with _storage_io("listing"):
            yield from _listing(self.staging)

    def check(self) -> None:
        probe = self.root / f".ready-{secrets.token_hex(4)}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise StorageError(f"the upload folder is not writable: {_describe(error)}") from error


class _LocalPartial:
    """Appends to a staged file; sync() makes what was written durable (off the worker's
    thread under gevent, as every disk write here)."""

    def __init__(self, out, offset: int) -> None:
        self._out = out
        self.offset = offset

    def write(self, chunk) -> None:
        with _storage_io("staging"):
            offload(_write_all, self._out, chunk)
        self.offset += len(chunk)

    def sync(self) -> int:
        with _storage_io("staging"):
            offload(os.fsync, self._out.fileno())
        return self.offset

    def close(self) -> None:
        self._out.close()


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb", buffering=0) as source:
        while block := source.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _listing(folder: Path) -> Iterator[StoredObject]:
    """Objects in a folder that the server may be changing while we look."""
    for path in sorted(folder.iterdir()):
        if not _SAFE_KEY.match(path.name):
            continue  # not ours
        try:
            st = path.stat()
        except FileNotFoundError:
            continue  # promoted or deleted since the listing
        yield StoredObject(key=path.name, size=st.st_size, modified_at=_mtime(st))


@contextmanager
def _storage_io(operation: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except OSError as error:
        raise StorageError(f"{operation} failed: {_describe(error)}") from error


def _write_all(out, chunk) -> None:
    view = memoryview(chunk)
    while view:
        written = out.write(view)
        view = view[written:]


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # a leftover is found and removed by `flask storage check --repair`


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=UTC)


def _describe(error: OSError) -> str:
    # errno names only: paths stay out of messages that may reach a client or a log.
    return errno.errorcode.get(error.errno, "I/O error") if error.errno else type(error).__name__
