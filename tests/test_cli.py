"""`flask users create-admin`, the first-start admin from ADMIN_EMAIL/ADMIN_PASSWORD, and
what `flask storage check` says about recent files and about a store that does not answer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from app.config import BASE_DIR
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


def test_storage_check_counts_the_files_its_grace_period_skipped(app, uploader_headers, upload, disk):
    upload(uploader_headers)  # a row with its file: checked whatever its age
    root = Path(app.config["UPLOAD_DIR"])
    (root / "objects" / "ab").mkdir(exist_ok=True)
    (root / "objects" / "ab" / "abandoned-object-1").write_bytes(b"left by a crash")
    (root / "staging" / "abandoned-staged-1").write_bytes(b"left by a crash")
    runner = app.test_cli_runner()

    default = runner.invoke(args=["storage", "check"])
    everything = runner.invoke(args=["storage", "check", "--grace", "0"])

    assert default.exit_code == 0, default.output
    assert (
        "files younger than the 1 h grace period, not checked: 2 "
        "(they may be uploads in progress; --grace 0 checks them too)"
    ) in default.output.splitlines()
    assert "consistent" in default.output.splitlines()
    assert everything.exit_code == 1, everything.output
    assert "files without an upload row: 1" in everything.output
    assert "abandoned staged files: 1" in everything.output
    assert "not checked" not in everything.output
    # Nothing was removed, nor could be: without --repair the report does not mention it.
    assert "removed by --repair" not in default.output + everything.output
    repaired = runner.invoke(args=["storage", "check", "--grace", "0", "--repair"])
    assert "removed by --repair: 2" in repaired.output.splitlines()


def test_storage_check_names_the_grace_period_in_the_unit_it_was_given(app):
    result = app.test_cli_runner().invoke(args=["storage", "check", "--grace", "300"])

    assert "files younger than the 5 min grace period, not checked: 0" in result.output.splitlines()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable_s3(port: int) -> dict[str, str]:
    return {
        "STORAGE_BACKEND": "s3",
        "S3_BUCKET": "depot-down",
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "S3_ACCESS_KEY_ID": "test",
        "S3_SECRET_ACCESS_KEY": "test",
    }


def test_storage_check_on_an_unreachable_s3_store_says_so_in_one_line(app_factory):
    port = closed_port()
    app = app_factory(**unreachable_s3(port))

    result = app.test_cli_runner().invoke(args=["storage", "check"])

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # not an unhandled error
    assert result.output.splitlines() == [
        f"Error: the file store (S3 bucket 'depot-down' at http://127.0.0.1:{port}) could not be read: "
        "listing failed: EndpointConnectionError"
    ]


def test_storage_check_on_a_local_folder_it_cannot_use_says_so_in_one_line(app_factory, tmp_path):
    not_a_folder = tmp_path / "uploads-is-a-file"
    not_a_folder.write_bytes(b"")
    app = app_factory(UPLOAD_DIR=str(not_a_folder))

    result = app.test_cli_runner().invoke(args=["storage", "check"])

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.output.splitlines() == [
        f"Error: the file store (local folder {not_a_folder}) could not be read: opening the folder failed: ENOTDIR"
    ]


def test_the_real_flask_command_on_an_unreachable_s3_store_prints_no_traceback(tmp_path):
    environ = {
        **os.environ,
        "DEPOT_ENV": "development",
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/depot.sqlite3",
        **unreachable_s3(closed_port()),
    }
    flask = [str(Path(sys.executable).parent / "flask"), "--app", "autoapp"]
    run = {"cwd": BASE_DIR, "env": environ, "capture_output": True, "text": True, "timeout": 120}
    assert subprocess.run([*flask, "db", "upgrade"], **run).returncode == 0

    done = subprocess.run([*flask, "storage", "check"], **run)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout == ""
    assert [line for line in done.stderr.splitlines() if "could not be read" in line] == [done.stderr.strip()]
