"""Fault injection on the whole upload path: after each failure the store stays consistent.

Each fault is injected where it cannot be caused for real in a test (a failing disk, a
failing database commit, a crash between the two commits); everything else is real: the
transaction manager, SQLite, the files on disk, and `flask storage check` to judge.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from zope.sqlalchemy.datamanager import SessionDataManager

from app.models import Upload
from app.storage import local
from app.storage.transactional import FileStoreDataManager

ROOT = Path(__file__).resolve().parents[2]


def storage_check(app, *args):
    result = app.test_cli_runner().invoke(args=["storage", "check", "--grace", "0", *args])
    return result.exit_code, result.output


def assert_consistent_and_empty(app, fetch, disk):
    assert fetch(lambda s: s.scalar(select(func.count()).select_from(Upload))) == 0
    assert disk() == {"objects": [], "staging": []}
    assert storage_check(app) == (0, storage_check(app)[1])
    assert "consistent" in storage_check(app)[1]


def fail_with(error):
    def raiser(*_args, **_kwargs):
        raise error

    return raiser


def on_database_commit_with_files(monkeypatch, fault):
    """Run `fault(real_commit, manager, txn)` instead of the database commit, in transactions
    where the file store takes part; other transactions (the token check) commit normally."""
    files_voted = []
    real_file_vote = FileStoreDataManager.tpc_vote
    real_db_vote = SessionDataManager.tpc_vote

    def file_vote(self, txn):
        real_file_vote(self, txn)
        files_voted.append(txn)

    def db_vote(self, txn):
        if txn not in files_voted:
            return real_db_vote(self, txn)
        return fault(real_db_vote, self, txn)

    monkeypatch.setattr(FileStoreDataManager, "tpc_vote", file_vote)
    monkeypatch.setattr(SessionDataManager, "tpc_vote", db_vote)


def fail_database_commits_with_files(monkeypatch, seen=None):
    """Make the database commit fail in transactions where the file store takes part."""

    def fail(_real_commit, _manager, _txn):
        if seen is not None:
            seen.append(True)
        raise RuntimeError("database commit failed")

    on_database_commit_with_files(monkeypatch, fail)


def test_a_failed_database_commit_leaves_no_row_and_no_file(app, upload, uploader_headers, fetch, disk, monkeypatch):
    objects_at_commit = []

    def look_then_fail(_real_commit, _manager, _txn):
        objects_at_commit.append(disk()["objects"])
        raise RuntimeError("database commit failed")

    on_database_commit_with_files(monkeypatch, look_then_fail)

    upload(uploader_headers, status=500)

    # When the database was asked to commit, the file was already durable and visible.
    assert [len(objects) for objects in objects_at_commit] == [1]
    assert_consistent_and_empty(app, fetch, disk)


def commit_then_lose_the_connection(monkeypatch):
    """The upload's commit goes through, then the connection drops before its reply is read."""

    def commit_then_fail(real_commit, manager, txn):
        real_commit(manager, txn)
        raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection unexpectedly"))

    on_database_commit_with_files(monkeypatch, commit_then_fail)


def test_a_commit_that_went_through_before_an_error_is_answered_201(
    app, upload, uploader_headers, fetch, disk, monkeypatch
):
    commit_then_lose_the_connection(monkeypatch)

    created = upload(uploader_headers, status=201).json

    monkeypatch.undo()
    rows = fetch(lambda s: s.scalars(select(Upload)).all())
    assert [(row.id, row.sha256) for row in rows] == [(created["id"], created["sha256"])]
    assert disk() == {"objects": [rows[0].storage_key], "staging": []}
    assert storage_check(app)[0] == 0


def test_a_commit_whose_outcome_cannot_be_learned_is_503_outcome_unknown(
    app, upload, uploader_headers, fetch, disk, monkeypatch
):
    commit_then_lose_the_connection(monkeypatch)
    # ...and the database stays unreachable, so no one can tell whether the row is there.
    real_get = Session.get

    def unreachable(self, entity, *args, **kwargs):
        if entity is Upload:
            raise OperationalError("SELECT", {}, ConnectionError("connection refused"))
        return real_get(self, entity, *args, **kwargs)

    monkeypatch.setattr(Session, "get", unreachable)

    answer = upload(uploader_headers, status=503).json

    assert answer["error"] == "outcome_unknown"
    assert "may have been stored" in answer["message"]
    monkeypatch.undo()
    # It was stored, and whole: the file was kept, because the row might exist.
    rows = fetch(lambda s: s.scalars(select(Upload)).all())
    assert len(rows) == 1
    assert disk() == {"objects": [rows[0].storage_key], "staging": []}
    assert storage_check(app)[0] == 0


