"""Who is calling: the authenticated user, their effective roles and the credential used."""

from __future__ import annotations

from dataclasses import dataclass

from app.exceptions import Forbidden
from app.models.user import Role


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, built fresh from the database on every request."""

    user_id: str
    roles: frozenset[str]
    session_id: str | None = None
    api_token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN.value in self.roles

    def has(self, role: Role) -> bool:
        """Admins may do anything, so they hold every role in effect."""
        return self.is_admin or role.value in self.roles

    def require(self, role: Role) -> None:
        if not self.has(role):
            raise Forbidden(f"This requires the '{role.value}' role.")
