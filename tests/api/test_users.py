"""The caller's own profile and the admin's user management over WebTest."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.models import ApiToken, AuthSession, User, UserRole
from tests.helpers import PASSWORD, bearer

ME = "/api/v1/users/me"
USERS = "/api/v1/users"


def user_url(user_id: str) -> str:
    return f"{USERS}/{user_id}"


# --- /users/me ----------------------------------------------------------------------------


def test_me_returns_the_callers_profile(testapp, make_user, login):
    user = make_user(roles=["uploader", "user"], name="Grace")

    response = testapp.get(ME, headers=bearer(login(user)))

    assert response.json["id"] == user.id
    assert response.json["name"] == "Grace"
    assert response.json["roles"] == ["uploader", "user"]
    assert "password_hash" not in response.json


def test_patch_me_changes_the_name(testapp, make_user, login, fetch):
    user = make_user()

    response = testapp.patch_json(ME, {"name": "New Name"}, headers=bearer(login(user)))

    assert response.json["name"] == "New Name"
    assert fetch(lambda s: s.get(User, user.id).name) == "New Name"


@pytest.mark.parametrize(
    "payload",
    [
        {"roles": ["admin"]},
        {"active": False},
        {"id": str(uuid.uuid4())},
        {"email": "new@example.com"},
        {"password_hash": "x"},
        {"created_at": "2020-01-01T00:00:00Z"},
    ],
)
def test_patch_me_cannot_set_fields_the_user_does_not_own(testapp, make_user, login, fetch, payload):
    user = make_user()

    response = testapp.patch_json(ME, payload, headers=bearer(login(user)), status=422)

    assert list(response.json["fields"]) == list(payload)
    stored = fetch(lambda s: s.get(User, user.id))
    assert (stored.roles, stored.active, stored.email, stored.created_at) == (
        ["user"],
        True,
        user.email,
        user.created_at,
    )


def test_password_change_needs_the_current_password(testapp, make_user, login):
    headers = bearer(login(make_user()))

    missing = testapp.patch_json(ME, {"password": "a new password"}, headers=headers, status=422)
    wrong = testapp.patch_json(
        ME, {"password": "a new password", "current_password": "not it at all"}, headers=headers, status=422
    )

    assert missing.json["fields"] == {"current_password": ["Required to change the password."]}
    assert wrong.json["fields"] == {"current_password": ["The current password is incorrect."]}


def test_password_change_ends_every_other_session_but_keeps_this_one(testapp, make_user, login):
    user = make_user()
    current, other = login(user), login(user)

    testapp.patch_json(ME, {"password": "a new password", "current_password": PASSWORD}, headers=bearer(current))

    testapp.get(ME, headers=bearer(current), status=200)
    testapp.get(ME, headers=bearer(other), status=401)
    testapp.post_json("/api/v1/auth/token", {"email": user.email, "password": PASSWORD}, status=401)
    testapp.post_json("/api/v1/auth/token", {"email": user.email, "password": "a new password"}, status=200)


# --- admin: listing -----------------------------------------------------------------------


def test_admin_lists_users_page_by_page(testapp, admin, admin_headers, make_user):
    others = [make_user() for _ in range(4)]

    first = testapp.get(USERS, {"page": 1, "per_page": 2}, headers=admin_headers).json
    third = testapp.get(USERS, {"page": 3, "per_page": 2}, headers=admin_headers).json

    assert (first["page"], first["per_page"], first["total"]) == (1, 2, 5)
    assert [u["id"] for u in first["items"]] == [admin.id, others[0].id]
    assert [u["id"] for u in third["items"]] == [others[3].id]


def test_per_page_is_capped_at_100(testapp, admin_headers):
    body = testapp.get(USERS, {"per_page": 500}, headers=admin_headers).json

    assert body["per_page"] == 100
    assert body["page"] == 1


@pytest.mark.parametrize("query", [{"page": 0}, {"per_page": 0}, {"page": "abc"}])
def test_invalid_paging_is_a_validation_error(testapp, admin_headers, query):
    response = testapp.get(USERS, query, headers=admin_headers, status=422)

    assert set(response.json["fields"]) == set(query)


@pytest.mark.parametrize("roles", [["user"], ["uploader"]])
def test_non_admins_cannot_list_users(testapp, make_user, login, roles):
    response = testapp.get(USERS, headers=bearer(login(make_user(roles=roles))), status=403)

    assert response.json["error"] == "forbidden"


# --- admin: create, read, update, delete --------------------------------------------------


def test_admin_creates_a_user_with_roles(testapp, admin_headers, fetch):
    response = testapp.post_json(
        USERS,
        {"email": "New@Example.com", "password": PASSWORD, "name": "New", "roles": ["uploader"]},
        headers=admin_headers,
        status=201,
    )

    body = response.json
    assert body["roles"] == ["uploader"]
    assert response.headers["Location"].endswith(user_url(body["id"]))
    assert fetch(lambda s: s.get(User, body["id"]).email) == "new@example.com"
    testapp.post_json("/api/v1/auth/token", {"email": "new@example.com", "password": PASSWORD}, status=200)


def test_admin_create_defaults_to_the_user_role(testapp, admin_headers):
    body = testapp.post_json(
        USERS, {"email": "d@example.com", "password": PASSWORD, "name": "D"}, headers=admin_headers, status=201
    ).json

    assert body["roles"] == ["user"]


def test_admin_create_rejects_unknown_roles_and_taken_emails(testapp, admin, admin_headers):
    bad_role = testapp.post_json(
        USERS,
        {"email": "x@example.com", "password": PASSWORD, "name": "X", "roles": ["root"]},
        headers=admin_headers,
        status=422,
    )
    taken = testapp.post_json(
        USERS, {"email": admin.email, "password": PASSWORD, "name": "X"}, headers=admin_headers, status=409
    )

    assert "roles" in bad_role.json["fields"]
    assert taken.json["error"] == "conflict"


def test_non_admin_cannot_create_users(testapp, make_user, login, fetch):
    headers = bearer(login(make_user(roles=["uploader"])))

    testapp.post_json(USERS, {"email": "x@example.com", "password": PASSWORD, "name": "X"}, headers=headers, status=403)

    assert fetch(lambda s: s.scalar(select(User).where(User.email == "x@example.com"))) is None


def test_admin_reads_a_user_and_unknown_ids_are_404(testapp, admin_headers, make_user):
    user = make_user()

    assert testapp.get(user_url(user.id), headers=admin_headers).json["email"] == user.email
    assert testapp.get(user_url(uuid.uuid4()), headers=admin_headers, status=404).json["error"] == "not_found"
    testapp.get(user_url("not-a-uuid"), headers=admin_headers, status=404)


def test_a_role_change_applies_to_the_users_next_request(testapp, admin_headers, make_user, login):
    user = make_user()
    headers = bearer(login(user))
    testapp.get(USERS, headers=headers, status=403)

    testapp.patch_json(user_url(user.id), {"roles": ["admin"]}, headers=admin_headers)
    testapp.get(USERS, headers=headers, status=200)

    testapp.patch_json(user_url(user.id), {"roles": ["user"]}, headers=admin_headers)
    testapp.get(USERS, headers=headers, status=403)


def test_deactivation_locks_out_the_users_tokens_on_the_next_request(testapp, admin_headers, make_user, login):
    user = make_user()
    session_headers = bearer(login(user))
    api_token = testapp.post_json("/api/v1/users/me/tokens", {"name": "ci"}, headers=session_headers).json["token"]

    response = testapp.patch_json(user_url(user.id), {"active": False}, headers=admin_headers)

    assert response.json["active"] is False
    testapp.get(ME, headers=session_headers, status=401)
    testapp.get(ME, headers=bearer(api_token), status=401)
    testapp.patch_json(user_url(user.id), {"active": True}, headers=admin_headers)
    testapp.get(ME, headers=session_headers, status=200)


def test_admin_update_rejects_fields_it_does_not_manage(testapp, admin_headers, make_user):
    user = make_user()

    response = testapp.patch_json(user_url(user.id), {"email": "x@example.com"}, headers=admin_headers, status=422)

    assert list(response.json["fields"]) == ["email"]


@pytest.mark.parametrize("change", [{"roles": ["user"]}, {"active": False}])
def test_the_last_admin_cannot_be_demoted_or_deactivated(testapp, admin, admin_headers, fetch, change):
    response = testapp.patch_json(user_url(admin.id), change, headers=admin_headers, status=409)

    assert response.json["error"] == "conflict"
    stored = fetch(lambda s: s.get(User, admin.id))
    assert (stored.roles, stored.active) == (["admin"], True)


def test_the_last_admin_cannot_be_deleted(testapp, admin, admin_headers, fetch):
    testapp.delete(user_url(admin.id), headers=admin_headers, status=409)

    assert fetch(lambda s: s.get(User, admin.id)) is not None


def test_an_admin_can_be_demoted_while_another_remains(testapp, admin_headers, make_user):
    second = make_user(roles=["admin"])

    response = testapp.patch_json(user_url(second.id), {"roles": ["uploader"]}, headers=admin_headers)

    assert response.json["roles"] == ["uploader"]


def test_an_inactive_admin_does_not_count_as_the_remaining_admin(testapp, admin, admin_headers, make_user):
    make_user(roles=["admin"], active=False)

    testapp.patch_json(user_url(admin.id), {"roles": ["user"]}, headers=admin_headers, status=409)


def test_deleting_a_user_removes_their_roles_sessions_and_tokens(testapp, admin_headers, make_user, login, fetch):
    user = make_user(roles=["uploader"])
    headers = bearer(login(user))
    testapp.post_json("/api/v1/users/me/tokens", {"name": "ci"}, headers=headers)

    testapp.delete(user_url(user.id), headers=admin_headers, status=204)

    testapp.get(ME, headers=headers, status=401)
    for model, column in ((User, User.id), (UserRole, UserRole.user_id)):
        assert (
            fetch(lambda s, m=model, c=column: s.scalar(select(func.count()).select_from(m).where(c == user.id))) == 0
        )
    for model in (AuthSession, ApiToken):
        assert fetch(lambda s, m=model: s.scalar(select(func.count()).select_from(m).where(m.user_id == user.id))) == 0
    testapp.delete(user_url(user.id), headers=admin_headers, status=404)