def test_a_commit_that_lands_after_its_file_was_removed_is_never_acknowledged(
    app, upload, uploader_headers, fetch, disk, monkeypatch
):
    commit_then_lose_the_connection(monkeypatch)
    # The file manager asked first and heard "no row" (the COMMIT had not landed yet), so it
    # removed the file; the service's question, a moment later, finds the row.
    monkeypatch.setattr(FileStoreDataManager, "_maybe_committed", lambda self, key: False)

    answer = upload(uploader_headers, status=503).json

    assert answer["error"] == "outcome_unknown"
    monkeypatch.undo()
    assert disk()["objects"] == []
    code, output = storage_check(app)
    assert code == 1 and "upload rows whose file is missing: 1" in output


def test_a_failed_file_write_is_503_and_leaves_nothing(app, upload, uploader_headers, fetch, disk, monkeypatch):
    monkeypatch.setattr(local, "_write_all", fail_with(OSError(errno.ENOSPC, "No space left on device")))

    response = upload(uploader_headers, status=503)

    assert response.json["error"] == "unavailable"
    assert_consistent_and_empty(app, fetch, disk)


def test_a_failed_fsync_is_503_and_leaves_nothing(app, upload, uploader_headers, fetch, disk, monkeypatch):
    monkeypatch.setattr(local.os, "fsync", fail_with(OSError(errno.EIO, "Input/output error")))

    upload(uploader_headers, status=503)

    assert_consistent_and_empty(app, fetch, disk)


def test_a_failed_rename_is_503_and_leaves_nothing(app, upload, uploader_headers, fetch, disk, monkeypatch):
    monkeypatch.setattr(local.os, "replace", fail_with(OSError(errno.EIO, "Input/output error")))

    response = upload(uploader_headers, status=503)

    assert "nothing was stored" in response.json["message"]
    assert_consistent_and_empty(app, fetch, disk)


def test_a_failed_directory_fsync_after_the_rename_still_leaves_nothing(
    app, upload, uploader_headers, fetch, disk, monkeypatch
):
    monkeypatch.setattr(local, "_fsync_directory", fail_with(OSError(errno.EIO, "Input/output error")))

    upload(uploader_headers, status=503)

    assert_consistent_and_empty(app, fetch, disk)


def test_a_failed_delete_commit_keeps_row_and_file(app, upload, uploader_headers, testapp, fetch, disk, monkeypatch):
    body = upload(uploader_headers).json
    before = disk()
    failed = []
    fail_database_commits_with_files(monkeypatch, failed)

    testapp.delete(f"/api/v1/uploads/{body['id']}", headers=uploader_headers, status=500)

    assert failed == [True]
    monkeypatch.undo()
    assert fetch(lambda s: s.get(Upload, body["id"])) is not None
    assert disk() == before
    assert storage_check(app)[0] == 0


