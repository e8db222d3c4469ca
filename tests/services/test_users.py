"""UserService rules, called directly inside an app context with the real transaction manager."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from app.exceptions import Conflict, Forbidden, NotFound, RegistrationClosed
from app.extensions import db
from app.models import Role, User
from app.services.principal import Principal
from app.services.users import UserService
from tests.helpers import PASSWORD


@pytest.fixture
def users(app):
    """UserService inside an app context (popped after the test)."""
    with app.app_context():
        yield app.injector.get(UserService)


def principal_of(user: User) -> Principal:
    return Principal(user_id=user.id, roles=frozenset(user.roles))


def test_emails_are_stored_lower_case_and_unique_case_insensitively(users):
    users.create_account(" Mixed@Example.COM ", PASSWORD, "M", ["user"])

    with pytest.raises(Conflict):
        users.create_account("mixed@example.com", PASSWORD, "M2", ["user"])
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_register_is_refused_when_disabled(app_factory):
    app = app_factory(ALLOW_REGISTRATION="0")
    with app.app_context(), pytest.raises(RegistrationClosed):
        app.injector.get(UserService).register("a@example.com", PASSWORD, "A")


def test_admin_operations_need_the_admin_role(users):
    uploader = users.create_account("u@example.com", PASSWORD, "U", ["uploader"])

    for call in (
        lambda: users.list_users(principal_of(uploader), page=1, per_page=10),
        lambda: users.get_user(principal_of(uploader), uploader.id),
        lambda: users.update_user(principal_of(uploader), uploader.id, roles=["admin"]),
        lambda: users.delete_user(principal_of(uploader), uploader.id),
        lambda: users.create_user(principal_of(uploader), "x@example.com", PASSWORD, "X", ["user"]),
    ):
        with pytest.raises(Forbidden):
            call()
    assert db.session.get(User, uploader.id).roles == ["uploader"]


def test_the_last_admin_rule_counts_only_active_admins(users):
    admin = users.create_admin("a@example.com", PASSWORD)
    other = users.create_admin("b@example.com", PASSWORD)

    users.update_user(principal_of(admin), other.id, active=False)

    with pytest.raises(Conflict):
        users.delete_user(principal_of(admin), admin.id)
    users.update_user(principal_of(admin), other.id, active=True)
    users.delete_user(principal_of(admin), admin.id)
    with pytest.raises(NotFound):
        users.get_user(principal_of(other), admin.id)


def test_a_failed_update_changes_nothing(users):
    admin = users.create_admin("a@example.com", PASSWORD)

    with pytest.raises(Conflict):
        users.update_user(principal_of(admin), admin.id, name="Renamed", roles=["user"])

    stored = db.session.get(User, admin.id)
    assert (stored.name, stored.roles) == ("Administrator", ["admin"])


def test_returned_models_marshal_without_touching_the_database(users):
    admin = users.create_admin("a@example.com", PASSWORD)
    for n in range(3):
        users.create_account(f"u{n}@example.com", PASSWORD, "U", ["user", "uploader"])
    page = users.list_users(principal_of(admin), page=1, per_page=10)
    statements = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    roles = [(user.email, user.roles, user.created_at) for user in page.items]

    assert len(roles) == 4 and roles[1][1] == ["uploader", "user"]
    assert statements == []


def test_initial_admin_is_created_only_when_there_are_no_users(users):
    first = users.ensure_initial_admin("root@example.com", PASSWORD)
    again = users.ensure_initial_admin("other@example.com", PASSWORD)

    assert first.roles == [Role.ADMIN.value]
    assert again is None
    assert db.session.scalar(select(func.count()).select_from(User)) == 1
