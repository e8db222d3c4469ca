"""ResumableUploadService: tus uploads that end as ordinary uploads, all or nothing.

The rules of `POST /uploads` hold from the first request: the uploader role, the file's
name and declared type at creation, its size against the limit and the quota at creation
(the length is reserved: models/resumable_upload.reserved_bytes), its leading bytes as soon
as they have arrived. Only the creator or an admin sees an upload; anyone else gets 404.

Bytes arrive in any number of PATCH requests, on any replica. A request writes only while it
holds the upload's lease (a second one gets 423), appends at the durable offset, and makes
its progress durable every CHECKPOINT_BYTES and every RENEW_SECONDS (the lease renewed, the
store's sync, then the offset in the row), so a client cut off, or a worker killed, resumes
from the last checkpoint. The lease is renewed before each sync and before the first write
after a pause of RENEW_SECONDS, so a request that stalled past its lease writes nothing more.
(Left open: one store write that itself takes longer than the lease.)
A PATCH carrying `Upload-Checksum` is all or nothing instead: its bytes count
only once its checksum matched.

When the last byte has arrived the staged bytes are sealed (hashed), then promoted and the
`uploads` row added in one two-phase transaction, through UploadService.commit_staged, with
the owner's quota checked again; the resumable row then names the upload. The offset reaches
the length only in that transaction: if it fails, the client sends the rest again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Config
from injector import inject
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import scoped_session
from transaction import ThreadTransactionManager

from app import metrics
from app.exceptions import (
    BodyTimeout,
    ChecksumMismatch,
    Conflict,
    Gone,
    Invalid,
    Locked,
    Malformed,
    NotFound,
    TooLarge,
    Unavailable,
)
from app.models import Role, Upload
from app.models.base import utcnow
from app.models.resumable_upload import ResumableUpload
from app.services.file_rules import check_leading_bytes, content_type_for_name, sanitize_filename
from app.services.principal import Principal
from app.services.upload_slots import UploadSlots
from app.services.uploads import UploadService
from app.storage.base import HEAD_BYTES, FileStore, StorageError
from app.transactions import within_transaction

log = logging.getLogger(__name__)

# How long a request's claim on an upload lasts without renewal: a worker killed mid-request
# blocks its upload this long at most.
LEASE_SECONDS = 10.0
# Renewed (and progress made durable) this often while a body arrives.
RENEW_SECONDS = 2.0
CHECKPOINT_BYTES = 16 * 1024 * 1024
# What tus clients send (tus-js-client and tusd: sha1; others md5, sha256). Integrity checks
# against transmission errors, not security.
CHECKSUM_ALGORITHMS = {
    "md5": lambda: hashlib.md5(usedforsecurity=False),
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "sha256": hashlib.sha256,
}


@dataclass(frozen=True)
class ResumableRequest:
    """What a creation request asks for, its shape already checked."""

    length: int
    filename: str
    content_type: str | None
    description: str | None
    visibility: str
    tags: list[str]
    sha256: str | None
    metadata_header: str


@dataclass(frozen=True)
class ResumableStatus:
    id: str
    offset: int
    length: int
    expires_at: datetime
    upload: Upload | None  # None until finished (or once the upload was deleted)


@dataclass(frozen=True)
class Checksum:
    """`Upload-Checksum`: the algorithm and the digest of one PATCH's body."""

    algorithm: str
    digest: bytes

    @classmethod
    def parse(cls, header: str) -> Checksum:
        algorithm, _, value = header.strip().partition(" ")
        if algorithm.lower() not in CHECKSUM_ALGORITHMS:
            raise Invalid(
                f"Upload-Checksum algorithm '{algorithm}' is not supported.",
                fields={"Upload-Checksum": [f"Use one of: {', '.join(CHECKSUM_ALGORITHMS)}."]},
            )
        try:
            digest = base64.b64decode(value.strip(), validate=True)
        except binascii.Error:
            raise Invalid("Upload-Checksum is not base64.", fields={"Upload-Checksum": ["Bad value."]}) from None
        return cls(algorithm.lower(), digest)


