"""S3FileStore: files in a bucket of an S3-compatible object store (AWS S3, MinIO, Ceph).

Layout under an optional prefix: `staging/<random id>` for bytes still arriving or waiting
for commit, and `objects/<key>` for committed files. A staged object becomes final by a
server-side copy followed by deleting the staged one (S3 has no rename); a successful PUT is
durable, so no fsync is needed. Bytes are sent as a multipart upload in parts of a fixed size
as they arrive, from a second thread (app.storage.pipeline), so an upload holds about one
part and a few queued chunks in memory whatever the file's size.

Every botocore failure (network, credentials, a 5xx of the store) becomes StorageError, which
the data manager and the API already treat as "the store failed; nothing was kept".
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from app.attachments import content_disposition
from app.storage.base import FileStore, Intake, StagedFile, StorageError, StoredObject
from app.storage.pipeline import HashingWriter

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
# S3 refuses parts under 5 MiB (except the last) and single PUT/COPY over 5 GiB.
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_SINGLE_COPY = 5 * 1024**3
_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchUpload"}
_BOTO_FAILURES = (BotoCoreError, ClientError)


def _describe(error: Exception) -> str:
    # The error code only: messages can carry the endpoint, bucket or key.
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code", "ClientError")
    return type(error).__name__


def _required(reply: dict, name: str, operation: str) -> Any:
    """A field S3 always answers with. Without it the reply was garbled or cut short (seen
    under a network fault): a failure of the store, not of Depot."""
    try:
        return reply[name]
    except KeyError:
        raise StorageError(f"{operation} failed: the store's reply has no {name}") from None


def _is_not_found(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in _NOT_FOUND


class S3ObjectReader:
    """A seekable, read-only file over one object: each (re)positioning is one ranged GET.

    Werkzeug seeks to the start of a Range before reading, so a ranged download fetches only
    the bytes it sends.
    """

    def __init__(self, client: Any, bucket: str, key: str, offset: int = 0) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._position = offset
        self._body = None
        self._size: int | None = None
        self._open_body()  # eagerly, so a missing object is an error before any header is sent

    def _open_body(self) -> None:
        kwargs = {"Bucket": self._bucket, "Key": self._key}
        if self._position:
            kwargs["Range"] = f"bytes={self._position}-"
        try:
            reply = self._client.get_object(**kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "InvalidRange":
                self._body, self._size = None, self._position  # at or past the end: nothing to read
                return
            raise StorageError(f"open failed: {_describe(error)}") from error
        except BotoCoreError as error:
            raise StorageError(f"open failed: {_describe(error)}") from error
        self._body = _required(reply, "Body", "open")
        content_range = reply.get("ContentRange")  # "bytes 10-99/100" on a ranged GET
        self._size = (
            int(content_range.rsplit("/", 1)[1]) if content_range else _required(reply, "ContentLength", "open")
        )

    def read(self, size: int = -1) -> bytes:
        if self._body is None:
            return b""
        try:
            data = self._body.read(None if size is None or size < 0 else size)
        except _BOTO_FAILURES + (OSError,) as error:
            raise StorageError(f"read failed: {_describe(error)}") from error
        self._position += len(data)
        return data

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        target = {0: offset, 1: self._position + offset, 2: (self._size or 0) + offset}[whence]
        if target != self._position:
            self.close()
            self._position = target
            self._open_body()
        return self._position

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
        **client_options: Any,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts must be at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.part_size = part_size
        self.client = client or make_client(**client_options)
        # Presigned URLs name the host a browser will reach, which may differ from ours.
        self.presign_client = presign_client or self.client

    @classmethod
    def from_config(cls, config) -> S3FileStore:
        options = {
            "region_name": config["S3_REGION"],
            "aws_access_key_id": config["S3_ACCESS_KEY_ID"],
            "aws_secret_access_key": config["S3_SECRET_ACCESS_KEY"],
            "addressing_style": config["S3_ADDRESSING_STYLE"],
        }
        client = make_client(endpoint_url=config["S3_ENDPOINT_URL"], **options)
        public = config["S3_PUBLIC_ENDPOINT_URL"]
        presign_client = make_client(endpoint_url=public, **options) if public else client
        return cls(
            config["S3_BUCKET"],
            prefix=config["S3_PREFIX"],
            part_size=config["S3_PART_SIZE_BYTES"],
            client=client,
            presign_client=presign_client,
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
            upload.abort()
            if isinstance(error, _BOTO_FAILURES):
                raise StorageError(f"staging failed: {_describe(error)}") from error
            raise
        return StagedFile(staging_id=staging_id, size=intake.size, sha256=sha256, head=intake.head)

    def promote(self, staged: StagedFile, key: str) -> None:
        source = {"Bucket": self.bucket, "Key": self._staging_key(staged.staging_id)}
        target = self._object_key(key)
        try:
            if staged.size <= MAX_SINGLE_COPY:
                self.client.copy_object(Bucket=self.bucket, Key=target, CopySource=source)
            else:  # boto3's managed copy splits it into UploadPartCopy calls
                self.client.copy(source, self.bucket, target, Config=TransferConfig(multipart_chunksize=1024**3))
        except _BOTO_FAILURES as error:
            raise StorageError(f"promotion failed: {_describe(error)}") from error
        # The staged copy is now redundant (and complete, so no multipart upload is left);
        # if this delete fails, `storage check --repair` removes it later.
        try:
            self.client.delete_object(Bucket=self.bucket, Key=source["Key"])
        except _BOTO_FAILURES:
            pass

    def discard(self, staged: StagedFile) -> None:
        self.discard_staged(staged.staging_id)

    def discard_staged(self, staging_id: str) -> None:
        key = self._staging_key(staging_id)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
            for upload in self._multipart_uploads(key):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        except _BOTO_FAILURES:
            pass  # a leftover is found and removed by `flask storage check --repair`

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))
        except _BOTO_FAILURES as error:
            raise StorageError(f"delete failed: {_describe(error)}") from error

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
        except _BOTO_FAILURES as error:
            raise StorageError(f"presigning failed: {_describe(error)}") from error

    def stat(self, key: str) -> StoredObject | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as error:
            if _is_not_found(error):
                return None
            raise StorageError(f"stat failed: {_describe(error)}") from error
        except BotoCoreError as error:
            raise StorageError(f"stat failed: {_describe(error)}") from error
        return StoredObject(
            key=key,
            size=_required(head, "ContentLength", "stat"),
            modified_at=_required(head, "LastModified", "stat"),
        )

    def iter_objects(self) -> Iterator[StoredObject]:
        yield from self._listing(f"{self.prefix}objects/")

    def iter_staged(self) -> Iterator[StoredObject]:
        prefix = f"{self.prefix}staging/"
        yield from self._listing(prefix)
        # Multipart uploads never completed (a worker killed mid-upload) hold storage too.
        try:
            for upload in self._multipart_uploads(prefix):
                name = upload["Key"][len(prefix) :]
                if _SAFE_KEY.match(name):
                    yield StoredObject(key=name, size=0, modified_at=self._last_activity(upload))
        except _BOTO_FAILURES as error:
            raise StorageError(f"listing failed: {_describe(error)}") from error

    def check(self) -> None:
        probe = f"{self.prefix}.ready-{secrets.token_hex(4)}"
        try:
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"")
            self.client.delete_object(Bucket=self.bucket, Key=probe)
        except _BOTO_FAILURES as error:
            raise StorageError(f"the bucket is not writable: {_describe(error)}") from error

    def prepare(self) -> bool:
        """Create the bucket if it does not exist; True if it was created."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as error:
            if not _is_not_found(error):
                raise StorageError(f"cannot reach the bucket: {_describe(error)}") from error
        except BotoCoreError as error:
            raise StorageError(f"cannot reach the bucket: {_describe(error)}") from error
        try:
            region = self.client.meta.region_name
            if region and region != "us-east-1":
                self.client.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": region})
            else:
                self.client.create_bucket(Bucket=self.bucket)
        except _BOTO_FAILURES as error:
            raise StorageError(f"cannot create the bucket: {_describe(error)}") from error
        return True

    # --- helpers ----------------------------------------------------------------------------

    def _listing(self, prefix: str) -> Iterator[StoredObject]:
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :]
                    if _SAFE_KEY.match(name):
                        yield StoredObject(key=name, size=item["Size"], modified_at=item["LastModified"])
        except _BOTO_FAILURES as error:
            raise StorageError(f"listing failed: {_describe(error)}") from error

    def _last_activity(self, upload: dict) -> datetime:
        """When a multipart upload last received a part: a slow upload still sending parts
        is in progress, however long ago it started."""
        latest = upload["Initiated"]
        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
        for page in pages:
            for part in page.get("Parts", []):
                latest = max(latest, part["LastModified"])
        return latest

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

    def abort(self) -> None:
        """Leave nothing behind; a failure here leaves a leftover for `storage check --repair`."""
        self.buffer = bytearray()
        try:
            if self.upload_id is not None:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            self.client.delete_object(Bucket=self.bucket, Key=self.key)
        except _BOTO_FAILURES:
            pass

    def _send_part(self, data: bytes) -> None:
        if self.upload_id is None:
            reply = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
            self.upload_id = _required(reply, "UploadId", "staging")
        number = len(self.parts) + 1
        reply = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
        )
        self.parts.append({"PartNumber": number, "ETag": _required(reply, "ETag", "staging")})


def make_client(
    endpoint_url: str | None = None,
    region_name: str | None = None,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    addressing_style: str = "auto",
) -> Any:
    """An S3 client with bounded retries and timeouts; credentials fall back to boto3's chain."""
    config = BotoConfig(
        signature_version="s3v4",
        s3={"addressing_style": addressing_style},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        # Older S3-compatible stores reject the newer default checksum headers; integrity is
        # already covered by the SHA-256 Depot computes and `storage check` re-verifies.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=32,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region_name,
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        config=config,
    )
