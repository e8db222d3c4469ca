"""Resumable uploads' bytes on S3: a multipart upload of whole parts, plus "segment" objects
for the bytes not yet in a whole part.

S3 refuses parts under 5 MiB (except the last) and cannot append to an object, yet a tus
PATCH may carry any number of bytes, and the next one may reach another replica, or come
after the worker writing the last one was killed. So a partial is:

- a multipart upload under the staging key, whose parts all have the partial's part size,
  part n holding bytes [(n-1) * size, n * size): part numbers follow from offsets, so a part
  written past the durable offset by an interrupted request is simply sent again;
- after each part, `<staging key>.part-<n>` records the ETag of the upload of part n that
  counts (S3 replaces a part sent again; SeaweedFS keeps both and lists both);
- segments `<staging key>.seg-<start>`, each the bytes [start, start + its length) of a
  part not yet sent whole. sync() puts one segment with the bytes written since the last
  sync (never rewriting older ones: a slow client's syncs, every 2 s, cost only its new
  bytes), and the durable offset is where they end.

open_partial(offset) reads the current part's bytes by following segments from the part's
start (each ends where the next starts) up to `offset`; a segment that a killed request put
past the durable offset is off that path (its start is at or past the offset, and any
later writer puts its own under the name of each start on its path). When the path has
several segments it puts them back as one, and removes those below the offset that are no
longer on it (older parts', the merged ones): opening reads a few objects, not one per sync.
S3 cannot read back the parts of an unfinished upload, so a part's segments stay until an
opening finds the part whole below the durable offset, or the partial is sealed.

The part size travels in the partial's id, so every replica numbers parts alike even while
their S3_PART_SIZE_BYTES differ (a configuration being rolled out).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from botocore.exceptions import ClientError

from app.storage.base import PARTIAL_PREFIX, ObjectMissing, StorageError
from app.storage.s3_client import BOTO_FAILURES, describe, is_not_found, required

_PARTIAL_ID = re.compile(rf"^{PARTIAL_PREFIX}[0-9a-f]{{32}}-([1-9][0-9]{{6,9}})$")
SEGMENT_MARK = ".seg-"
PART_MARK = ".part-"


def new_partial_id(part_size: int) -> str:
    return f"{PARTIAL_PREFIX}{secrets.token_hex(16)}-{part_size}"


def part_size_of(partial_id: str) -> int:
    """The part size a partial was begun with (ValueError if the id is not one of ours)."""
    found = _PARTIAL_ID.match(partial_id)
    if not found:
        raise ValueError(f"not a partial id: {partial_id!r}")
    return int(found.group(1))


def segment_key(key: str, start: int) -> str:
    return f"{key}{SEGMENT_MARK}{start:015d}"


def part_record_key(key: str, number: int) -> str:
    return f"{key}{PART_MARK}{number:05d}"


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

    def parts(self, upload_id: str) -> dict[int, list[dict]]:
        """The parts sent so far, by number (ObjectMissing if the upload is gone). A number
        may have several: SeaweedFS keeps every upload of a part number and lists them all."""
        parts: dict[int, list[dict]] = {}
        try:
            pages = self.client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=self.key, UploadId=upload_id
            )
            for page in pages:
                for part in page.get("Parts", []):
                    parts.setdefault(part["PartNumber"], []).append(part)
        except ClientError as error:
            if is_not_found(error):
                raise ObjectMissing("the upload's staged bytes are gone") from error
            raise
        return parts

    def full_parts(self, upload_id: str, count: int) -> list[dict]:
        """Parts 1..count, each checked to be whole, as CompleteMultipartUpload names them;
        ObjectMissing if one is not there. A part number sent more than once (an interrupted
        request sent it, then the next one) is the upload whose ETag its record names."""
        chosen = []
        for number, found in sorted(self.parts(upload_id).items()):
            if number > count:
                break
            if len(found) > 1:
                recorded = self._read_record(number)
                found = [part for part in found if part["ETag"] == recorded]
            if len(found) != 1 or found[0].get("Size") != self.part_size:
                raise ObjectMissing(f"part {number} of the staged bytes is missing")
            chosen.append({"PartNumber": number, "ETag": found[0]["ETag"]})
        if len(chosen) != count:
            raise ObjectMissing("a part of the staged bytes is missing")
        return chosen

    def record_part(self, number: int, etag: str) -> None:
        """Note which upload of part `number` counts: the last one sent, by the request that
        will go on from it (an interrupted request's, if any, came before)."""
        self.client.put_object(Bucket=self.bucket, Key=part_record_key(self.key, number), Body=etag.encode())

    def _read_record(self, number: int) -> str | None:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=part_record_key(self.key, number))
        except ClientError as error:
            if is_not_found(error):
                return None
            raise
        return reply["Body"].read().decode()

    def extras(self) -> list[str]:
        """The keys of every object beside the multipart upload: segments, part records."""
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key + "."):
            found += [item["Key"] for item in page.get("Contents", [])]
        return found

    def segments(self) -> dict[int, tuple[str, int]]:
        """Every segment: its start -> (key, size)."""
        prefix = self.key + SEGMENT_MARK
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                start = item["Key"][len(prefix) :]
                if start.isdigit():
                    found[int(start)] = (item["Key"], item["Size"])
        return found

    def restore(self, offset: int) -> tuple[bytes, list[int], dict[int, tuple[str, int]]]:
        """The bytes from the start of the part holding `offset` up to it, read by following
        segments from the part's start; the starts of the segments followed, and every
        segment found. ObjectMissing if the path breaks off before `offset`."""
        segments = self.segments()
        position = offset - offset % self.part_size
        data, path = bytearray(), []
        while position < offset:
            if position not in segments:
                raise ObjectMissing(f"the staged bytes from {position} are gone")
            key, size = segments[position]
            wanted = min(size, offset - position)
            data += self._read(key, wanted)
            path.append(position)
            position += wanted
        return bytes(data), path, segments

    def put_segment(self, start: int, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=segment_key(self.key, start), Body=data)

    def _read(self, key: str, length: int, start: int = 0) -> bytes:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}")
            data = reply["Body"].read()
        except ClientError as error:
            if is_not_found(error) or error.response.get("Error", {}).get("Code") == "InvalidRange":
                raise ObjectMissing("some of the staged bytes are gone") from error
            raise
        except KeyError:
            raise StorageError("opening failed: the store's reply has no Body") from None
        if len(data) < length:
            raise ObjectMissing(f"{len(data)} staged bytes found where {length} were expected")
        return data[:length]

    def sealed_size(self) -> int | None:
        """The size of the object a sealed partial became, or None if it is not sealed."""
        try:
            reply = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError as error:
            if is_not_found(error):
                return None
            raise
        return required(reply, "ContentLength", "opening")

    def reopen_sealed(self, offset: int, upload_id: str | None) -> str:
        """A partial sealed whose finish then failed (the database, a lease lost): its client
        sends the last bytes again, so the object becomes a partial again. Its whole parts are
        copied, server-side, into a multipart upload (the one an interrupted reopening began,
        if any); the bytes of its last part become a segment; then the object goes."""
        size = self.sealed_size()
        if size is None or size < offset:
            raise ObjectMissing("the upload's staged bytes are gone")
        if upload_id is None:
            reply = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
            upload_id = required(reply, "UploadId", "opening")
        full, rest = divmod(offset, self.part_size)
        for number in range(1, full + 1):
            start = (number - 1) * self.part_size
            reply = self.client.upload_part_copy(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": self.key},
                CopySourceRange=f"bytes={start}-{start + self.part_size - 1}",
            )
            self.record_part(number, required(required(reply, "CopyPartResult", "opening"), "ETag", "opening"))
        if rest:
            self.put_segment(offset - rest, self._read(self.key, rest, start=offset - rest))
        self.client.delete_object(Bucket=self.bucket, Key=self.key)
        return upload_id

    def send_part(self, upload_id: str, number: int, data: bytes) -> str:
        reply = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=data
        )
        try:
            etag = reply["ETag"]
        except KeyError:
            raise StorageError("staging failed: the store's reply has no ETag") from None
        self.record_part(number, etag)
        return etag


