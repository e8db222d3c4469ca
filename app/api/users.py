"""User endpoints: the caller's own profile and the admin's user management."""

from __future__ import annotations

from uuid import UUID

from flask import url_for
from flask_apispec import doc, marshal_with, use_kwargs
from injector import inject

from app.api.resources import AuthenticatedResource, no_content
from app.api.security import current_principal
from app.openapi.describe import LOCATION, operation
from app.schemas.users import (
    AdminUserUpdateSchema,
    SelfUpdateSchema,
    UserCreateSchema,
    UserPageSchema,
    UserQuerySchema,
    UserSchema,
)
from app.services.users import UserService


class _UserResource(AuthenticatedResource):
    @inject
    def __init__(self, users: UserService) -> None:
        self.users = users


@doc(tags=["users"])
class Me(_UserResource):
    @operation("getMe")
    @marshal_with(UserSchema(), code=200)
    def get(self):
        """Read your own profile."""
        return self.users.get_profile(current_principal())

    @operation("updateMe")
    @use_kwargs(SelfUpdateSchema(), location="json")
    @marshal_with(UserSchema(), code=200)
    def patch(self, **changes):
        """Change your name or password (a password change ends your other sessions)."""
        return self.users.update_profile(current_principal(), **changes)


@doc(tags=["users"])
class UserList(_UserResource):
    @operation("listUsers", 403)
    @use_kwargs(UserQuerySchema(), location="query")
    @marshal_with(UserPageSchema(), code=200)
    def get(self, page: int, per_page: int):
        """List users, oldest first (admin only)."""
        return self.users.list_users(current_principal(), page=page, per_page=per_page)

    @operation("createUser", 403, 409, responses={201: {"headers": {"Location": LOCATION}}})
    @use_kwargs(UserCreateSchema(), location="json")
    @marshal_with(UserSchema(), code=201)
    def post(self, **fields):
        """Create a user with the given roles (admin only)."""
        user = self.users.create_user(current_principal(), **fields)
        return user, 201, {"Location": url_for("api.user_detail", user_id=user.id, _external=True)}


@doc(tags=["users"])
class UserDetail(_UserResource):
    @operation("getUser", 403)
    @marshal_with(UserSchema(), code=200)
    def get(self, user_id: UUID):
        """Read a user (admin only)."""
        return self.users.get_user(current_principal(), str(user_id))

    @operation("updateUser", 403, 409)
    @use_kwargs(AdminUserUpdateSchema(), location="json")
    @marshal_with(UserSchema(), code=200)
    def patch(self, user_id: UUID, **changes):
        """Change a user's name, roles or active flag (admin only)."""
        return self.users.update_user(current_principal(), str(user_id), **changes)

    @operation("deleteUser", 403, 409)
    @marshal_with(None, code=204)
    def delete(self, user_id: UUID):
        """Delete a user with their sessions and tokens (admin only)."""
        self.users.delete_user(current_principal(), str(user_id))
        return no_content()
