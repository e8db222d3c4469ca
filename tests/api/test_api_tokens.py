"""Personal API tokens: creation, use as a bearer token, role limits, expiry and revocation."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken
from app.models.base import utcnow
from app.transactions import manager
from tests.helpers import bearer

TOKENS = "/api/v1/users/me/tokens"
ME = "/api/v1/users/me"


@pytest.fixture
def uploader_headers(make_user, login):
    """Session headers of a user holding the uploader and user roles."""
    return bearer(login(make_user(roles=["uploader", "user"])))


def test_create_shows_the_secret_once_and_stores_only_its_hash(testapp, uploader_headers, fetch):
    response = testapp.post_json(TOKENS, {"name": "ci", "expires_in_days": 30}, headers=uploader_headers, status=201)

    created = response.json
    assert created["token"].startswith("dpt_")
    assert created["roles"] == ["uploader", "user"]
    assert created["last_used_at"] is None
    stored = fetch(lambda s: s.get(ApiToken, created["id"]))
    assert stored.token_hash == hashlib.sha256(created["token"].encode()).hexdigest()
    assert created["token"] not in (stored.token_hash, stored.name)
    assert timedelta(days=29, hours=23) < stored.expires_at - utcnow() <= timedelta(days=30)
    listed = testapp.get(TOKENS, headers=uploader_headers).json
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0]


def test_a_token_works_as_a_bearer_token_and_records_its_last_use(testapp, uploader_headers, fetch):
    created = testapp.post_json(TOKENS, {"name": "ci"}, headers=uploader_headers).json

    me = testapp.get(ME, headers=bearer(created["token"]))

    assert me.json["roles"] == ["uploader", "user"]
    assert created["expires_at"] is None
    assert fetch(lambda s: s.get(ApiToken, created["id"]).last_used_at) is not None


@pytest.mark.robustness("auth attacks")
def test_a_token_cannot_carry_roles_its_owner_lacks(testapp, uploader_headers, fetch):
    response = testapp.post_json(TOKENS, {"name": "x", "roles": ["admin"]}, headers=uploader_headers, status=403)

    assert response.json["fields"] == {"roles": ["Not held by you: admin."]}
    assert fetch(lambda s: s.scalars(select(ApiToken)).all()) == []


def test_a_narrowed_admin_token_is_not_an_admin(testapp, admin_headers):
    token = testapp.post_json(TOKENS, {"name": "read-only", "roles": ["user"]}, headers=admin_headers).json["token"]

    testapp.get("/api/v1/users", headers=bearer(token), status=403)
    testapp.get(ME, headers=bearer(token), status=200)


def test_a_token_loses_roles_its_owner_loses(testapp, admin_headers, make_user, login):
    owner = make_user(roles=["admin"])
    token = testapp.post_json(TOKENS, {"name": "ops"}, headers=bearer(login(owner))).json["token"]
    testapp.get("/api/v1/users", headers=bearer(token), status=200)

    testapp.patch_json(f"/api/v1/users/{owner.id}", {"roles": ["user"]}, headers=admin_headers)

    testapp.get("/api/v1/users", headers=bearer(token), status=403)


@pytest.mark.robustness("auth attacks")
def test_an_expired_token_is_refused(testapp, uploader_headers, app):
    created = testapp.post_json(TOKENS, {"name": "old", "expires_in_days": 1}, headers=uploader_headers).json
    with app.app_context(), manager:
        db.session.get(ApiToken, created["id"]).expires_at = utcnow() - timedelta(seconds=1)

    testapp.get(ME, headers=bearer(created["token"]), status=401)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "expires_in_days": 1.5}, "expires_in_days"),
        ({"name": "x", "expires_in_days": "7"}, "expires_in_days"),
    ],
)
def test_invalid_token_requests_are_validation_errors(testapp, uploader_headers, payload, field):
    response = testapp.post_json(TOKENS, payload, headers=uploader_headers, status=422)

    assert field in response.json["fields"]


def test_an_api_token_cannot_create_tokens(testapp, uploader_headers, fetch):
    token = testapp.post_json(TOKENS, {"name": "short", "expires_in_days": 1}, headers=uploader_headers).json["token"]

    response = testapp.post_json(TOKENS, {"name": "forever"}, headers=bearer(token), status=403)

    assert "login session" in response.json["message"]
    assert [t.name for t in fetch(lambda s: s.scalars(select(ApiToken)).all())] == ["short"]


@pytest.mark.robustness("auth attacks")
def test_revoking_a_token_stops_it_at_once(testapp, uploader_headers):
    created = testapp.post_json(TOKENS, {"name": "ci"}, headers=uploader_headers).json

    testapp.delete(f"{TOKENS}/{created['id']}", headers=uploader_headers, status=204)

    testapp.get(ME, headers=bearer(created["token"]), status=401)
    assert testapp.get(TOKENS, headers=uploader_headers).json == []


@pytest.mark.robustness("auth attacks")
def test_someone_elses_token_cannot_be_revoked_and_looks_missing(testapp, uploader_headers, make_user, login):
    created = testapp.post_json(TOKENS, {"name": "ci"}, headers=uploader_headers).json
    stranger = bearer(login(make_user()))

    testapp.delete(f"{TOKENS}/{created['id']}", headers=stranger, status=404)
    testapp.delete(f"{TOKENS}/{uuid.uuid4()}", headers=stranger, status=404)

    testapp.get(ME, headers=bearer(created["token"]), status=200)


def test_logout_with_an_api_token_revokes_that_token(testapp, uploader_headers):
    token = testapp.post_json(TOKENS, {"name": "ci"}, headers=uploader_headers).json["token"]

    testapp.post("/api/v1/auth/logout", headers=bearer(token), status=204)

    testapp.get(ME, headers=bearer(token), status=401)
    testapp.get(ME, headers=uploader_headers, status=200)
