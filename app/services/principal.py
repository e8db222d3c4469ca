"""Who is calling: the authenticated user, their effective roles and the credential used."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.exceptions import Forbidden
from app.models.user import Role


@dataclass(frozen=True)
class Account:
    """The caller's account as read while authenticating this request (GET /users/me shows it)."""

    id: str
    email: str
    name: str
    roles: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, built fresh from the database on every request."""

    user_id: str
    roles: frozenset[str]
    session_id: str | None = None
    api_token_id: str | None = None
    # The account the credential belongs to, read in the same query as the credential.
    account: Account | None = field(default=None, compare=False, repr=False)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN.value in self.roles

    def has(self, role: Role) -> bool:
        """Admins may do anything, so they hold every role in effect."""
        return self.is_admin or role.value in self.roles

    def require(self, role: Role) -> None:
        if not self.has(role):
            raise Forbidden(f"This requires the '{role.value}' role.")
