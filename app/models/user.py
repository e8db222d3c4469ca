"""User accounts and their roles."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import ID_TYPE, UTCDateTime, new_id, utcnow


class Role(enum.StrEnum):
    """What a user may do: admins everything, uploaders upload, users read their own data."""

    ADMIN = "admin"
    UPLOADER = "uploader"
    USER = "user"


ROLE_NAMES = tuple(role.value for role in Role)


class User(db.Model):
    """A person or script owner who can sign in; roles live in `user_roles`."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    # Stored lower-cased by the service, so the unique index is case-insensitive in effect.
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # selectin: roles are needed on every request and after the transaction has closed.
    role_rows: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def roles(self) -> list[str]:
        """Role names, sorted for stable output."""
        return sorted(row.role for row in self.role_rows)

    def set_roles(self, roles) -> None:
        """Replace the roles, keeping rows that stay so nothing is rewritten needlessly."""
        wanted = set(roles)
        self.role_rows = [row for row in self.role_rows if row.role in wanted] + [
            UserRole(role=role) for role in sorted(wanted - {row.role for row in self.role_rows})
        ]

    def has_role(self, role: Role) -> bool:
        return role.value in self.roles


class UserRole(db.Model):
    """One role held by one user."""

    __tablename__ = "user_roles"

    user_id: Mapped[str] = mapped_column(ID_TYPE, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True, index=True)

    user: Mapped[User] = relationship(back_populates="role_rows")
