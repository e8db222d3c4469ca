"""Login sessions: the revocable server-side half of a signed session token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import ID_TYPE, UTCDateTime, new_id, utcnow


class AuthSession(db.Model):
    """One login; its id is signed into the token, and deleting the row revokes the token."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID_TYPE, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
