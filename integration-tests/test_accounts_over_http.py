"""Accounts, tokens and admin flows over real HTTP against gunicorn and PostgreSQL."""

from __future__ import annotations

import uuid

PASSWORD = "integration password"


def unique_email() -> str:
    return f"it-{uuid.uuid4().hex[:10]}@example.com"


def test_probes_answer(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ok", "checks": {"database": "ok", "storage": "ok"}}


def test_openapi_spec_and_swagger_ui_are_served(api):
    assert "/api/v1/users/me" in api.get("/api/v1/openapi.json").json()["paths"]
    assert api.get("/api/v1/docs/").status_code == 200


def test_register_login_and_me(api):
    email = unique_email()

    registered = api.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "IT"})
    me = api.login(email, PASSWORD).get("/api/v1/users/me")

    assert registered.status_code == 201, registered.text
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert me.json()["roles"] == ["user"]


def test_wrong_password_is_a_json_401_with_challenge(api):
    response = api.post("/api/v1/auth/token", json={"email": unique_email(), "password": "nope nope"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"] == "unauthorized"


def test_admin_manages_a_user_and_changes_apply_on_the_next_request(api, admin_api):
    email = unique_email()
    created = admin_api.post(
        "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "U", "roles": ["user"]}
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    user_api = api.login(email, PASSWORD)
    assert user_api.get("/api/v1/users").status_code == 403

    promoted = admin_api.patch(f"/api/v1/users/{user_id}", json={"roles": ["admin"]})
    assert promoted.status_code == 200
    assert user_api.get("/api/v1/users").status_code == 200

    listing = admin_api.get("/api/v1/users", params={"per_page": 1000}).json()
    assert listing["per_page"] == 100
    assert user_id in [u["id"] for u in listing["items"]]

    assert admin_api.patch(f"/api/v1/users/{user_id}", json={"active": False}).status_code == 200
    assert user_api.get("/api/v1/users/me").status_code == 401

    assert admin_api.delete(f"/api/v1/users/{user_id}").status_code == 204
    assert admin_api.get(f"/api/v1/users/{user_id}").status_code == 404


def test_api_token_lifecycle(api, admin_api):
    email = unique_email()
    admin_api.post("/api/v1/users", json={"email": email, "password": PASSWORD, "name": "CI", "roles": ["uploader"]})
    session = api.login(email, PASSWORD)

    created = session.post("/api/v1/users/me/tokens", json={"name": "ci", "expires_in_days": 7})
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    script = type(api)(api.base_url, token)

    assert script.get("/api/v1/users/me").json()["roles"] == ["uploader"]
    listed = session.get("/api/v1/users/me/tokens").json()
    assert listed[0]["last_used_at"] is not None
    assert "token" not in listed[0]

    assert session.delete(f"/api/v1/users/me/tokens/{created.json()['id']}").status_code == 204
    assert script.get("/api/v1/users/me").status_code == 401


def test_logout_is_seen_by_every_worker(api):
    email = unique_email()
    api.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "L"})
    session = api.login(email, PASSWORD)

    assert session.post("/api/v1/auth/logout").status_code == 204

    # Several requests, so both gunicorn workers answer at least once with high probability.
    assert {session.get("/api/v1/users/me").status_code for _ in range(20)} == {401}


def test_password_change_ends_other_sessions(api):
    email = unique_email()
    api.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "P"})
    current, other = api.login(email, PASSWORD), api.login(email, PASSWORD)

    changed = current.patch("/api/v1/users/me", json={"password": "a brand new password", "current_password": PASSWORD})

    assert changed.status_code == 200, changed.text
    assert current.get("/api/v1/users/me").status_code == 200
    assert other.get("/api/v1/users/me").status_code == 401


def test_errors_are_json_over_http(api):
    not_found = api.get("/api/v1/nope")
    bad_json = api.post("/api/v1/auth/token", data="{oops", headers={"Content-Type": "application/json"})

    assert not_found.status_code == 404 and not_found.json()["error"] == "not_found"
    assert bad_json.status_code == 400 and bad_json.json()["error"] == "bad_request"
