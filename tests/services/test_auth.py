"""AuthService: logins, token checks and revocation, called directly."""

from __future__ import annotations

import pytest

from app.exceptions import AuthenticationFailed
from app.services.auth import AuthService
from app.services.users import UserService
from tests.helpers import PASSWORD


@pytest.fixture
def services(app):
    """(AuthService, UserService) inside an app context."""
    with app.app_context():
        yield app.injector.get(AuthService), app.injector.get(UserService)


def test_a_login_token_authenticates_as_its_user_with_current_roles(services):
    auth, users = services
    user = users.create_account("a@example.com", PASSWORD, "A", ["uploader"])

    issued = auth.login("A@example.com", PASSWORD)
    principal = auth.authenticate(issued.access_token)

    assert principal.user_id == user.id
    assert principal.roles == {"uploader"}
    assert principal.session_id is not None


def test_wrong_credentials_raise_authentication_failed(services):
    auth, users = services
    users.create_account("a@example.com", PASSWORD, "A", ["user"])

    for email, password in (("a@example.com", "nope nope"), ("b@example.com", PASSWORD)):
        with pytest.raises(AuthenticationFailed, match="Invalid email or password."):
            auth.login(email, password)


def test_logout_all_revokes_every_session(services):
    auth, users = services
    users.create_account("a@example.com", PASSWORD, "A", ["user"])
    tokens = [auth.login("a@example.com", PASSWORD).access_token for _ in range(3)]

    auth.logout_all(auth.authenticate(tokens[0]))

    assert [auth.authenticate(token) for token in tokens] == [None, None, None]


@pytest.mark.parametrize("token", [None, "", "garbage", "dpt_unknown", "a.b.c"])
def test_malformed_tokens_authenticate_as_nobody(services, token):
    auth, _users = services

    assert auth.authenticate(token) is None
