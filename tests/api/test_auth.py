"""Registration, login, logout and token checks over WebTest."""

from __future__ import annotations

import json
import time

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from app.models import AuthSession, User
from app.services import passwords
from app.services.auth import SESSION_TOKEN_SALT
from tests.helpers import PASSWORD, bearer, send_chunked, without_request_id

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
ME = "/api/v1/users/me"


def count_users(fetch) -> int:
    return fetch(lambda s: s.scalar(select(func.count()).select_from(User)))


# --- registration -------------------------------------------------------------------------


def test_register_creates_a_plain_user_with_a_hashed_password(testapp, fetch):
    response = testapp.post_json(
        REGISTER, {"email": "Ada@Example.com", "password": PASSWORD, "name": "Ada"}, status=201
    )

    body = response.json
    assert body["email"] == "ada@example.com"
    assert body["roles"] == ["user"]
    assert body["active"] is True
    assert set(body) == {"id", "email", "name", "roles", "active", "created_at", "updated_at"}
    stored = fetch(lambda s: s.get(User, body["id"]))
    assert stored.password_hash.startswith("scrypt:")
    assert PASSWORD not in stored.password_hash


def test_register_is_refused_when_registration_is_disabled(app_factory, fetch):
    from webtest import TestApp

    testapp = TestApp(app_factory(ALLOW_REGISTRATION="false"))

    response = testapp.post_json(REGISTER, {"email": "a@example.com", "password": PASSWORD, "name": "A"}, status=403)

    assert response.json["error"] == "registration_closed"
    assert count_users(fetch) == 0


def test_register_with_a_taken_email_in_other_case_is_a_conflict(testapp, make_user, fetch):
    make_user(email="taken@example.com")

    response = testapp.post_json(
        REGISTER, {"email": "TAKEN@example.com", "password": PASSWORD, "name": "B"}, status=409
    )

    assert response.json == {
        "status": 409,
        "error": "conflict",
        "message": "A user with this email already exists.",
        "fields": {"email": ["Already registered."]},
        "request_id": response.headers["X-Request-ID"],
    }
    assert count_users(fetch) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "a@example.com", "password": "short", "name": "A"}, "password"),
        ({"email": "a@example.com", "password": PASSWORD, "name": ""}, "name"),
        ({"email": "a@example.com", "password": PASSWORD, "name": "bad\u202ename"}, "name"),
        ({"email": "a@example.com", "password": PASSWORD}, "name"),
        ({"email": "a@example.com", "password": PASSWORD, "name": "A", "roles": ["admin"]}, "roles"),
        ({"email": "a@example.com", "password": PASSWORD, "name": "A", "id": "x"}, "id"),
    ],
)
def test_register_rejects_invalid_fields_and_fields_the_client_does_not_own(testapp, fetch, payload, field):
    response = testapp.post_json(REGISTER, payload, status=422)

    assert response.json["status"] == 422
    assert response.json["error"] == "validation_failed"
    assert field in response.json["fields"]
    assert count_users(fetch) == 0


def test_a_body_that_is_not_json_is_unsupported_media_type(testapp):
    response = testapp.post(
        REGISTER, "email=a@example.com", content_type="application/x-www-form-urlencoded", status=415
    )

    assert response.json["error"] == "unsupported_media_type"


def test_malformed_json_is_a_bad_request(testapp):
    response = testapp.post(REGISTER, '{"email": ', content_type="application/json", status=400)

    assert response.json["error"] == "bad_request"
    assert response.json["message"] == "Invalid JSON body."


def test_deeply_nested_json_is_a_bad_request_not_a_crash(testapp):
    response = testapp.post(REGISTER, "[" * 100_000 + "]" * 100_000, content_type="application/json", status=400)

    assert response.json["error"] == "bad_request"


def test_a_json_body_over_the_limit_is_refused_with_413(testapp):
    body = json.dumps({"email": "a@example.com", "password": PASSWORD, "name": "x" * (2 * 1024 * 1024)})

    response = testapp.post(REGISTER, body, content_type="application/json", status=413)

    assert response.json["error"] == "payload_too_large"