class ResumableUploadService:
    """Creates, continues, reports, finishes, ends and expires resumable uploads."""

    @inject
    def __init__(
        self,
        tm: ThreadTransactionManager,
        session: scoped_session,
        store: FileStore,
        config: Config,
        slots: UploadSlots,
        uploads: UploadService,
    ) -> None:
        # Size, type and quota rules are UploadService's (uploads.max_upload_bytes, ...).
        self.tm = tm
        self.session = session
        self.store = store
        self.slots = slots
        self.uploads = uploads
        self.expiry = timedelta(seconds=int(config["RESUMABLE_UPLOAD_EXPIRY_SECONDS"]))

    # --- create -----------------------------------------------------------------------------

    def create(self, principal: Principal, wanted: ResumableRequest) -> ResumableUpload:
        """A new upload of `wanted.length` bytes, checked as `POST /uploads` checks a file."""
        principal.require(Role.UPLOADER)
        filename = sanitize_filename(wanted.filename)
        content_type = content_type_for_name(filename, wanted.content_type, self.uploads.allowed_extensions)
        if wanted.length == 0:
            raise Invalid("The file is empty.", fields={"Upload-Length": ["Must be at least 1."]})
        if wanted.length > self.uploads.max_upload_bytes:
            raise TooLarge(f"Files may be at most {self.uploads.max_upload_bytes} bytes.")
        partial_id = self.store.begin_partial()
        try:
            with self.tm:
                now = utcnow()
                self.uploads.lock_owner(principal.user_id)
                self.uploads.check_quota(principal.user_id, wanted.length)  # reservations counted
                row = ResumableUpload(
                    id=secrets.token_hex(16),
                    owner_id=principal.user_id,
                    length=wanted.length,
                    offset=0,
                    partial_id=partial_id,
                    filename=filename,
                    content_type=content_type,
                    visibility=wanted.visibility,
                    description=wanted.description,
                    tags=",".join(dict.fromkeys(wanted.tags)),
                    expected_sha256=wanted.sha256,
                    head=b"",
                    metadata_header=wanted.metadata_header,
                    created_at=now,
                    expires_at=now + self.expiry,
                )
                self.session.add(row)
                self.session.flush()
        except BaseException:
            self._discard_quietly(partial_id)
            raise
        metrics.resumable_upload_created()
        return row

    # --- read -------------------------------------------------------------------------------

    def status(self, principal: Principal, upload_id: str) -> ResumableUpload:
        """The upload as it stands (HEAD); 410 once it has expired."""
        with self.tm:
            return self._current(principal, upload_id)

    def describe(self, principal: Principal, upload_id: str) -> ResumableStatus:
        """The upload's progress, with the upload it became once finished."""
        with self.tm:
            row = self._current(principal, upload_id)
            upload = self.session.get(Upload, row.upload_id) if row.upload_id else None
        return ResumableStatus(row.id, row.offset, row.length, row.expires_at, upload)

    # --- append -----------------------------------------------------------------------------

    def append(
        self,
        principal: Principal,
        upload_id: str,
        offset: int,
        chunks: Iterable[bytes],
        checksum: Checksum | None = None,
        client_address: str | None = None,
    ) -> ResumableUpload:
        """Write a PATCH body at `offset`; the upload as it then stands (finished, if that was
        its last byte)."""
        principal.require(Role.UPLOADER)
        with self.tm:
            row = self._current(principal, upload_id, lock=True)
            if row.finished:
                if offset != row.length:
                    raise Conflict(f"The upload is complete; its offset is {row.length}, not {offset}.")
                return row
            now = utcnow()
            # Locked first: the offset may still move while another request writes.
            if row.lock_token is not None and row.locked_until is not None and row.locked_until > now:
                raise Locked("Another request is writing this upload; try again shortly.")
            if offset != row.offset:
                raise Conflict(f"The upload's offset is {row.offset}, not {offset}.")
            token = secrets.token_hex(16)
            row.lock_token, row.locked_until = token, now + timedelta(seconds=LEASE_SECONDS)
            lease = _Lease(row.id, token, row.partial_id, row.length, row.offset, bytes(row.head))
            filename, content_type = row.filename, row.content_type
        try:
            with self.slots.hold(row.owner_id, client_address):
                position = self._receive(lease, chunks, checksum, filename, content_type)
            if position == lease.length:
                return self._finish(lease)
            return self._checkpointed(lease, position, head=lease.head, release=True)
        finally:
            if not lease.released:
                self._release_quietly(lease)

    def _receive(
        self, lease: _Lease, chunks: Iterable[bytes], checksum: Checksum | None, filename: str, content_type: str
    ) -> int:
        """Write the body; the offset it reached, made durable (unless a checksum failed)."""
        digest = CHECKSUM_ALGORITHMS[checksum.algorithm]() if checksum else None
        try:
            writer = self.store.open_partial(lease.partial_id, lease.offset)
        except StorageError as error:
            raise Unavailable("The file store failed; send this part again.") from error
        position = durable = lease.offset
        head = bytearray(lease.head)
        renewed = time.monotonic()
        try:
            try:
                for chunk in chunks:
                    if position + len(chunk) > lease.length:
                        raise TooLarge(f"The body goes past the upload's length of {lease.length} bytes.")
                    if time.monotonic() - renewed >= RENEW_SECONDS or (
                        digest is None and position - durable >= CHECKPOINT_BYTES
                    ):
                        self._renew(lease)  # still ours (a stall may have outlasted it), before any store work
                        if digest is None:
                            durable = writer.sync()
                        self._checkpointed(lease, durable, head=bytes(head))
                        renewed = time.monotonic()
                    writer.write(chunk)
                    metrics.resumable_bytes_received(len(chunk))
                    position += len(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    if len(head) < HEAD_BYTES:
                        head += chunk[: HEAD_BYTES - len(head)]
                        if len(head) >= HEAD_BYTES or position == lease.length:
                            self._check_head(lease, filename, content_type, bytes(head))
                self._renew(lease)
                position = writer.sync()
            except (BodyTimeout, Malformed, OSError):
                # The client stopped or vanished: what arrived stays, unless it must be checked.
                if digest is None:
                    self._renew(lease)
                    self._checkpointed(lease, writer.sync(), head=bytes(head))
                raise
        except StorageError as error:
            raise Unavailable("The file store failed; send this part again from the offset HEAD gives.") from error
        finally:
            writer.close()
        if digest is not None and digest.digest() != checksum.digest:
            raise ChecksumMismatch(f"The body's {checksum.algorithm} does not match Upload-Checksum; it was not kept.")
        lease.head = bytes(head)
        return position

    def _check_head(self, lease: _Lease, filename: str, content_type: str, head: bytes) -> None:
        """The file's leading bytes against its type; a file that fails can never finish."""
        try:
            check_leading_bytes(filename, content_type, head)
        except Exception:
            self._remove(lease.upload_id)
            lease.released = True
            raise

    def _finish(self, lease: _Lease) -> ResumableUpload:
        """Seal the bytes and commit the upload: promoted file, `uploads` row and this row's
        link to it, in one transaction."""
        try:
            staged = self.store.seal_partial(lease.partial_id, lease.length, lease.head)
        except StorageError as error:
            raise Unavailable("The file store failed; send the last part again.") from error
        with self.tm:
            row = self.session.get(ResumableUpload, lease.upload_id, with_for_update=True)
            if row is None or row.lock_token != lease.token:
                raise Locked("This upload was taken over by another request.")
            if row.expected_sha256 and row.expected_sha256 != staged.sha256:
                mismatch = True
            else:
                mismatch = False
                upload = self.uploads.commit_staged(
                    row.owner_id,
                    staged,
                    filename=row.filename,
                    content_type=row.content_type,
                    visibility=row.visibility,
                    description=row.description,
                    tags=row.tag_list,
                    excluding_reservation=row.id,
                )
                row.upload_id, row.offset = upload.id, row.length
                row.lock_token = row.locked_until = None
                row.head = b""
                self.session.flush()
        if mismatch:
            self._remove(lease.upload_id)
            lease.released = True
            raise Invalid(
                "The file's SHA-256 does not match the sha256 sent with it; the upload was removed.",
                fields={"sha256": ["Digest mismatch."]},
            )
        lease.released = True
        metrics.upload_committed(row.length)
        metrics.resumable_upload_finished()
        return row

    def _checkpointed(self, lease: _Lease, offset: int, head: bytes | None = None, release: bool = False):
        """Record `offset` (durable) and renew the lease, or release it; Locked if it was lost."""
        values: dict = {"offset": offset}
        if head is not None:
            values["head"] = head
        if release:
            values.update(lock_token=None, locked_until=None)
        else:
            values["locked_until"] = utcnow() + timedelta(seconds=LEASE_SECONDS)
        with self.tm:
            changed = self.session.execute(
                update(ResumableUpload)
                .where(ResumableUpload.id == lease.upload_id, ResumableUpload.lock_token == lease.token)
                .values(**values)
            ).rowcount
            if not changed:
                raise Locked("This upload was taken over by another request.")
            if release:
                lease.released = True
                return self.session.get(ResumableUpload, lease.upload_id)
        return None

    def _renew(self, lease: _Lease) -> None:
        """Extend the lease before touching the store: Locked if another request took the
        upload over meanwhile (this one stalled longer than LEASE_SECONDS), so a writer that
        lost its lease never writes, even to the staged bytes past the durable offset, which
        the new holder may be writing too (on S3, objects at the same keys)."""
        with self.tm:
            changed = self.session.execute(
                update(ResumableUpload)
                .where(ResumableUpload.id == lease.upload_id, ResumableUpload.lock_token == lease.token)
                .values(locked_until=utcnow() + timedelta(seconds=LEASE_SECONDS))
            ).rowcount
        if not changed:
            raise Locked("This upload was taken over by another request while this one stalled.")

    def _release_quietly(self, lease: _Lease) -> None:
        try:
            with self.tm:
                self.session.execute(
                    update(ResumableUpload)
                    .where(ResumableUpload.id == lease.upload_id, ResumableUpload.lock_token == lease.token)
                    .values(lock_token=None, locked_until=None)
                )
        except Exception:  # noqa: BLE001 (the lease runs out by itself)
            log.warning("resumable upload %s: could not release the lease; it expires by itself", lease.upload_id)
        lease.released = True

    # --- end --------------------------------------------------------------------------------

    def terminate(self, principal: Principal, upload_id: str) -> None:
        """End an upload (tus termination): its row and its bytes go; a finished upload's file stays."""
        with self.tm:
            row = self._current(principal, upload_id, lock=True)
            if not row.finished and row.lock_token and row.locked_until and row.locked_until > utcnow():
                raise Locked("A request is writing this upload; try again when it has ended.")
        self._remove(upload_id)

    def expired_ids(self) -> list[str]:
        """The uploads past their expiry, finished or not."""
        with self.tm:
            return list(self.session.scalars(select(ResumableUpload.id).where(ResumableUpload.expires_at <= utcnow())))

    def remove_expired(self, upload_id: str) -> None:
        """Remove an expired upload, its staged bytes included (a finished one's upload stays)."""
        self._remove(upload_id)

    def in_progress(self) -> tuple[int, int]:
        """How many uploads are unfinished and unexpired, and their durable bytes so far."""
        with self.tm:
            count, received = self.session.execute(
                select(func.count(), func.coalesce(func.sum(ResumableUpload.offset), 0)).where(
                    ResumableUpload.upload_id.is_(None), ResumableUpload.expires_at > utcnow()
                )
            ).one()
        return int(count), int(received)

    def unfinished_partials(self) -> set[str]:
        """The staging ids of unfinished, unexpired uploads (for `storage check`)."""
        with self.tm:
            return set(
                self.session.scalars(
                    select(ResumableUpload.partial_id).where(
                        ResumableUpload.upload_id.is_(None), ResumableUpload.expires_at > utcnow()
                    )
                )
            )

    # --- helpers ----------------------------------------------------------------------------

    @within_transaction
    def _current(self, principal: Principal, upload_id: str, lock: bool = False) -> ResumableUpload:
        row = self.session.get(ResumableUpload, upload_id, with_for_update=lock) if _valid_id(upload_id) else None
        if row is None or not (principal.is_admin or row.owner_id == principal.user_id):
            raise NotFound("No such upload.")
        if row.expires_at <= utcnow():
            raise Gone("This upload has expired and its bytes were removed.")
        return row

    def _remove(self, upload_id: str) -> None:
        """Delete the row, then its staged bytes (an unfinished one's)."""
        with self.tm:
            row = self.session.get(ResumableUpload, upload_id)
            if row is None:
                return
            partial_id = None if row.finished else row.partial_id
            self.session.execute(delete(ResumableUpload).where(ResumableUpload.id == upload_id))
        if partial_id:
            self._discard_quietly(partial_id)

    def _discard_quietly(self, partial_id: str) -> None:
        try:
            self.store.discard_staged(partial_id)
        except StorageError:
            log.warning("staged bytes %s could not be removed; `storage check --repair` removes them", partial_id)


class _Lease:
    """A request's claim on an upload while it writes, and what it knows of the upload."""

    def __init__(self, upload_id: str, token: str, partial_id: str, length: int, offset: int, head: bytes) -> None:
        self.upload_id, self.token = upload_id, token
        self.partial_id, self.length, self.offset, self.head = partial_id, length, offset, head
        self.released = False


def _valid_id(upload_id: str) -> bool:
    return len(upload_id) == 32 and all(c in "0123456789abcdef" for c in upload_id)
