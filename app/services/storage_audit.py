"""StorageAuditService: prepares the file store, and checks the upload invariant across the
database and the file store.

It reports rows whose file is missing or corrupt (wrong size or SHA-256), files without a
row (leftovers of a crash between the file promotion and the database commit), and staged
files nobody will promote (leftovers of a crash during an upload). `repair` removes the two
kinds of leftover; a row whose file is missing or corrupt is reported, never deleted, since
that needs a person's decision.

Objects younger than the grace period are left alone: they may belong to an upload that is
committing right now. The report counts them (`too_young`), so that a check run just after a
crash does not look clean only because its leftovers are recent.

A store that cannot be read raises the store's own StorageError, which the CLI reports.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

from injector import inject
from sqlalchemy import select
from sqlalchemy.orm import scoped_session
from transaction import ThreadTransactionManager

from app.models import Upload
from app.models.base import utcnow
from app.services.resumable_uploads import ResumableUploadService
from app.storage.base import FileStore

HASH_CHUNK = 1024 * 1024


@dataclass
class StorageReport:
    missing: list[str] = field(default_factory=list)  # upload ids whose file is gone
    corrupt: list[str] = field(default_factory=list)  # upload ids whose file differs
    orphans: list[str] = field(default_factory=list)  # storage keys without a row
    stale_staged: list[str] = field(default_factory=list)  # staging ids past the grace period
    removed: list[str] = field(default_factory=list)  # what repair deleted
    # Files without a row, and staged files, younger than the grace period: not judged.
    too_young: list[str] = field(default_factory=list)
    resumable: list[str] = field(default_factory=list)  # staged bytes of unfinished tus uploads
    expired_resumable: list[str] = field(default_factory=list)  # tus uploads past their expiry

    @property
    def rows_intact(self) -> bool:
        return not (self.missing or self.corrupt)

    @property
    def consistent(self) -> bool:
        """True when nothing is wrong, or everything wrong was repaired."""
        leftovers = set(self.orphans) | set(self.stale_staged) | set(self.expired_resumable)
        return self.rows_intact and leftovers <= set(self.removed)


class StorageAuditService:
    @inject
    def __init__(
        self,
        tm: ThreadTransactionManager,
        session: scoped_session,
        store: FileStore,
        resumable: ResumableUploadService,
    ) -> None:
        self.tm = tm
        self.resumable = resumable
        self.session = session
        self.store = store

    def prepare_store(self) -> bool:
        """Create what the store needs (the S3 bucket); True if something was created."""
        return self.store.prepare()

    def check(self, repair: bool = False, verify_hashes: bool = True, grace_seconds: int = 3600) -> StorageReport:
        """Compare every row with its file, then find leftovers older than `grace_seconds`
        (removed with `repair`). Raises StorageError when the store cannot be read."""
        report = StorageReport()
        with self.tm:
            rows = self.session.execute(select(Upload.id, Upload.storage_key, Upload.size, Upload.sha256)).all()
        keys = {row.storage_key for row in rows}
        for row in rows:
            stored = self.store.stat(row.storage_key)
            if stored is None:
                report.missing.append(row.id)
            elif stored.size != row.size or (verify_hashes and self._sha256(row.storage_key) != row.sha256):
                report.corrupt.append(row.id)
        cutoff = utcnow() - timedelta(seconds=grace_seconds)
        for found in self.store.iter_objects():
            if found.key not in keys:
                (report.orphans if found.modified_at <= cutoff else report.too_young).append(found.key)
        in_progress = self.resumable.unfinished_partials()
        report.expired_resumable = self.resumable.expired_ids()
        for staged in self.store.iter_staged():
            if staged.key in in_progress:
                report.resumable.append(staged.key)
                continue
            (report.stale_staged if staged.modified_at <= cutoff else report.too_young).append(staged.key)
        if repair:
            self._repair(report)
        return report

    def _repair(self, report: StorageReport) -> None:
        with self.tm:
            # Re-read: a row may have been committed for a key since the first look.
            current = set(self.session.scalars(select(Upload.storage_key)))
        for key in report.orphans:
            if key not in current:
                self.store.delete(key)
                report.removed.append(key)
        for staging_id in report.stale_staged:
            self.store.discard_staged(staging_id)
            report.removed.append(staging_id)
        for upload_id in report.expired_resumable:
            self.resumable.remove_expired(upload_id)
            report.removed.append(upload_id)

    def _sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.store.open(key) as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()
