"""UploadService: every rule about stored files, and every transaction that touches them.

Rules held here: who may upload (uploader or admin, checked before the body is read), size
and quota limits (before reading when Content-Length allows, while streaming, and again at
commit under a lock), how many uploads an account or an address may have in progress at
once (the slots of upload_slots.py, taken before the body is read), names and types,
integrity digests, who sees what (your own and public uploads; admins see all; anyone else
gets "not found"), and signed share links.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from flask import Config
from injector import inject
from sqlalchemy import func, literal, or_, select, tuple_
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import scoped_session
from transaction import ThreadTransactionManager

from app import metrics
from app.exceptions import (
    AuthenticationFailed,
    Forbidden,
    Invalid,
    NotFound,
    OutcomeUnknown,
    TooLarge,
    Unavailable,
)
from app.extensions import db
from app.models import Role, Upload, UploadTag, User
from app.models.base import ID_TYPE, UTCDateTime, new_id, utcnow
from app.models.resumable_upload import reserved_bytes
from app.services.file_rules import check_leading_bytes, content_type_for_name, sanitize_filename
from app.services.incoming import FilePart, IncomingUpload
from app.services.pagination import CursorPage, decode_cursor, encode_cursor
from app.services.principal import Principal
from app.services.share_links import LinkSigner
from app.services.upload_slots import UploadSlots
from app.storage.base import FileStore, ObjectMissing, SizeLimitExceeded, StagedFile, StorageError
from app.storage.transactional import TransactionalFiles
from app.transactions import within_transaction

_UNSET = object()
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadPolicy:
    """The limits that apply to the caller's next upload."""

    max_upload_bytes: int
    allowed_extensions: tuple[str, ...]
    quota_bytes: int | None
    used_bytes: int
    remaining_bytes: int | None

    @property
    def byte_limit(self) -> int:
        """The most bytes the next file may have."""
        if self.remaining_bytes is None:
            return self.max_upload_bytes
        return min(self.max_upload_bytes, self.remaining_bytes)

    def too_large(self) -> TooLarge:
        if self.remaining_bytes is not None and self.remaining_bytes < self.max_upload_bytes:
            return TooLarge(
                f"This upload would exceed your storage quota of {self.quota_bytes} bytes "
                f"({self.remaining_bytes} bytes remaining)."
            )
        return TooLarge(f"Files may be at most {self.max_upload_bytes} bytes.")


@dataclass(frozen=True)
class Download:
    """An upload ready to be sent: its metadata and how to read its bytes."""

    upload: Upload
    # The file, positioned at the given byte. Raises NotFound if a delete has removed it since
    # the row was read, Unavailable if the store fails.
    open: Callable[[int], BinaryIO]
    redirect_url: str | None = None  # where the client should fetch it instead (presigned)


@dataclass(frozen=True)
class ShareLink:
    token: str
    expires_at: datetime


def upload_key_committed(storage_key: str) -> bool:
    """Whether a committed upload row uses `storage_key`, asked on a connection of its own.

    The file store's data manager calls this while a transaction is aborting, to tell a
    failed database commit from one that went through before an error.
    """
    with db.engine.connect() as connection:
        return connection.execute(select(Upload.id).where(Upload.storage_key == storage_key)).first() is not None