def test_a_chunked_json_body_over_the_limit_is_refused_not_truncated(testapp, fetch):
    # Valid JSON even when cut at the limit: it must still be refused, never half-read.
    body = b'{"email": "a@example.com", "password": "' + PASSWORD.encode() + b'", "name": "A"}'
    body += b" " * (2 * 1024 * 1024)

    response = send_chunked(testapp, REGISTER, body, "application/json", status=413)

    assert response.json["error"] == "payload_too_large"
    assert count_users(fetch) == 0


def test_a_small_chunked_json_body_is_accepted(testapp):
    body = json.dumps({"email": "chunked@example.com", "password": PASSWORD, "name": "C"}).encode()

    response = send_chunked(testapp, REGISTER, body, "application/json", status=201)

    assert response.json["email"] == "chunked@example.com"


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "null", "42"])
def test_a_json_body_that_is_not_an_object_is_a_bad_request(testapp, body):
    response = testapp.post(REGISTER, body, content_type="application/json", status=400)

    assert response.json["message"] == "The JSON body must be an object."


def test_a_json_number_too_long_to_read_is_a_bad_request(testapp):
    body = '{"email": "a@example.com", "password": "x", "name": ' + "9" * 5000 + "}"

    response = testapp.post(REGISTER, body, content_type="application/json", status=400)

    assert response.json["error"] == "bad_request"


# --- login --------------------------------------------------------------------------------


def test_login_returns_a_bearer_token_that_opens_the_profile(testapp, make_user):
    user = make_user(email="login@example.com")

    response = testapp.post_json(TOKEN, {"email": "LOGIN@example.com", "password": PASSWORD})

    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["user"]["id"] == user.id
    me = testapp.get(ME, headers=bearer(body["access_token"]))
    assert me.json["email"] == "login@example.com"


def test_wrong_password_and_unknown_email_give_the_same_401(testapp, make_user):
    user = make_user()

    wrong = testapp.post_json(TOKEN, {"email": user.email, "password": "wrong password"}, status=401)
    unknown = testapp.post_json(TOKEN, {"email": "nobody@example.com", "password": "wrong password"}, status=401)

    assert (
        without_request_id(wrong.json)
        == without_request_id(unknown.json)
        == {
            "status": 401,
            "error": "unauthorized",
            "message": "Invalid email or password.",
            "fields": {},
        }
    )
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert unknown.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_email_still_runs_the_password_kdf(testapp, monkeypatch):
    # Equal work is what makes the two failures take about the same time.
    checked = []
    real_check = passwords.check_password_hash
    monkeypatch.setattr(passwords, "check_password_hash", lambda h, p: checked.append(h) or real_check(h, p))

    testapp.post_json(TOKEN, {"email": "nobody@example.com", "password": "whatever1"}, status=401)

    assert len(checked) == 1
    assert checked[0].startswith("scrypt:")


def test_an_inactive_user_cannot_log_in(testapp, make_user):
    user = make_user(active=False)

    response = testapp.post_json(TOKEN, {"email": user.email, "password": PASSWORD}, status=401)

    assert response.json["message"] == "Invalid email or password."


def test_login_with_control_characters_in_the_email_is_a_validation_error(testapp):
    response = testapp.post_json(TOKEN, {"email": "a\u0000b@example.com", "password": "whatever1"}, status=422)

    assert "email" in response.json["fields"]


def test_login_while_the_database_is_down_is_503(tmp_path):
    from webtest import TestApp

    from app import create_app
    from app.config import TestingConfig

    missing = tmp_path / "gone" / "depot.sqlite3"
    app = create_app(TestingConfig({"DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{missing}"}))

    response = TestApp(app).post_json(TOKEN, {"email": "a@example.com", "password": "whatever1"}, status=503)

    assert response.json["error"] == "unavailable"


