"""AuthService: logins, bearer-token checks and logouts.

Two kinds of bearer token are accepted the same way:
- session tokens, signed with itsdangerous from SECRET_KEY, carrying only the id of an
  `auth_sessions` row; deleting the row revokes the token at once, on every replica;
- personal API tokens (`dpt_...`), random secrets stored as SHA-256 hashes.
Either way the user and their roles are read from the database on every request, so a role
change or a deactivation applies to the very next request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from flask import Config
from injector import inject
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import scoped_session
from transaction import ThreadTransactionManager

from app.exceptions import AuthenticationFailed
from app.models import ApiToken, AuthSession, User
from app.models.base import utcnow
from app.models.user import Role, UserRole
from app.services.passwords import PasswordHasher
from app.services.principal import Account, Principal

SESSION_TOKEN_SALT = "depot.session-token.v1"  # noqa: S105 (a namespace, not a secret)
API_TOKEN_PREFIX = "dpt_"  # noqa: S105 (a public prefix)
# Recording every use of an API token would turn each read into a write; a minute is precise
# enough for "last used".
LAST_USED_RESOLUTION = timedelta(minutes=1)


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively; store and look them up in one form."""
    return email.strip().lower()


def hash_api_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A freshly signed session token and the user it belongs to."""

    access_token: str
    expires_in: int
    user: User
    token_type: str = "Bearer"  # noqa: S105 (the scheme name)


class AuthService:
    """Turns credentials into tokens and tokens into principals."""

    @inject
    def __init__(
        self,
        tm: ThreadTransactionManager,
        session: scoped_session,
        hasher: PasswordHasher,
        config: Config,
    ) -> None:
        self.tm = tm
        self.session = session
        self.hasher = hasher
        self.ttl = int(config["TOKEN_TTL_SECONDS"])
        self.serializer = URLSafeTimedSerializer(config["SECRET_KEY"], salt=SESSION_TOKEN_SALT)

    def login(self, email: str, password: str) -> IssuedToken:
        """Check the password and open a session; unknown email and wrong password look alike."""
        with self.tm:
            user = self.session.scalar(select(User).where(User.email == normalize_email(email)))
            # verify() runs the KDF even when the user is unknown, so both failures cost the same.
            password_ok = self.hasher.verify(user.password_hash if user else None, password)
            if not password_ok or not user.active:
                raise AuthenticationFailed("Invalid email or password.")
            now = utcnow()
            # Housekeeping: a login is a natural moment to drop this user's expired sessions.
            self.session.execute(
                delete(AuthSession).where(AuthSession.user_id == user.id, AuthSession.expires_at <= now)
            )
            auth_session = AuthSession(user_id=user.id, expires_at=now + timedelta(seconds=self.ttl))
            self.session.add(auth_session)
            self.session.flush()
        token = self.serializer.dumps({"sid": auth_session.id})
        return IssuedToken(access_token=token, expires_in=self.ttl, user=user)

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal a bearer token stands for, or None if it is invalid, expired or revoked."""
        if not token:
            return None
        if token.startswith(API_TOKEN_PREFIX):
            return self._authenticate_api_token(token)
        return self._authenticate_session_token(token)

    def _authenticate_session_token(self, token: str) -> Principal | None:
        try:
            payload = self.serializer.loads(token, max_age=self.ttl)
        except BadSignature:  # also covers SignatureExpired
            return None
        session_id = payload.get("sid") if isinstance(payload, dict) else None
        if not isinstance(session_id, str):
            return None
        with self.tm:
            row = self.session.connection().execute(_SESSION_QUERY, {"session_id": session_id}).first()
        if row is None or row.expires_at <= utcnow() or not row.active:
            return None
        account = _account(row)
        return Principal(user_id=account.id, roles=frozenset(account.roles), session_id=session_id, account=account)

    def _authenticate_api_token(self, token: str) -> Principal | None:
        now = utcnow()
        with self.tm:
            row = self.session.connection().execute(_API_TOKEN_QUERY, {"token_hash": hash_api_token(token)}).first()
            if row is None:
                return None
            if (row.expires_at is not None and row.expires_at <= now) or not row.active:
                return None
            if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
                self.session.execute(update(ApiToken).where(ApiToken.id == row.token_id).values(last_used_at=now))
        account = _account(row)
        # A token never grants more than its owner holds now, even after a demotion
        # (an admin holds every role in effect, so an admin's narrowed token keeps its roles).
        owner = Principal(user_id=account.id, roles=frozenset(account.roles))
        roles = frozenset(role for role in row.token_roles if owner.has(Role(role)))
        return Principal(user_id=account.id, roles=roles, api_token_id=row.token_id, account=account)

    def logout(self, principal: Principal) -> None:
        """Revoke the very token this request was made with."""
        with self.tm:
            if principal.session_id:
                self.session.execute(delete(AuthSession).where(AuthSession.id == principal.session_id))
            if principal.api_token_id:
                self.session.execute(delete(ApiToken).where(ApiToken.id == principal.api_token_id))

    def logout_all(self, principal: Principal) -> None:
        """Revoke every token of the caller: all sessions and all personal API tokens."""
        with self.tm:
            self.session.execute(delete(AuthSession).where(AuthSession.user_id == principal.user_id))
            self.session.execute(delete(ApiToken).where(ApiToken.user_id == principal.user_id))


# The caller's account and roles in one query with the credential: authentication runs on
# every request, so it reads plain columns on the session's connection (no ORM objects,
# one round trip).
_ROLES = (
    select(func.aggregate_strings(UserRole.role, ","))
    .where(UserRole.user_id == User.id)
    .correlate(User)
    .scalar_subquery()
    .label("role_list")
)
_ACCOUNT_COLUMNS = (
    User.id,
    User.email,
    User.name,
    User.active,
    User.created_at,
    User.updated_at,
    _ROLES,
)


# Built once: constructing a statement costs more than running this one on an index.
_SESSION_QUERY = (
    select(AuthSession.expires_at, *_ACCOUNT_COLUMNS)
    .join(User, User.id == AuthSession.user_id)
    .where(AuthSession.id == bindparam("session_id"))
)
_API_TOKEN_QUERY = (
    select(
        ApiToken.id.label("token_id"),
        ApiToken.roles.label("token_roles"),
        ApiToken.expires_at,
        ApiToken.last_used_at,
        *_ACCOUNT_COLUMNS,
    )
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


def _account(row) -> Account:
    return Account(
        id=row.id,
        email=row.email,
        name=row.name,
        roles=sorted(row.role_list.split(",")) if row.role_list else [],
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
