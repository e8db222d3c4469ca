"""UserService: accounts, profiles and the admin's user management.

Rules held here: emails are unique (case-insensitively); only admins manage other users;
the last active admin can be neither deleted, deactivated nor demoted; a password change
needs the current password and ends every other session of that user.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Config
from injector import inject
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import scoped_session
from transaction import ThreadTransactionManager

from app.exceptions import Conflict, Invalid, NotFound, RegistrationClosed
from app.models import AuthSession, Role, User, UserRole
from app.services.auth import normalize_email
from app.services.pagination import Page
from app.services.passwords import PasswordHasher
from app.services.principal import Account, Principal
from app.services.uploads import UploadService
from app.transactions import within_transaction


class UserService:
    """Creates, reads, changes and removes user accounts."""

    @inject
    def __init__(
        self,
        tm: ThreadTransactionManager,
        session: scoped_session,
        hasher: PasswordHasher,
        uploads: UploadService,
        config: Config,
    ) -> None:
        self.tm = tm
        self.session = session
        self.hasher = hasher
        self.uploads = uploads
        self.allow_registration = bool(config["ALLOW_REGISTRATION"])

    # --- self-service -------------------------------------------------------------------

    def register(self, email: str, password: str, name: str) -> User:
        """Open a self-service account with the plain `user` role, if registration is on."""
        if not self.allow_registration:
            raise RegistrationClosed()
        return self.create_account(email, password, name, [Role.USER.value])

    def get_profile(self, principal: Principal) -> User | Account:
        """The caller's account: as read with their credential this very request, when it was."""
        if principal.account is not None:
            return principal.account
        with self.tm:
            return self._get(principal.user_id)

    def update_profile(
        self,
        principal: Principal,
        name: str | None = None,
        password: str | None = None,
        current_password: str | None = None,
    ) -> User:
        """Change the caller's own name and/or password; never their roles or status."""
        with self.tm:
            user = self._get(principal.user_id)
            if name is not None:
                user.name = name
            if password is not None:
                if current_password is None or not self.hasher.verify(user.password_hash, current_password):
                    raise Invalid(
                        "The current password is incorrect.",
                        fields={"current_password": ["The current password is incorrect."]},
                    )
                user.password_hash = self.hasher.hash(password)
                # Whoever knew the old password may hold a session: end all but this one.
                others = delete(AuthSession).where(AuthSession.user_id == user.id)
                if principal.session_id:
                    others = others.where(AuthSession.id != principal.session_id)
                self.session.execute(others)
            return user

    # --- administration -----------------------------------------------------------------

    def create_user(self, principal: Principal, email: str, password: str, name: str, roles: Iterable[str]) -> User:
        principal.require(Role.ADMIN)
        return self.create_account(email, password, name, roles)

    def list_users(self, principal: Principal, page: int, per_page: int) -> Page[User]:
        """Users ordered by creation (oldest first), one page at a time."""
        principal.require(Role.ADMIN)
        with self.tm:
            total = self.session.scalar(select(func.count()).select_from(User))
            items = self.session.scalars(
                select(User).order_by(User.created_at, User.id).offset((page - 1) * per_page).limit(per_page)
            ).all()
        return Page(items=list(items), page=page, per_page=per_page, total=total)

    def get_user(self, principal: Principal, user_id: str) -> User:
        principal.require(Role.ADMIN)
        with self.tm:
            return self._get(user_id)

    def update_user(
        self,
        principal: Principal,
        user_id: str,
        name: str | None = None,
        roles: Iterable[str] | None = None,
        active: bool | None = None,
    ) -> User:
        """Change another user's name, roles or active flag (admin only)."""
        principal.require(Role.ADMIN)
        with self.tm:
            user = self._get(user_id)
            keeps_admin = (Role.ADMIN.value in roles if roles is not None else user.has_role(Role.ADMIN)) and (
                active if active is not None else user.active
            )
            if not keeps_admin:
                self._ensure_not_last_admin(user)
            if name is not None:
                user.name = name
            if roles is not None:
                user.set_roles(roles)
            if active is not None:
                user.active = active
            return user

    def delete_user(self, principal: Principal, user_id: str) -> None:
        """Remove a user with their uploads, sessions and tokens, in one transaction.

        Upload files are removed only once the deletion has committed; sessions and tokens
        go with the user row (ON DELETE CASCADE).
        """
        principal.require(Role.ADMIN)
        with self.tm:
            # Locked first: an upload of this user that is committing finishes (and is purged
            # below) or waits and then fails, so no upload outlives its owner.
            user = self.session.get(User, user_id, with_for_update=True)
            if user is None:
                raise NotFound("No such user.")
            self._ensure_not_last_admin(user)
            self.uploads.purge_owner(user.id)
            self.session.delete(user)

    # --- bootstrap (CLI and first start) ------------------------------------------------

    def create_admin(self, email: str, password: str, name: str = "Administrator") -> User:
        return self.create_account(email, password, name, [Role.ADMIN.value])

    def ensure_initial_admin(self, email: str | None, password: str | None) -> User | None:
        """On a first start with no users, create the admin named by the environment."""
        if not email or not password:
            return None
        with self.tm:
            if self.session.scalar(select(func.count()).select_from(User)):
                return None
        try:
            return self.create_admin(email, password)
        except Conflict:  # another replica created it first
            return None

    # --- helpers ------------------------------------------------------------------------

    @within_transaction
    def _get(self, user_id: str) -> User:
        user = self.session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        return user

    def create_account(self, email: str, password: str, name: str, roles: Iterable[str]) -> User:
        """Create an account with `roles`, no permission check: for the CLI, first start and the rules above."""
        email = normalize_email(email)
        try:
            with self.tm:
                if self.session.scalar(select(User.id).where(User.email == email)):
                    raise self._email_taken()
                user = User(email=email, name=name, password_hash=self.hasher.hash(password))
                user.set_roles(roles)
                self.session.add(user)
                self.session.flush()
        except IntegrityError:  # a concurrent request took the email between check and insert
            raise self._email_taken() from None
        return user

    @staticmethod
    def _email_taken() -> Conflict:
        return Conflict("A user with this email already exists.", fields={"email": ["Already registered."]})

    @within_transaction
    def _ensure_not_last_admin(self, user: User) -> None:
        """Refuse to remove the last active admin, even against a concurrent demotion.

        First lock every admin's user row (in id order, so two of these never deadlock), then
        count in a new statement: under READ COMMITTED that statement sees any demotion that
        committed while we waited for the lock, which the locking statement itself would not.
        """
        if not (user.active and user.has_role(Role.ADMIN)):
            return
        admins = select(UserRole.user_id).where(UserRole.role == Role.ADMIN.value)
        self.session.execute(select(User.id).where(User.id.in_(admins)).order_by(User.id).with_for_update())
        active_admins = self.session.scalar(
            select(func.count())
            .select_from(User)
            .join(UserRole, UserRole.user_id == User.id)
            .where(UserRole.role == Role.ADMIN.value, User.active.is_(True))
        )
        if active_admins <= 1:
            raise Conflict("This is the last active admin; promote another admin first.")