def test_login_with_missing_fields_is_a_validation_error(testapp):
    response = testapp.post_json(TOKEN, {"email": "a@example.com"}, status=422)

    assert response.json["fields"] == {"password": ["Missing data for required field."]}


@pytest.mark.robustness("auth attacks")
def test_login_is_rate_limited_with_retry_after(app_factory, make_user):
    from webtest import TestApp

    testapp = TestApp(app_factory(RATELIMIT_ENABLED="true", AUTH_RATE_LIMIT="3 per minute"))
    payload = {"email": "nobody@example.com", "password": "wrong password"}
    for _ in range(3):
        testapp.post_json(TOKEN, payload, status=401)

    response = testapp.post_json(TOKEN, payload, status=429)

    assert response.json["error"] == "rate_limited"
    assert response.json["status"] == 429
    assert response.json["message"] == "Too many requests: at most 3 per 1 minute."  # a sentence, not "3 per 1 minute"
    assert int(response.headers["Retry-After"]) > 0


# --- bearer tokens ------------------------------------------------------------------------


def test_a_missing_token_is_401_with_a_bearer_challenge(testapp):
    response = testapp.get(ME, status=401)

    assert response.headers["WWW-Authenticate"] == 'Bearer realm="depot"'
    assert response.json["error"] == "unauthorized"


@pytest.mark.robustness("auth attacks")
@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"),  # tampered signature
        lambda t: t[: len(t) // 2],  # truncated
        lambda t: "not-a-token",
        lambda t: "dpt_" + "x" * 43,  # unknown API token
    ],
)
def test_tampered_or_bogus_tokens_are_refused(testapp, make_user, login, mangle):
    token = login(make_user())

    testapp.get(ME, headers=bearer(mangle(token)), status=401)


@pytest.mark.robustness("auth attacks")
def test_a_token_signed_with_another_secret_is_refused(testapp, make_user, login, fetch):
    token = login(make_user())
    session_id = URLSafeTimedSerializer("testing-secret-key", salt=SESSION_TOKEN_SALT).loads(token)["sid"]
    forged = URLSafeTimedSerializer("another-secret", salt=SESSION_TOKEN_SALT).dumps({"sid": session_id})

    testapp.get(ME, headers=bearer(forged), status=401)


@pytest.mark.robustness("auth attacks")
def test_an_expired_session_token_is_refused(app_factory, make_user):
    from webtest import TestApp

    testapp = TestApp(app_factory(TOKEN_TTL_SECONDS="1"))
    token = testapp.post_json(TOKEN, {"email": make_user().email, "password": PASSWORD}).json["access_token"]
    testapp.get(ME, headers=bearer(token), status=200)

    time.sleep(2.1)

    testapp.get(ME, headers=bearer(token), status=401)


# --- logout -------------------------------------------------------------------------------


@pytest.mark.robustness("auth attacks")
def test_logout_revokes_that_token_at_once_and_only_that_one(testapp, make_user, login, fetch):
    user = make_user()
    first, second = login(user), login(user)

    testapp.post("/api/v1/auth/logout", headers=bearer(first), status=204)

    testapp.get(ME, headers=bearer(first), status=401)
    testapp.get(ME, headers=bearer(second), status=200)
    assert fetch(lambda s: s.scalar(select(func.count()).select_from(AuthSession))) == 1


def test_logout_all_revokes_every_session_and_api_token_of_the_user(testapp, make_user, login, fetch):
    user, other = make_user(), make_user()
    first, second, others = login(user), login(user), login(other)
    api_token = testapp.post_json("/api/v1/users/me/tokens", {"name": "ci"}, headers=bearer(first)).json["token"]

    testapp.post("/api/v1/auth/logout-all", headers=bearer(second), status=204)

    for token in (first, second, api_token):
        testapp.get(ME, headers=bearer(token), status=401)
    testapp.get(ME, headers=bearer(others), status=200)


def test_logout_needs_a_token(testapp):
    testapp.post("/api/v1/auth/logout", status=401)