def test_a_file_delete_failing_after_commit_leaves_only_a_repairable_orphan(
    app, upload, uploader_headers, testapp, fetch, disk, monkeypatch
):
    body = upload(uploader_headers).json
    monkeypatch.setattr(local.LocalFileStore, "delete", fail_with(local.StorageError("EIO")))

    testapp.delete(f"/api/v1/uploads/{body['id']}", headers=uploader_headers, status=204)

    monkeypatch.undo()
    code, output = storage_check(app)
    assert code == 1 and "files without an upload row: 1" in output
    assert storage_check(app, "--repair")[0] == 0
    assert_consistent_and_empty(app, fetch, disk)


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from flask_migrate import upgrade
    from webtest import TestApp
    from app import create_app
    from app.config import TestingConfig
    from app.services.users import UserService
    from app.storage import local
    from zope.sqlalchemy.datamanager import SessionDataManager

    data_dir, where = sys.argv[1], sys.argv[2]
    app = create_app(TestingConfig({"DATA_DIR": data_dir, "DATABASE_URL": f"sqlite:///{data_dir}/depot.sqlite3"}))
    with app.app_context():
        upgrade()
        app.injector.get(UserService).create_account("crash@example.com", "password123", "C", ["uploader"])
    client = TestApp(app)
    token = client.post_json("/api/v1/auth/token", {"email": "crash@example.com", "password": "password123"})
    headers = {"Authorization": "Bearer " + token.json["access_token"]}

    def die(*args, **kwargs):
        os._exit(17)  # the process is killed: no cleanup, no abort, nothing

    if where == "between-commits":
        # After the file store's vote promoted the file, before the database commits.
        from app.storage.transactional import FileStoreDataManager
        real_file_vote, real_db_vote, voted = FileStoreDataManager.tpc_vote, SessionDataManager.tpc_vote, []
        def file_vote(self, txn):
            real_file_vote(self, txn)
            voted.append(txn)
        def db_vote(self, txn):
            if txn in voted:
                die()
            return real_db_vote(self, txn)
        FileStoreDataManager.tpc_vote, SessionDataManager.tpc_vote = file_vote, db_vote
    elif where == "while-staging":
        real_write = local._write_all
        written = []
        def write_then_die(out, chunk):
            real_write(out, chunk)
            written.append(chunk)
            if len(written) == 2:
                die()
        local._write_all = write_then_die
    client.put("/api/v1/uploads/big.png", b"\\x89PNG\\r\\n\\x1a\\n" + b"0" * 3_000_000,
               headers={**headers, "Content-Type": "image/png"})
    sys.exit(0)
    """
)


@pytest.mark.parametrize(("where", "leftover"), [("between-commits", "objects"), ("while-staging", "staging")])
def test_a_crash_leaves_only_a_leftover_that_repair_removes(app_factory, tmp_path, fetch, disk, where, leftover):
    result = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path), where],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 17, result.stderr.decode()[-2000:]
    app = app_factory()  # the same database and folder, as after a restart

    assert fetch(lambda s: s.scalar(select(func.count()).select_from(Upload))) == 0
    assert len(disk()[leftover]) == 1
    code, output = storage_check(app)
    assert code == 1
    assert "upload rows whose file is missing: 0" in output
    assert storage_check(app, "--repair")[0] == 0
    assert disk() == {"objects": [], "staging": []}
    assert storage_check(app) == (0, storage_check(app)[1])


def test_the_check_reports_missing_and_corrupt_files_and_never_deletes_rows(app, upload, uploader_headers, fetch, disk):
    first, second = upload(uploader_headers).json, upload(uploader_headers).json
    keys = {body["id"]: fetch(lambda s, i=body["id"]: s.get(Upload, i).storage_key) for body in (first, second)}
    objects = Path(app.config["UPLOAD_DIR"]) / "objects"
    next(objects.glob(f"*/{keys[first['id']]}")).unlink()
    corrupted = next(objects.glob(f"*/{keys[second['id']]}"))
    corrupted.write_bytes(b"\x89PNG" + b"tampered" * 100)

    code, output = storage_check(app, "--repair")

    assert code == 1
    assert f"upload rows whose file is missing: 1\n  {first['id']}" in output
    assert f"upload rows whose file is corrupt (size or SHA-256 differs): 1\n  {second['id']}" in output
    assert fetch(lambda s: s.scalar(select(func.count()).select_from(Upload))) == 2


def test_young_leftovers_are_left_alone(app, disk):
    staging = Path(app.config["UPLOAD_DIR"]) / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / ("a" * 32)).write_bytes(b"an upload still arriving")

    result = app.test_cli_runner().invoke(args=["storage", "check", "--repair"])  # default grace: 1 hour

    assert result.exit_code == 0
    assert disk()["staging"] == ["a" * 32]


def test_a_healthy_store_is_reported_consistent(app, upload, uploader_headers):
    upload(uploader_headers)
    upload(uploader_headers, "notes.txt", b"text\n")

    code, output = storage_check(app)

    assert code == 0
    assert output.splitlines()[-1] == "consistent"
