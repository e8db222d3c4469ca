"""Personal API tokens for scripts and CI, stored only as a hash of the secret."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import ID_TYPE, UTCDateTime, new_id, utcnow


class ApiToken(db.Model):
    """A long-lived bearer token limited to a subset of its owner's roles."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID_TYPE, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # SHA-256 of the secret: the secret has 256 bits of entropy, so a slow KDF adds nothing.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    roles: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
