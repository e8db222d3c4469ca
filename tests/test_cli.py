"""`flask users create-admin` and the first-start admin from ADMIN_EMAIL/ADMIN_PASSWORD."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import User
from tests.helpers import PASSWORD


def test_create_admin_reads_the_password_from_stdin(app, fetch, testapp):
    result = app.test_cli_runner().invoke(
        args=["users", "create-admin", "Root@Example.com", "--password-stdin"], input=PASSWORD + "\n"
    )

    assert result.exit_code == 0, result.output
    assert "Created admin root@example.com" in result.output
    assert PASSWORD not in result.output
    assert fetch(lambda s: s.scalar(select(User).where(User.email == "root@example.com")).roles) == ["admin"]
    testapp.post_json("/api/v1/auth/token", {"email": "root@example.com", "password": PASSWORD}, status=200)


def test_create_admin_prompts_for_the_password_twice(app, fetch):
    result = app.test_cli_runner().invoke(
        args=["users", "create-admin", "root@example.com"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )

    assert result.exit_code == 0, result.output
    assert fetch(lambda s: s.scalar(select(User.id).where(User.email == "root@example.com"))) is not None


def test_create_admin_refuses_a_short_password_and_a_taken_email(app, make_user):
    make_user(email="taken@example.com")
    runner = app.test_cli_runner()

    short = runner.invoke(args=["users", "create-admin", "a@example.com", "--password-stdin"], input="short\n")
    taken = runner.invoke(args=["users", "create-admin", "taken@example.com", "--password-stdin"], input=PASSWORD)

    assert short.exit_code != 0 and "8 to 256 characters" in short.output
    assert taken.exit_code != 0 and "already exists" in taken.output


def test_first_start_creates_the_configured_admin_once(app_factory, fetch):
    app_factory()  # migrates the database, as `flask db upgrade` would
    app_factory(ADMIN_EMAIL="boot@example.com", ADMIN_PASSWORD=PASSWORD)
    app_factory(ADMIN_EMAIL="second@example.com", ADMIN_PASSWORD=PASSWORD)

    admins = fetch(lambda s: [(u.email, u.roles) for u in s.scalars(select(User))])
    assert admins == [("boot@example.com", ["admin"])]


def test_first_start_with_the_database_down_still_starts(tmp_path):
    from webtest import TestApp

    from app import create_app
    from app.config import TestingConfig

    environ = {
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/missing-folder/depot.sqlite3",
        "ADMIN_EMAIL": "boot@example.com",
        "ADMIN_PASSWORD": PASSWORD,
    }

    app = create_app(TestingConfig(environ))

    assert TestApp(app).get("/healthz").json == {"status": "ok"}
    TestApp(app).get("/readyz", status=503)


def test_first_start_on_an_unmigrated_database_waits_for_the_migration(tmp_path, fetch):
    from flask_migrate import upgrade

    from app import create_app
    from app.config import TestingConfig

    environ = {
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3",
        "ADMIN_EMAIL": "boot@example.com",
        "ADMIN_PASSWORD": PASSWORD,
    }
    unmigrated = create_app(TestingConfig(environ))  # starts cleanly, creating nothing yet
    with unmigrated.app_context():
        upgrade()
        assert db.session.scalar(select(User)) is None

    restarted = create_app(TestingConfig(environ))

    with restarted.app_context():
        assert db.session.scalar(select(User.email)) == "boot@example.com"
        db.engine.dispose()
