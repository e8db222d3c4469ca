"""Resumable uploads' bytes on S3: a multipart upload, plus "tail" objects for the bytes not
yet in a full part.

S3 refuses parts under 5 MiB (except the last) and cannot append to an object, yet a tus
PATCH may carry any number of bytes, and the next one may reach another replica, or come
after the worker writing the last one was killed. So a partial is:

- a multipart upload under the staging key, whose parts all have the partial's part size,
  part n holding bytes [(n-1) * size, n * size): part numbers follow from offsets, so
  parts written past the durable offset by an interrupted request are simply sent again;
- one tail object per part number, `<staging key>.tail-<n>`, holding the first bytes of part
  n while it is not full. sync() rewrites the current part's tail; the durable offset is
  then (full parts * size + tail length).

A tail is never shortened below a durable offset: every writer starts from the durable
offset its row records, so its tail of that part only grows, until the part is full and sent
(S3 cannot read back the parts of an unfinished upload, so the tail stays, and is what the
next writer reads if this one is killed before its new offset is recorded). Tails of parts
wholly below the durable offset are removed when a writer opens; the rest when sealed.

The part size travels in the partial's id, so every replica numbers parts alike even while
their S3_PART_SIZE_BYTES differ (a configuration being rolled out).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from botocore.exceptions import ClientError

from app.storage.base import PARTIAL_PREFIX, ObjectMissing, StorageError
from app.storage.s3_client import BOTO_FAILURES, describe, is_not_found

_PARTIAL_ID = re.compile(rf"^{PARTIAL_PREFIX}[0-9a-f]{{32}}-([1-9][0-9]{{6,9}})$")
TAIL_MARK = ".tail-"


def new_partial_id(part_size: int) -> str:
    return f"{PARTIAL_PREFIX}{secrets.token_hex(16)}-{part_size}"


def part_size_of(partial_id: str) -> int:
    """The part size a partial was begun with (ValueError if the id is not one of ours)."""
    found = _PARTIAL_ID.match(partial_id)
    if not found:
        raise ValueError(f"not a partial id: {partial_id!r}")
    return int(found.group(1))


def tail_key(key: str, number: int) -> str:
    return f"{key}{TAIL_MARK}{number:05d}"


class S3Partial:
    """The S3 objects of one partial (bucket, staging key, part size) and what can be asked
    of them. botocore errors pass through; S3FileStore turns them into StorageError."""

    def __init__(self, client: Any, bucket: str, key: str, part_size: int) -> None:
        self.client, self.bucket, self.key, self.part_size = client, bucket, key, part_size

    def upload_id(self) -> str | None:
        """The partial's multipart upload (any replica finds it by its key), or None."""
        found = []
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.key):
            found += [u["UploadId"] for u in page.get("Uploads", []) if u["Key"] == self.key]
        if len(found) > 1:
            raise StorageError("opening the upload failed: its staging key has several multipart uploads")
        return found[0] if found else None

    def parts(self, upload_id: str) -> dict[int, dict]:
        """The parts sent so far, by number (ObjectMissing if the upload is gone)."""
        parts: dict[int, dict] = {}
        try:
            pages = self.client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=self.key, UploadId=upload_id
            )
            for page in pages:
                parts.update({part["PartNumber"]: part for part in page.get("Parts", [])})
        except ClientError as error:
            if is_not_found(error):
                raise ObjectMissing("the upload's staged bytes are gone") from error
            raise
        return parts

    def full_parts(self, upload_id: str, count: int) -> list[dict]:
        """Parts 1..count, each checked to be whole; ObjectMissing if one is not."""
        parts = self.parts(upload_id)
        for number in range(1, count + 1):
            if parts.get(number, {}).get("Size") != self.part_size:
                raise ObjectMissing(f"part {number} of the staged bytes is missing")
        return [{"PartNumber": n, "ETag": parts[n]["ETag"]} for n in range(1, count + 1)]

    def read_tail(self, number: int, length: int) -> bytes:
        """The first `length` bytes of part `number`, from its tail; ObjectMissing if fewer."""
        try:
            reply = self.client.get_object(
                Bucket=self.bucket, Key=tail_key(self.key, number), Range=f"bytes=0-{length - 1}"
            )
            data = reply["Body"].read()
        except ClientError as error:
            if is_not_found(error) or error.response.get("Error", {}).get("Code") == "InvalidRange":
                raise ObjectMissing("the staged bytes' tail is gone") from error
            raise
        if len(data) < length:
            raise ObjectMissing(f"the staged bytes' tail ends at {len(data)}, before {length}")
        return data[:length]

    def put_tail(self, number: int, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=tail_key(self.key, number), Body=data)

    def send_part(self, upload_id: str, number: int, data: bytes) -> str:
        reply = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=data
        )
        try:
            return reply["ETag"]
        except KeyError:
            raise StorageError("staging failed: the store's reply has no ETag") from None

    def tails(self) -> list[tuple[str, int]]:
        """(key, part number) of every tail object."""
        prefix = self.key + TAIL_MARK
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                number = item["Key"][len(prefix) :]
                if number.isdigit():
                    found.append((item["Key"], int(number)))
        return found


class S3PartialWriter:
    """Appends to a partial: full parts are sent as soon as they fill (so it holds about one
    part in memory), the rest goes to the part's tail at each sync()."""

    def __init__(self, partial: S3Partial, upload_id: str, offset: int, pending: bytes) -> None:
        self._partial, self._upload_id = partial, upload_id
        self.offset = offset
        self._buffer = bytearray(pending)  # the current part's bytes, from its first
        self._number = (offset - len(pending)) // partial.part_size + 1  # the current part
        self._tail_stale = False  # bytes written since the tail was last put

    def write(self, chunk: bytes) -> None:
        size = self._partial.part_size
        self._buffer += chunk
        self.offset += len(chunk)
        self._tail_stale = True
        try:
            while len(self._buffer) >= size:
                self._partial.send_part(self._upload_id, self._number, bytes(self._buffer[:size]))
                del self._buffer[:size]
                self._number += 1
        except BOTO_FAILURES as error:
            raise StorageError(f"staging failed: {describe(error)}") from error

    def sync(self) -> int:
        if self._tail_stale and self._buffer:
            try:
                self._partial.put_tail(self._number, bytes(self._buffer))
            except BOTO_FAILURES as error:
                raise StorageError(f"staging failed: {describe(error)}") from error
        self._tail_stale = False
        return self.offset

    def close(self) -> None:
        self._buffer = bytearray()
