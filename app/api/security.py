"""Bearer-token authentication for the API, delegating every decision to AuthService."""

from __future__ import annotations

from flask import current_app

from app.errors import error_response
from app.extensions import token_auth
from app.services.auth import AuthService
from app.services.principal import Principal


@token_auth.verify_token
def _verify_token(token: str):
    return current_app.injector.get(AuthService).authenticate(token)


@token_auth.error_handler
def _auth_error(status: int):
    # Flask-HTTPAuth only calls this for a missing or rejected token (401).
    return error_response(status, "unauthorized", "A valid bearer token is required.")


def current_principal() -> Principal:
    """The caller of the current request; only valid inside a login_required view."""
    return token_auth.current_user()


login_required = token_auth.login_required
