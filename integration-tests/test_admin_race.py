"""The last-admin rule holds under concurrency on PostgreSQL (row locks, READ COMMITTED)."""

from __future__ import annotations

import threading

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select

from app import create_app
from app.config import TestingConfig
from app.exceptions import Conflict
from app.extensions import db
from app.models import Role, User, UserRole
from app.services.principal import Principal
from app.services.users import UserService

ROUNDS = 20


@pytest.fixture
def pg_app(fresh_database_url, tmp_path):
    """A Depot app on its own empty, migrated PostgreSQL database."""
    app = create_app(TestingConfig({"DATABASE_URL": fresh_database_url, "DATA_DIR": str(tmp_path)}))
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


def _active_admins(app) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count())
            .select_from(User)
            .join(UserRole, UserRole.user_id == User.id)
            .where(UserRole.role == Role.ADMIN.value, User.active.is_(True))
        )


@pytest.mark.parametrize("change", [{"roles": ["user"]}, {"active": False}])
def test_two_admins_demoting_each_other_at_once_leave_one_admin(pg_app, change):
    with pg_app.app_context():
        users = pg_app.injector.get(UserService)
        a = users.create_admin("a@example.com", "password one")
        b = users.create_admin("b@example.com", "password two")
    as_admin = {user.id: Principal(user_id=user.id, roles=frozenset({"admin"})) for user in (a, b)}

    for _ in range(ROUNDS):
        barrier = threading.Barrier(2)
        outcomes = []

        def demote(actor, target, barrier=barrier, outcomes=outcomes):
            with pg_app.app_context():
                barrier.wait()
                try:
                    pg_app.injector.get(UserService).update_user(as_admin[actor.id], target.id, **change)
                    outcomes.append("demoted")
                except Conflict:
                    outcomes.append("refused")

        threads = [threading.Thread(target=demote, args=pair) for pair in ((a, b), (b, a))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert sorted(outcomes) == ["demoted", "refused"]
        assert _active_admins(pg_app) == 1
        with pg_app.app_context():  # restore both admins for the next round
            for user in (a, b):
                users.update_user(
                    as_admin[a.id] if user is b else as_admin[b.id], user.id, roles=["admin"], active=True
                )
