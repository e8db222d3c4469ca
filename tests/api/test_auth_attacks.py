"""Attacks on authentication and authorisation that the other suites do not already cover:
unsigned (`alg: none`) and foreign token formats, an API token whose owner is deactivated,
users reaching for roles or other accounts, and login timing that would reveal which emails
exist. (Tampered, truncated, re-signed, expired and revoked tokens, probing of uploads and
the login rate limit are in test_auth.py, test_api_tokens.py and test_upload_access.py.)"""

from __future__ import annotations

import base64
import json
import statistics
import time

import pytest
from webtest import TestApp

from app.services.users import UserService
from tests.helpers import PASSWORD, bearer

ME = "/api/v1/users/me"
pytestmark = pytest.mark.robustness("auth attacks")

TOKEN = "/api/v1/auth/token"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sid': 'anything', 'roles': ['admin']})}.",
        f"{_b64({'alg': 'none'})}.{_b64({'sid': 'anything'})}",
        f"{_b64({'alg': 'HS256'})}.{_b64({'sub': 'admin'})}.c2lnbmF0dXJl",
        _b64({"sid": "anything"}),  # a payload with no signature at all
        "Bearer",
        "",
    ],
)
def test_unsigned_and_foreign_tokens_are_refused(testapp, token):
    response = testapp.get(ME, headers={"Authorization": f"Bearer {token}"}, status=401)

    assert response.json["error"] == "unauthorized"


def test_an_api_token_stops_when_its_owner_is_deactivated(testapp, uploader, uploader_headers, admin_headers):
    api_token = testapp.post_json("/api/v1/users/me/tokens", {"name": "script"}, headers=uploader_headers).json["token"]
    testapp.get(ME, headers=bearer(api_token), status=200)

    testapp.patch_json(f"/api/v1/users/{uploader.id}", {"active": False}, headers=admin_headers, status=200)

    testapp.get(ME, headers=bearer(api_token), status=401)
    testapp.patch_json(f"/api/v1/users/{uploader.id}", {"active": True}, headers=admin_headers, status=200)
    testapp.get(ME, headers=bearer(api_token), status=200)  # and works again once reactivated


@pytest.mark.parametrize("payload", [{"roles": ["admin"]}, {"active": True}, {"email": "new@example.com"}])
def test_users_cannot_set_their_own_roles_status_or_email(testapp, make_user, login, payload):
    headers = bearer(login(make_user()))

    response = testapp.patch_json(ME, payload, headers=headers, status=422)

    assert set(payload) <= set(response.json["fields"])
    assert testapp.get(ME, headers=headers).json["roles"] == ["user"]


@pytest.mark.parametrize("method", ["get", "patch_json", "delete"])
def test_users_cannot_reach_other_accounts(testapp, make_user, login, method):
    headers = bearer(login(make_user(roles=["uploader"])))
    other = make_user()

    args = (
        (f"/api/v1/users/{other.id}", {"roles": ["admin"]})
        if method == "patch_json"
        else (f"/api/v1/users/{other.id}",)
    )
    response = getattr(testapp, method)(*args, headers=headers, status=403)

    assert response.json["error"] == "forbidden"


def test_login_takes_as_long_for_an_unknown_email_as_for_a_wrong_password(app_factory):
    # The production hash cost, so the password KDF dominates as it does in a deployment.
    client = TestApp(app_factory(PASSWORD_HASH_METHOD="scrypt"))
    with client.app.app_context():
        client.app.injector.get(UserService).create_account("known@example.com", PASSWORD, "Known", ["user"])

    def median_seconds(email: str) -> float:
        times = []
        for _ in range(7):
            started = time.perf_counter()
            client.post_json(TOKEN, {"email": email, "password": "wrong password"}, status=401)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    known, unknown = median_seconds("known@example.com"), median_seconds("nobody@example.com")

    # Within a third of each other: an unknown email must not answer measurably faster.
    assert 0.67 < unknown / known < 1.5, (known, unknown)