class UploadService:
    """Stores, lists, changes, serves and deletes uploads."""

    @inject
    def __init__(
        self,
        tm: ThreadTransactionManager,
        session: scoped_session,
        store: FileStore,
        files: TransactionalFiles,
        config: Config,
        slots: UploadSlots,
    ) -> None:
        self.tm = tm
        self.slots = slots
        self.session = session
        self.store = store
        self.files = files
        self.max_upload_bytes = int(config["MAX_UPLOAD_BYTES"])
        self.allowed_extensions = tuple(config["ALLOWED_EXTENSIONS"])
        self.quota_bytes = config["USER_QUOTA_BYTES"]
        self.link_ttl = int(config["LINK_TTL_SECONDS"])
        self.link_max_ttl = int(config["LINK_MAX_TTL_SECONDS"])
        self.links = LinkSigner(config["SECRET_KEY"])
        self.presign_ttl = int(config["PRESIGNED_URL_TTL_SECONDS"]) if config["DOWNLOAD_REDIRECT"] == "presigned" else 0

    # --- limits -----------------------------------------------------------------------------

    def policy(self, principal: Principal) -> UploadPolicy:
        with self.tm:
            used = self.used_bytes(principal.user_id)
        remaining = None if self.quota_bytes is None else max(self.quota_bytes - used, 0)
        return UploadPolicy(self.max_upload_bytes, self.allowed_extensions, self.quota_bytes, used, remaining)

    # --- create -----------------------------------------------------------------------------

    def create(self, principal: Principal, incoming: IncomingUpload) -> Upload:
        """Store one file and its metadata in one transaction, or nothing at all."""
        principal.require(Role.UPLOADER)  # before a single body byte is read
        policy = self.policy(principal)
        if (
            incoming.declared_length is not None
            and incoming.declared_length > policy.byte_limit + incoming.envelope_allowance
        ):
            raise policy.too_large()

        # The caps on uploads in progress (429 when full), before a body byte is read; the
        # slot is held until the upload has ended, whichever way (upload_slots.py).
        with self.slots.hold(principal.user_id, incoming.client_address):
            committing: str | None = None  # the new row's id, once only the commit is left
            try:
                with self.tm:
                    upload = self._store(principal, incoming, policy)
                    committing = upload.id
            except (OperationalError, InterfaceError):
                if committing is None:  # failed before the commit: nothing was stored
                    raise
                # The connection failed during the commit, which may have gone through before the
                # error (lost while reading its reply): answer what the database now says.
                upload = self._committed_after_all(committing)
                if upload is None:
                    raise
        metrics.upload_committed(upload.size)
        return upload

    @within_transaction
    def _store(self, principal: Principal, incoming: IncomingUpload, policy: UploadPolicy) -> Upload:
        """Stage the file and add its row in the current transaction; only the commit is left."""
        files = self.files.current()
        expected_type: dict[str, str] = {}

        def store_file(part: FilePart) -> StagedFile:
            # Name and declared type are checked before the bytes are read.
            name = sanitize_filename(part.filename)
            expected_type[name] = content_type_for_name(name, part.content_type, self.allowed_extensions)
            return files.stage(part.chunks, policy.byte_limit)

        try:
            received = incoming.receive(store_file)
        except SizeLimitExceeded:
            raise policy.too_large() from None
        except StorageError as error:
            raise Unavailable("The file store failed; nothing was stored.") from error
        staged = received.staged
        filename = sanitize_filename(received.filename)
        content_type = expected_type[filename]
        if staged.size == 0:
            raise Invalid("The file is empty.", fields={"file": ["The file is empty."]})
        check_leading_bytes(filename, content_type, staged.head)
        if received.expected_sha256 and received.expected_sha256 != staged.sha256:
            raise Invalid(
                "The file's SHA-256 does not match the digest sent with it; nothing was stored.",
                fields={"sha256": ["Digest mismatch."]},
            )
        return self.commit_staged(
            principal.user_id,
            staged,
            filename=filename,
            content_type=content_type,
            visibility=received.visibility,
            description=received.description,
            tags=received.tags,
        )

    @within_transaction
    def commit_staged(
        self,
        owner_id: str,
        staged: StagedFile,
        *,
        filename: str,
        content_type: str,
        visibility: str,
        description: str | None,
        tags: list[str],
        excluding_reservation: str | None = None,
    ) -> Upload:
        """Promote checked, staged bytes and add their row in the current transaction; only
        the commit is left. Also how a finished resumable upload becomes an upload, its own
        reservation of the quota (`excluding_reservation`) then left out of the count."""
        files = self.files.current()
        upload_id = new_id()
        storage_key = upload_id.replace("-", "")
        # Promoted before the owner's row is locked: a promotion can be slow (an S3 copy of a
        # large file), and the same account's other uploads wait for that lock, each round
        # trip bounded by DATABASE_TIMEOUT_SECONDS. Any failure from here on removes it again.
        try:
            files.promote_now(staged, storage_key)
        except StorageError as error:
            raise Unavailable("The file store failed; nothing was stored.") from error
        self.lock_owner(owner_id)
        self.check_quota(owner_id, staged.size, excluding_reservation)
        upload = Upload(
            id=upload_id,
            owner_id=owner_id,
            storage_key=storage_key,
            filename=filename,
            content_type=content_type,
            size=staged.size,
            sha256=staged.sha256,
            visibility=visibility,
            description=description,
        )
        upload.set_tags(tags)
        self.session.add(upload)
        self.session.flush()
        return upload

    # --- read -------------------------------------------------------------------------------

    def list_visible(
        self,
        principal: Principal,
        per_page: int,
        cursor: str | None = None,
        owner: str | None = None,
        content_type: str | None = None,
        q: str | None = None,
        tag: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> CursorPage[Upload]:
        """Uploads the caller may see, newest first, filtered, one keyset page at a time."""
        query = select(Upload)
        if not principal.is_admin:
            query = query.where(or_(Upload.owner_id == principal.user_id, Upload.visibility == "public"))
        if owner:
            query = query.where(Upload.owner_id == owner)
        if content_type:
            query = query.where(Upload.content_type == content_type)
        if q:
            pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(
                or_(Upload.filename.ilike(pattern, escape="\\"), Upload.description.ilike(pattern, escape="\\"))
            )
        if tag:
            query = query.where(Upload.tag_rows.any(UploadTag.tag == tag))
        if created_after:
            query = query.where(Upload.created_at >= created_after)
        if created_before:
            query = query.where(Upload.created_at < created_before)
        if cursor:
            after_created_at, after_id = decode_cursor(cursor)
            query = query.where(
                tuple_(Upload.created_at, Upload.id)
                < tuple_(literal(after_created_at, UTCDateTime), literal(after_id, ID_TYPE))
            )
        with self.tm:
            # One row more than the page tells whether another page follows, without a count.
            rows = self.session.scalars(
                query.order_by(Upload.created_at.desc(), Upload.id.desc()).limit(per_page + 1)
            ).all()
        items = list(rows[:per_page])
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > per_page else None
        return CursorPage(items=items, per_page=per_page, next_cursor=next_cursor)

    def get(self, principal: Principal, upload_id: str) -> Upload:
        with self.tm:
            return self._visible(principal, upload_id)

    def open_content(self, principal: Principal, upload_id: str) -> Download:
        with self.tm:
            upload = self._visible(principal, upload_id)
        return self._download(upload, NotFound("No such upload."))

    # --- change -----------------------------------------------------------------------------

    def update(
        self, principal: Principal, upload_id: str, description=_UNSET, visibility=_UNSET, tags=_UNSET
    ) -> Upload:
        """Change metadata (owner or admin); the file itself never changes."""
        with self.tm:
            upload = self._owned(principal, upload_id)
            if description is not _UNSET:
                upload.description = description
            if visibility is not _UNSET:
                upload.visibility = visibility
            if tags is not _UNSET:
                upload.set_tags(tags)
            self.session.flush()
        return upload

    def delete(self, principal: Principal, upload_id: str) -> None:
        """Delete the row now and the file once that deletion has committed."""
        with self.tm:
            upload = self._owned(principal, upload_id)
            self.files.current().delete_on_commit(upload.storage_key)
            self.session.delete(upload)

    @within_transaction
    def purge_owner(self, user_id: str) -> None:
        """Delete every upload of a user in the caller's open transaction (user deletion)."""
        files = self.files.current()
        for upload in self.session.scalars(select(Upload).where(Upload.owner_id == user_id)):
            files.delete_on_commit(upload.storage_key)
            self.session.delete(upload)

    # --- share links ------------------------------------------------------------------------

    def create_link(self, principal: Principal, upload_id: str, expires_in: int | None = None) -> ShareLink:
        """A signed URL token for one upload, valid for `expires_in` seconds (capped)."""
        with self.tm:
            upload = self._owned(principal, upload_id)
        ttl = min(expires_in or self.link_ttl, self.link_max_ttl)
        expires_at = int(time.time()) + ttl
        token = self.links.sign(upload.id, upload.link_generation, expires_at)
        return ShareLink(token=token, expires_at=datetime.fromtimestamp(expires_at, tz=UTC))

    def revoke_links(self, principal: Principal, upload_id: str) -> None:
        with self.tm:
            upload = self._owned(principal, upload_id)
            upload.link_generation += 1

    def open_shared(self, token: str) -> Download:
        """The upload a valid share link points to; NotFound for any bad, expired or revoked link."""
        claims = self.links.verify(token)
        if claims is None:
            raise NotFound("This link is invalid or has expired.")
        with self.tm:
            row = self.session.execute(
                select(Upload, User.active).join(User, User.id == Upload.owner_id).where(Upload.id == claims.upload_id)
            ).first()
        # A deactivated owner's links stop too: sharing ends with the account.
        invalid = NotFound("This link is invalid or has expired.")
        if row is None or not row.active or row.Upload.link_generation != claims.generation:
            raise invalid
        return self._download(row.Upload, invalid)

    # --- helpers ----------------------------------------------------------------------------

    def _committed_after_all(self, upload_id: str) -> Upload | None:
        """The upload, if its failed commit went through after all, with its file; None if
        it did not go through.

        Asked in a new transaction (a fresh connection). If the database cannot answer, the
        client is told the outcome is unknown rather than that nothing was stored. So it is
        if the row is there without its file: the file manager, asking the same question a
        moment earlier, heard "no" and removed the file, and the COMMIT landed in between."""
        unknown = OutcomeUnknown(
            "The database failed while committing this upload, so it may have been stored. "
            "Look for it in your uploads before sending it again."
        )
        try:
            with self.tm:
                upload = self.session.get(Upload, upload_id)
        except SQLAlchemyError:
            raise unknown from None
        if upload is None:
            return None
        try:
            stored = self.store.stat(upload.storage_key)
        except StorageError:
            raise unknown from None
        if stored is None:
            log.error("upload %s committed after its file was removed; `storage check` reports it", upload_id)
            raise unknown
        log.warning("upload %s: the commit went through before the database connection failed", upload_id)
        return upload

    @within_transaction
    def _visible(self, principal: Principal, upload_id: str, lock: bool = False) -> Upload:
        # lock: hold the row until commit, so a concurrent delete makes this a clean 404.
        upload = self.session.get(Upload, upload_id, with_for_update=lock)
        if upload is None or not (principal.is_admin or upload.owner_id == principal.user_id or upload.is_public):
            # Indistinguishable from a missing id, so ids cannot be probed.
            raise NotFound("No such upload.")
        return upload

    @within_transaction
    def _owned(self, principal: Principal, upload_id: str) -> Upload:
        upload = self._visible(principal, upload_id, lock=True)
        if not (principal.is_admin or upload.owner_id == principal.user_id):
            raise Forbidden("Only the owner or an admin may change this upload.")
        return upload

    def _download(self, upload: Upload, gone: NotFound) -> Download:
        """How to send an upload whose row was just read; `gone` is the answer if it is
        deleted before its file is opened."""
        key = upload.storage_key
        redirect_url = None
        if self.presign_ttl:
            try:
                redirect_url = self.store.presigned_url(key, upload.filename, upload.content_type, self.presign_ttl)
            except StorageError as error:
                raise Unavailable("The file store failed; try again shortly.") from error
        return Download(
            upload=upload, open=lambda offset: self._open_file(upload, offset, gone), redirect_url=redirect_url
        )

    def _open_file(self, upload: Upload, offset: int, gone: NotFound) -> BinaryIO:
        """The file of an upload whose row was read a moment ago, positioned at `offset`.

        A file missing then is what a delete committed since leaves behind: the row goes at
        the commit and the file just after it. So the row is looked for again: if it is gone,
        the answer is `gone`, as if the delete had come first; if it is still there, the store
        has lost the file, a real failure (Unavailable, and `storage check` reports it)."""
        upload_id = upload.id
        try:
            return self.store.open(upload.storage_key, offset)
        except ObjectMissing as error:
            if not self._row_exists(upload_id):
                raise gone from None
            log.error("upload %s has a row but no file; `storage check` reports it", upload_id)
            raise Unavailable("The file could not be read from the store.") from error
        except StorageError as error:
            raise Unavailable("The file could not be read from the store.") from error

    def _row_exists(self, upload_id: str) -> bool:
        """Whether the upload's row is in the database now (a query, never the session's cache)."""
        with self.tm:
            return self.session.scalar(select(Upload.id).where(Upload.id == upload_id)) is not None

    @within_transaction
    def used_bytes(self, user_id: str) -> int:
        """Bytes of the user's finished uploads."""
        return self.session.scalar(select(func.coalesce(func.sum(Upload.size), 0)).where(Upload.owner_id == user_id))

    @within_transaction
    def lock_owner(self, user_id: str) -> None:
        """Lock the owner's row until commit: a user deletion then waits for this upload (and
        purges it) or wins and this upload fails cleanly; concurrent uploads of one user are
        counted against the quota one at a time."""
        owner = self.session.execute(select(User.id, User.active).where(User.id == user_id).with_for_update()).first()
        if owner is None or not owner.active:
            raise AuthenticationFailed("Your account no longer exists or is inactive.")

    @within_transaction
    def check_quota(self, user_id: str, size: int, excluding_reservation: str | None = None) -> None:
        """The owner's finished uploads, plus what unfinished resumable uploads reserved, plus
        `size`, within the quota (the caller holds the owner's lock)."""
        if self.quota_bytes is None:
            return
        used = self.used_bytes(user_id) + reserved_bytes(self.session, user_id, utcnow(), excluding_reservation)
        if used + size > self.quota_bytes:
            remaining = max(self.quota_bytes - used, 0)
            raise UploadPolicy(
                self.max_upload_bytes, self.allowed_extensions, self.quota_bytes, used, remaining
            ).too_large()
