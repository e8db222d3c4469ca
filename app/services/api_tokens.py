"""ApiTokenService: personal API tokens for scripts and CI.

The secret is shown once, at creation; only its SHA-256 is stored. A token carries a subset
of the creator's current roles and can never be used to gain a role its creator lacks.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from injector import inject
from sqlalchemy import select
from sqlalchemy.orm import scoped_session
from transaction import ThreadTransactionManager

from app.exceptions import Forbidden, NotFound
from app.models import ApiToken
from app.models.base import utcnow
from app.models.user import Role
from app.services.auth import API_TOKEN_PREFIX, hash_api_token
from app.services.principal import Principal


@dataclass(frozen=True)
class CreatedToken:
    """A new token and its secret, which is never available again."""

    token: ApiToken
    secret: str

    def __getattr__(self, name: str):
        # Output schemas read the token's fields straight from this object.
        return getattr(self.token, name)


class ApiTokenService:
    """Creates, lists and revokes the caller's own API tokens."""

    @inject
    def __init__(self, tm: ThreadTransactionManager, session: scoped_session) -> None:
        self.tm = tm
        self.session = session

    def create(
        self,
        principal: Principal,
        name: str,
        expires_in_days: int | None = None,
        roles: Iterable[str] | None = None,
    ) -> CreatedToken:
        """Issue a token with `roles` (default: all of the caller's), expiring after the given days."""
        if principal.api_token_id is not None:
            # Otherwise a short-lived or narrowed token could mint a lasting one.
            raise Forbidden("API tokens are created from a login session, not with another API token.")
        granted = set(principal.roles if roles is None else roles)
        beyond = {role for role in granted if not principal.has(Role(role))}
        if beyond:
            raise Forbidden(
                f"A token cannot carry roles you do not hold: {', '.join(sorted(beyond))}.",
                fields={"roles": [f"Not held by you: {', '.join(sorted(beyond))}."]},
            )
        secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
        with self.tm:
            token = ApiToken(
                user_id=principal.user_id,
                name=name,
                token_hash=hash_api_token(secret),
                roles=sorted(granted),
                expires_at=expires_at,
            )
            self.session.add(token)
            self.session.flush()
        return CreatedToken(token=token, secret=secret)

    def list_own(self, principal: Principal) -> list[ApiToken]:
        with self.tm:
            return list(
                self.session.scalars(
                    select(ApiToken).where(ApiToken.user_id == principal.user_id).order_by(ApiToken.created_at)
                )
            )

    def revoke(self, principal: Principal, token_id: str) -> None:
        """Delete one of the caller's tokens; someone else's token is reported as missing."""
        with self.tm:
            token = self.session.get(ApiToken, token_id)
            if token is None or token.user_id != principal.user_id:
                raise NotFound("No such token.")
            self.session.delete(token)
