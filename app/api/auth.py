"""Authentication endpoints: registration, login (token), logout."""

from __future__ import annotations

from flask_apispec import doc, marshal_with, use_kwargs
from injector import inject

from app.api.resources import AuthenticatedResource, PublicResource, credential_rate_limit, no_content
from app.api.security import current_principal
from app.openapi.describe import operation
from app.schemas.auth import TokenRequestSchema, TokenSchema
from app.schemas.users import RegisterSchema, UserSchema
from app.services.auth import AuthService
from app.services.users import UserService


@doc(tags=["auth"])
class Register(PublicResource):
    @inject
    def __init__(self, users: UserService) -> None:
        self.users = users

    @operation("register", 403, 409, 429)
    @credential_rate_limit
    @use_kwargs(RegisterSchema(), location="json")
    @marshal_with(UserSchema(), code=201)
    def post(self, **fields):
        """Create an account with the `user` role (only when registration is enabled)."""
        return self.users.register(**fields), 201


@doc(tags=["auth"])
class Token(PublicResource):
    @inject
    def __init__(self, auth: AuthService) -> None:
        self.auth = auth

    @operation("login", 401, 429)
    @credential_rate_limit
    @use_kwargs(TokenRequestSchema(), location="json")
    @marshal_with(TokenSchema(), code=200)
    def post(self, email: str, password: str):
        """Exchange email and password for a session token."""
        return self.auth.login(email, password)


@doc(tags=["auth"])
class Logout(AuthenticatedResource):
    @inject
    def __init__(self, auth: AuthService) -> None:
        self.auth = auth

    @operation("logout")
    @marshal_with(None, code=204)
    def post(self):
        """Revoke the token used for this request."""
        self.auth.logout(current_principal())
        return no_content()


@doc(tags=["auth"])
class LogoutAll(AuthenticatedResource):
    @inject
    def __init__(self, auth: AuthService) -> None:
        self.auth = auth

    @operation("logoutEverywhere")
    @marshal_with(None, code=204)
    def post(self):
        """Revoke every token of the caller: all sessions and all personal API tokens."""
        self.auth.logout_all(current_principal())
        return no_content()