class S3PartialWriter:
    """Appends to a partial: whole parts are sent as soon as they fill (so it holds about one
    part in memory), and each sync() puts what arrived since the last one as a segment."""

    def __init__(self, partial: S3Partial, upload_id: str, offset: int, pending: bytes) -> None:
        self._partial, self._upload_id = partial, upload_id
        self.offset = offset
        self._buffer = bytearray(pending)  # the current part's bytes, from its first
        self._number = (offset - len(pending)) // partial.part_size + 1  # the current part
        self._synced = offset  # durable up to here

    def write(self, chunk: bytes) -> None:
        size = self._partial.part_size
        self._buffer += chunk
        self.offset += len(chunk)
        try:
            while len(self._buffer) >= size:
                self._partial.send_part(self._upload_id, self._number, bytes(self._buffer[:size]))
                del self._buffer[:size]
                self._number += 1
        except BOTO_FAILURES as error:
            raise StorageError(f"staging failed: {describe(error)}") from error

    def sync(self) -> int:
        part_start = (self._number - 1) * self._partial.part_size
        start = max(self._synced, part_start)  # earlier bytes are in a sent part or a segment
        if self.offset > start:
            try:
                self._partial.put_segment(start, bytes(self._buffer[start - part_start :]))
            except BOTO_FAILURES as error:
                raise StorageError(f"staging failed: {describe(error)}") from error
        self._synced = self.offset
        return self.offset

    def close(self) -> None:
        self._buffer = bytearray()
