"""Uploads: a stored file's metadata; the bytes live in the file store under `storage_key`."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import ID_TYPE, UTCDateTime, new_id, utcnow


class Visibility(enum.StrEnum):
    PRIVATE = "private"
    PUBLIC = "public"


class Upload(db.Model):
    """One stored file. Its row exists only if its file does, with this size and SHA-256."""

    __tablename__ = "uploads"
    __table_args__ = (
        # Listings are newest first, filtered by owner or visibility.
        Index("ix_uploads_created_at_id", "created_at", "id"),
        Index("ix_uploads_owner_id_created_at", "owner_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ID_TYPE, ForeignKey("users.id", ondelete="CASCADE"))
    # Generated, never derived from the client's filename.
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.PRIVATE.value, index=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Bumped to revoke every signed link issued so far for this upload.
    link_generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    tag_rows: Mapped[list[UploadTag]] = relationship(
        back_populates="upload", cascade="all, delete-orphan", lazy="selectin", order_by="UploadTag.tag"
    )

    @property
    def tags(self) -> list[str]:
        return [row.tag for row in self.tag_rows]

    def set_tags(self, tags) -> None:
        wanted = list(dict.fromkeys(tags))
        keep = {row.tag: row for row in self.tag_rows}
        self.tag_rows = [keep.get(tag) or UploadTag(tag=tag) for tag in sorted(wanted)]

    @property
    def is_public(self) -> bool:
        return self.visibility == Visibility.PUBLIC.value


class UploadTag(db.Model):
    """One tag on one upload; a table of its own so listings can filter by tag with an index."""

    __tablename__ = "upload_tags"

    upload_id: Mapped[str] = mapped_column(ID_TYPE, ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(50), primary_key=True, index=True)

    upload: Mapped[Upload] = relationship(back_populates="tag_rows")
