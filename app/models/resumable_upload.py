"""Resumable (tus) uploads in progress: what is known of a file whose bytes are still arriving.

A row lives from the tus creation request until it expires. Its bytes sit in the store's
staging area (`partial_id`) until the last one arrives; then, in one transaction, the file is
promoted, an `uploads` row is added and `upload_id` set here, so a client that lost the final
answer can still learn which upload it became. `offset` only ever counts bytes made durable.
An unfinished row never shows in listings or downloads; its `length` is reserved against the
owner's quota (`reserved_bytes`), so parallel uploads cannot exceed it together.

Only one request may write an upload's bytes at a time, whichever replica it reaches: it
holds a lease (`lock_token` until `locked_until`, by the database's clock), renewed while its
body arrives and released at its end. A worker killed mid-request leaves a lease that simply
runs out.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.extensions import db
from app.models.base import ID_TYPE, UTCDateTime, utcnow


class ResumableUpload(db.Model):
    """One tus upload, unfinished (`upload_id` is None) or finished and kept until it expires."""

    __tablename__ = "resumable_uploads"
    __table_args__ = (Index("ix_resumable_uploads_owner_id_upload_id", "owner_id", "upload_id"),)

    # 32 random hex characters: the upload's URL, unguessable.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ID_TYPE, ForeignKey("users.id", ondelete="CASCADE"))
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    # Where the bytes are staged (the store's staging id).
    partial_id: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    visibility: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[str] = mapped_column(Text, default="")  # comma-separated, validated
    expected_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The file's first bytes, kept as they arrive, to check its type before it is complete.
    head: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    # The raw Upload-Metadata header, echoed by HEAD as the protocol asks.
    metadata_header: Mapped[str] = mapped_column(Text, default="")
    upload_id: Mapped[str | None] = mapped_column(ID_TYPE, nullable=True)
    lock_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    @property
    def finished(self) -> bool:
        return self.upload_id is not None

    @property
    def tag_list(self) -> list[str]:
        return [tag for tag in self.tags.split(",") if tag]


def reserved_bytes(session: Session, owner_id: str, now: datetime, excluding: str | None = None) -> int:
    """Bytes the owner's unfinished, unexpired resumable uploads have reserved of the quota."""
    query = select(func.coalesce(func.sum(ResumableUpload.length), 0)).where(
        ResumableUpload.owner_id == owner_id,
        ResumableUpload.upload_id.is_(None),
        ResumableUpload.expires_at > now,
    )
    if excluding is not None:
        query = query.where(ResumableUpload.id != excluding)
    return session.scalar(query)
