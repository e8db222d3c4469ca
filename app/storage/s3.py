"""S3FileStore: files in a bucket of an S3-compatible object store (AWS S3, SeaweedFS, Ceph).

Layout under an optional prefix: `staging/<random id>` for bytes still arriving or waiting
for commit, and `objects/<key>` for committed files. A staged object becomes final by a
server-side copy followed by deleting the staged one (S3 has no rename); a successful PUT is
durable, so no fsync is needed. Bytes are sent as a multipart upload in parts of a fixed size
as they arrive, from a second thread (app.storage.pipeline), so an upload holds about one
part and a few queued chunks in memory whatever the file's size.

A resumable (tus) upload's bytes arrive across requests and replicas: `staging/<partial id>`
is then a multipart upload that stays open between requests, with small objects beside it
for the bytes not yet in a whole part (app.storage.s3_partials).

Every botocore failure (network, credentials, a 5xx of the store, a timeout) becomes
StorageError, which the data manager and the API already treat as "the store failed; nothing
was kept".

Every call waits a bounded time (app.storage.s3_client's Patience): a store that stops
answering, without refusing connections, costs a request a few seconds, not minutes. A request
that timed out may still be carried out by the store once it answers again (it sat in the
store's socket buffers): what such a request may have created is handed to `Leftovers`, which
removes it in the background once the store is back (app.storage.s3_leftovers).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, HTTPClientError

from app.attachments import content_disposition
from app.storage import s3_leftovers
from app.storage.base import (
    HEAD_BYTES,
    PARTIAL_PREFIX,
    FileStore,
    Intake,
    ObjectMissing,
    StagedFile,
    StorageError,
    StoredObject,
)
from app.storage.pipeline import HashingWriter
from app.storage.s3_client import (
    BOTO_FAILURES,
    QUICK_PATIENCE,
    describe,
    is_not_found,
    make_client,
)
from app.storage.s3_client import required as _required
from app.storage.s3_leftovers import Leftovers, remove_key
from app.storage.s3_partials import S3Partial, S3PartialWriter, new_partial_id, part_size_of

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
# S3 refuses parts under 5 MiB (except the last), and more than 10,000 parts.
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
# A server-side copy takes time in proportion to the size (SeaweedFS, measured: 64 MiB in
# 0.5 s, 256 MiB in 3.7 s), and no byte comes back until it is done: one call for a large
# file would outlast the read timeout. So files above this are copied in parts of this size
# (UploadPartCopy), each well within it.
COPY_PART_SIZE = 32 * 1024 * 1024
# The request may have reached the store, and the store may still carry it out later (a read
# timeout, a connection cut before the reply) or it is not answering at all (a connect
# timeout): in both cases cleaning up now would only wait again, so it is left to Leftovers.
_IN_DOUBT = (HTTPClientError, ConnectTimeoutError)

log = logging.getLogger(__name__)
# After a timeout, cleanups skip the store for this long and go straight to Leftovers: a
# request that already waited for one timed-out call must not wait for its cleanups too.
HUNG_SECONDS = 5.0


class S3ObjectReader:
    """A seekable, read-only file over one object, read in ranged GETs of growing windows.

    Werkzeug seeks to the start of a Range before reading, so a ranged download fetches only
    the bytes it sends. Each GET asks for one window: the first is small and each next one
    twice as large, up to MAX_WINDOW_BYTES. A download whose client reads slowly thus holds at
    most a small window, in Depot or in the socket buffers between Depot and the store, never
    the rest of the object pushed ahead by the store: a thousand such downloads on one GET
    each held over 1 GB of kernel socket memory, which stalled every TCP connection on the
    machine (issue 12). A fast download soon reads 16 MiB per GET, and a window read to its
    end returns its connection to the pool for the next one. The first window is larger than
    what a slow reader's connection takes at once when many download (its share of
    app.api.stalled_readers.UNSENT_BUDGET_BYTES plus the bytes in flight), so sending it waits
    for the client before a second GET is made.
    """

    FIRST_WINDOW_BYTES = 512 * 1024
    MAX_WINDOW_BYTES = 16 * 1024 * 1024
    # Read at open, before any header is sent: see _read_ahead.
    READ_AHEAD_BYTES = 64 * 1024

    def __init__(self, client: Any, bucket: str, key: str, offset: int = 0) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._position = offset
        self._body = None
        self._window_end = offset  # the first byte past the current window
        self._window = self.FIRST_WINDOW_BYTES
        self._size: int | None = None
        self._ahead = b""  # bytes read at open and not yet returned; self._position is past them
        self._open_window()  # eagerly, so a missing object is an error before any header is sent
        self._read_ahead()

    def _read_ahead(self) -> None:
        """Read the first bytes now, while the request can still answer an error: a store that
        cuts the connection just after answering (an outage beginning) fails here, as a JSON
        503, instead of in the server's first read, when the response has begun and gunicorn
        could only answer its own HTML 500."""
        if self._body is not None:
            self._ahead = self._read_body(min(self.READ_AHEAD_BYTES, self._window_end - self._position))

    def _open_window(self) -> None:
        last = self._position + self._window - 1
        if self._size is not None:
            last = min(last, self._size - 1)
        kwargs = {"Bucket": self._bucket, "Key": self._key, "Range": f"bytes={self._position}-{last}"}
        try:
            reply = self._client.get_object(**kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "InvalidRange":
                self._body, self._size = None, self._position  # at or past the end: nothing to read
                return
            if code in ("NoSuchKey", "404"):
                raise ObjectMissing(f"open failed: {describe(error)}") from error
            raise StorageError(f"open failed: {describe(error)}") from error
        except BotoCoreError as error:
            raise StorageError(f"open failed: {describe(error)}") from error
        self._body = _required(reply, "Body", "open")
        content_range = reply.get("ContentRange")  # "bytes 10-99/100"
        if content_range:
            self._size = int(content_range.rsplit("/", 1)[1])
            self._window_end = int(content_range.split(" ", 1)[1].split("-", 1)[1].split("/", 1)[0]) + 1
        else:  # a store that ignores Range sends the whole object
            self._size = _required(reply, "ContentLength", "open")
            self._window_end = self._size
        self._window = min(self._window * 2, self.MAX_WINDOW_BYTES)

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left with -1); b"" only at the end of the object.
        A read may return fewer bytes than asked where one window ends."""
        whole = size is None or size < 0
        if whole:
            return b"".join(iter(lambda: self.read(self.MAX_WINDOW_BYTES), b""))
        if self._ahead:
            data, self._ahead = self._ahead[:size], self._ahead[size:]
            if len(data) < size and self._body is not None and self._position < self._window_end:
                data += self._read_body(min(size - len(data), self._window_end - self._position))
            return data
        if self._body is not None and self._position >= self._window_end:
            self._body.close()  # read to its end: its connection is back in the pool already
            self._body = None
            if self._position < (self._size or 0):
                self._open_window()
        if self._body is None:
            return b""
        return self._read_body(min(size, self._window_end - self._position))

    def _read_body(self, size: int) -> bytes:
        try:
            data = self._body.read(size)
        except BOTO_FAILURES + (OSError,) as error:
            raise StorageError(f"read failed: {describe(error)}") from error
        if not data and self._position < self._window_end:
            raise StorageError(f"read failed: the store ended {self._key} at byte {self._position}")
        self._position += len(data)
        return data

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position - len(self._ahead)

    def seek(self, offset: int, whence: int = 0) -> int:
        here = self.tell()
        target = {0: offset, 1: here + offset, 2: (self._size or 0) + offset}[whence]
        if target != here:
            self.close()
            self._ahead = b""
            self._position = target
            self._window = self.FIRST_WINDOW_BYTES
            self._open_window()
            self._read_ahead()
        return self.tell()

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def __enter__(self) -> S3ObjectReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class S3FileStore(FileStore):
    """A FileStore in an S3 bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        part_size: int = 8 * 1024 * 1024,
        client: Any = None,
        presign_client: Any = None,
        quick_client: Any = None,
        background_cleanup: bool = True,
        **client_options: Any,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts must be at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.part_size = part_size
        self.client = client or make_client(**client_options)
        # The readiness probe and cleanups: one short attempt (QUICK_PATIENCE).
        self.quick_client = quick_client or (
            self.client if client else make_client(patience=QUICK_PATIENCE, **client_options)
        )
        # Presigned URLs name the host a browser will reach, which may differ from ours.
        self.presign_client = presign_client or self.client
        # background_cleanup=False: leftovers wait for an explicit `leftovers.sweep()` (tests).
        self.leftovers = Leftovers(self.quick_client, bucket, background=background_cleanup)
        self._hung_until = 0.0  # s3_leftovers.clock() until which cleanups skip the store

    @classmethod
    def from_config(cls, config) -> S3FileStore:
        options = {
            "region_name": config["S3_REGION"],
            "aws_access_key_id": config["S3_ACCESS_KEY_ID"],
            "aws_secret_access_key": config["S3_SECRET_ACCESS_KEY"],
            "addressing_style": config["S3_ADDRESSING_STYLE"],
        }
        client = make_client(endpoint_url=config["S3_ENDPOINT_URL"], **options)
        quick_client = make_client(endpoint_url=config["S3_ENDPOINT_URL"], patience=QUICK_PATIENCE, **options)
        public = config["S3_PUBLIC_ENDPOINT_URL"]
        presign_client = make_client(endpoint_url=public, **options) if public else client
        return cls(
            config["S3_BUCKET"],
            prefix=config["S3_PREFIX"],
            part_size=config["S3_PART_SIZE_BYTES"],
            client=client,
            presign_client=presign_client,
            quick_client=quick_client,
        )

    # --- keys -------------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        if not _SAFE_KEY.match(key):
            raise ValueError(f"unsafe storage key {key!r}")
        return f"{self.prefix}objects/{key}"

    def _staging_key(self, staging_id: str) -> str:
        if not _SAFE_KEY.match(staging_id):
            raise ValueError(f"unsafe staging id {staging_id!r}")
        return f"{self.prefix}staging/{staging_id}"

    # --- writing ----------------------------------------------------------------------------

    def stage(self, chunks: Iterable[bytes], limit: int | None = None) -> StagedFile:
        staging_id = secrets.token_hex(16)
        upload = _StagingUpload(self.client, self.bucket, self._staging_key(staging_id), self.part_size)
        intake = Intake(limit)
        try:
            # Parts are sent on a second thread while the request thread receives and hashes.
            sha256 = HashingWriter(upload.write).drain(intake(chunks))
            upload.finish()
        except BaseException as error:
            self._saw(error)
            self._clean_up(upload.key, upload.upload_id)
            if isinstance(error, BOTO_FAILURES):
                raise StorageError(f"staging failed: {describe(error)}") from error
            raise
        return StagedFile(staging_id=staging_id, size=intake.size, sha256=sha256, head=intake.head)

    def promote(self, staged: StagedFile, key: str) -> None:
        source = {"Bucket": self.bucket, "Key": self._staging_key(staged.staging_id)}
        target = self._object_key(key)
        try:
            if staged.size <= COPY_PART_SIZE:
                self.client.copy_object(Bucket=self.bucket, Key=target, CopySource=source)
            else:
                self._copy_in_parts(source, target, staged.size)
        except BOTO_FAILURES as error:
            self._saw(error)
            raise StorageError(f"promotion failed: {describe(error)}") from error
        # The staged copy is now redundant (and complete, so no multipart upload is left).
        self._clean_up(source["Key"], uploads=False)

    def discard(self, staged: StagedFile) -> None:
        self.discard_staged(staged.staging_id)

    def discard_staged(self, staging_id: str) -> None:
        self._clean_up(self._staging_key(staging_id))
        if staging_id.startswith(PARTIAL_PREFIX) and not self._remove_extras(self._partial(staging_id)):
            # Still listed by iter_staged (by those objects), so `storage check --repair` ends it.
            log.warning("the objects of staged bytes %s could not be listed; left for `storage check`", staging_id)

    def delete(self, key: str) -> None:
        # Keys are never reused, so a delete that fails now is retried in the background: the
        # caller learns of the failure, and the file does not outlive the outage.
        if not self._clean_up(self._object_key(key), uploads=False):
            raise StorageError("delete failed: the store did not answer; retrying in the background")

    # --- resumable uploads (the layout: app.storage.s3_partials) -----------------------------

    def begin_partial(self) -> str:
        partial_id = new_partial_id(self.part_size)
        key = self._staging_key(partial_id)
        try:
            _required(self.client.create_multipart_upload(Bucket=self.bucket, Key=key), "UploadId", "staging")
        except (*BOTO_FAILURES, StorageError) as error:
            self._saw(error)
            self._clean_up(key)
            if isinstance(error, StorageError):
                raise
            raise StorageError(f"staging failed: {describe(error)}") from error
        return partial_id

    def open_partial(self, partial_id: str, offset: int) -> S3PartialWriter:
        partial = self._partial(partial_id)
        full, rest = divmod(offset, partial.part_size)
        try:
            upload_id = partial.upload_id()
            if upload_id is None or partial.sealed_size() is not None:
                upload_id = partial.reopen_sealed(offset, upload_id)
            partial.full_parts(upload_id, full)
            pending, path, segments = partial.restore(offset)
            if len(path) > 1:  # one segment in their place: the next opening reads one object
                partial.put_segment(offset - rest, pending)
        except BOTO_FAILURES as error:
            self._saw(error)
            raise StorageError(f"opening the staged bytes failed: {describe(error)}") from error
        # Segments below the offset but the first are done with: older parts' (whole and
        # durable now) and those just merged. Those at or past it (a killed request's) are
        # not: this writer may put its own under those names, which a removal left to
        # Leftovers in the background could then take; they are never read (see above).
        for start, (key, _size) in segments.items():
            if start < offset and start not in path[:1]:
                self._clean_up(key, uploads=False)
        return S3PartialWriter(partial, upload_id, offset, pending)

    def seal_partial(self, partial_id: str, size: int, head: bytes) -> StagedFile:
        partial = self._partial(partial_id)
        full, rest = divmod(size, partial.part_size)
        try:
            upload_id = partial.upload_id()
            if upload_id is None:
                raise ObjectMissing("the upload's staged bytes are gone")
            parts = partial.full_parts(upload_id, full)
            if rest:
                etag = partial.send_part(upload_id, full + 1, partial.restore(size)[0])
                parts.append({"PartNumber": full + 1, "ETag": etag})
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=partial.key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            # The whole file is read back to hash it: a hash state cannot follow the upload
            # from replica to replica (hashlib's cannot be saved), and this hashes what the
            # store holds, as the local store hashes its file.
            sha256, actual = self._hash_object(partial.key)
        except BOTO_FAILURES as error:
            self._saw(error)
            raise StorageError(f"sealing failed: {describe(error)}") from error
        if actual != size:
            raise StorageError(f"sealing failed: {actual} bytes staged, {size} expected")
        self._remove_extras(partial)
        return StagedFile(staging_id=partial_id, size=size, sha256=sha256, head=head[:HEAD_BYTES])

    def _partial(self, partial_id: str) -> S3Partial:
        return S3Partial(self.client, self.bucket, self._staging_key(partial_id), part_size_of(partial_id))

    def _remove_extras(self, partial: S3Partial) -> bool:
        """Remove a partial's objects beside its multipart upload (segments, part records);
        False if they could not be listed. Each removal that fails is left to Leftovers."""
        if s3_leftovers.clock() < self._hung_until:
            return False
        try:
            extras = S3Partial(self.quick_client, self.bucket, partial.key, partial.part_size).extras()
        except BOTO_FAILURES as error:
            self._saw(error)
            return False
        for key in extras:
            self._clean_up(key, uploads=False)
        return True

    def _hash_object(self, key: str) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        with S3ObjectReader(self.client, self.bucket, key) as reader:
            while block := reader.read(1024 * 1024):
                digest.update(block)
                size += len(block)
        return digest.hexdigest(), size

    # --- reading ----------------------------------------------------------------------------

    def open(self, key: str, offset: int = 0) -> S3ObjectReader:
        return S3ObjectReader(self.client, self.bucket, self._object_key(key), offset)

    def presigned_url(self, key: str, filename: str, content_type: str, expires_in: int) -> str:
        try:
            return self.presign_client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self._object_key(key),
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": content_disposition(filename),
                },
                ExpiresIn=expires_in,
            )
        except BOTO_FAILURES as error:
            raise StorageError(f"presigning failed: {describe(error)}") from error

    def stat(self, key: str) -> StoredObject | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as error:
            if is_not_found(error):
                return None
            raise StorageError(f"stat failed: {describe(error)}") from error
        except BotoCoreError as error:
            raise StorageError(f"stat failed: {describe(error)}") from error
        return StoredObject(
            key=key,
            size=_required(head, "ContentLength", "stat"),
            modified_at=_required(head, "LastModified", "stat"),
        )

    def iter_objects(self) -> Iterator[StoredObject]:
        yield from self._listing(f"{self.prefix}objects/")

    def iter_staged(self) -> Iterator[StoredObject]:
        """Staged objects, and multipart uploads not completed (a worker killed mid-upload, a
        resumable upload in progress), which hold storage too. A resumable upload's other
        objects (`<id>.<...>`: app.storage.s3_partials) count with it: each staging id is
        listed once, with the bytes it holds."""
        prefix = f"{self.prefix}staging/"
        found: dict[str, StoredObject] = {}

        def add(name: str, size: int, modified_at: datetime) -> None:
            if not _SAFE_KEY.match(name):
                return  # not ours
            if name in found:
                seen = found[name]
                size, modified_at = seen.size + size, max(seen.modified_at, modified_at)
            found[name] = StoredObject(key=name, size=size, modified_at=modified_at)

        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :]
                    if name.startswith(PARTIAL_PREFIX):
                        name = name.split(".", 1)[0]  # a partial's segment or part record
                    add(name, item["Size"], item["LastModified"])
            for upload in self._multipart_uploads(prefix):
                add(upload["Key"][len(prefix) :], *self._upload_activity(upload))
        except BOTO_FAILURES as error:
            raise StorageError(f"listing failed: {describe(error)}") from error
        yield from found.values()

    def check(self) -> None:
        """One HEAD of the bucket: the store answers, the credentials are accepted and the
        bucket exists. Read-only, so probing leaves nothing in the bucket; one short attempt
        (QUICK_PATIENCE), so a hung store fails it in about a second."""
        try:
            self.quick_client.head_bucket(Bucket=self.bucket)
        except BOTO_FAILURES as error:
            self._saw(error)
            raise StorageError(f"the bucket is not reachable: {describe(error)}") from error

    def prepare(self) -> bool:
        """Create the bucket if it does not exist; True if it was created."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as error:
            if not is_not_found(error):
                raise StorageError(f"cannot reach the bucket: {describe(error)}") from error
        except BotoCoreError as error:
            raise StorageError(f"cannot reach the bucket: {describe(error)}") from error
        try:
            region = self.client.meta.region_name
            if region and region != "us-east-1":
                self.client.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": region})
            else:
                self.client.create_bucket(Bucket=self.bucket)
        except BOTO_FAILURES as error:
            raise StorageError(f"cannot create the bucket: {describe(error)}") from error
        return True

    # --- helpers ----------------------------------------------------------------------------

    def _copy_in_parts(self, source: dict, target: str, size: int) -> None:
        reply = self.client.create_multipart_upload(Bucket=self.bucket, Key=target)
        upload_id = _required(reply, "UploadId", "promotion")
        part_size = max(COPY_PART_SIZE, -(-size // MAX_PARTS))
        parts = []
        try:
            for number, start in enumerate(range(0, size, part_size), start=1):
                reply = self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=target,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{min(start + part_size, size) - 1}",
                )
                etag = _required(_required(reply, "CopyPartResult", "promotion"), "ETag", "promotion")
                parts.append({"PartNumber": number, "ETag": etag})
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=target, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException as error:
            self._saw(error)
            self._clean_up(target, upload_id)
            raise

    def _saw(self, error: BaseException) -> None:
        """Note a failure: after a timeout, cleanups go straight to Leftovers for a while."""
        if isinstance(error, _IN_DOUBT):
            self._hung_until = s3_leftovers.clock() + HUNG_SECONDS

    def _clean_up(self, key: str, upload_id: str | None = None, uploads: bool = True) -> bool:
        """Remove whatever is stored under `key` now, with one short attempt per call; True if
        that worked. If it did not, or if the store has just timed out (a cleanup would only
        wait again), Leftovers does it in the background, and also does it again a moment
        later: a request that timed out may still be carried out when the store answers.
        `uploads=False`: no multipart upload can be there, only the object is deleted now
        (Leftovers always looks for both)."""
        if s3_leftovers.clock() < self._hung_until:
            self.leftovers.add(key)
            return False
        try:
            if uploads:
                remove_key(self.quick_client, self.bucket, key, upload_id)
            else:
                self.quick_client.delete_object(Bucket=self.bucket, Key=key)
        except BOTO_FAILURES as error:
            self._saw(error)
            self.leftovers.add(key)
            return False
        return True

    def _listing(self, prefix: str) -> Iterator[StoredObject]:
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :]
                    if _SAFE_KEY.match(name):
                        yield StoredObject(key=name, size=item["Size"], modified_at=item["LastModified"])
        except BOTO_FAILURES as error:
            raise StorageError(f"listing failed: {describe(error)}") from error

    def _upload_activity(self, upload: dict) -> tuple[int, datetime]:
        """The bytes a multipart upload holds, and when it last received a part: a slow upload
        still sending parts is in progress, however long ago it started."""
        size, latest = 0, upload["Initiated"]
        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
        for page in pages:
            for part in page.get("Parts", []):
                size += part["Size"]
                latest = max(latest, part["LastModified"])
        return size, latest

    def _multipart_uploads(self, prefix: str) -> Iterator[dict]:
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Uploads", [])


class _StagingUpload:
    """Sends a staged object as it arrives: one PUT if it fits in a part, else a multipart upload."""

    def __init__(self, client: Any, bucket: str, key: str, part_size: int) -> None:
        self.client, self.bucket, self.key, self.part_size = client, bucket, key, part_size
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict] = []

    def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        while len(self.buffer) >= self.part_size:
            part = bytes(self.buffer[: self.part_size])
            del self.buffer[: self.part_size]
            self._send_part(part)

    def finish(self) -> None:
        if self.upload_id is None:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer))
        else:
            if self.buffer or not self.parts:
                self._send_part(bytes(self.buffer))
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
            )
        self.buffer = bytearray()

    def _send_part(self, data: bytes) -> None:
        if self.upload_id is None:
            reply = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
            self.upload_id = _required(reply, "UploadId", "staging")
        number = len(self.parts) + 1
        reply = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
        )
        self.parts.append({"PartNumber": number, "ETag": _required(reply, "ETag", "staging")})
