"""Configuration: environment parsing, every problem reported at once, production's refusal
to start without secrets, and data folders kept apart per environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import app.config as config_module
from app import create_app
from app.config import BASE_DIR, ConfigError, DevelopmentConfig, ProductionConfig, TestingConfig, load_config

GOOD_SECRET = "s" * 40


def problems_of(config) -> list[str]:
    """The problems validate() reports for `config` (none: an empty list)."""
    try:
        config.validate()
    except ConfigError as error:
        return error.problems
    return []


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({"DATABASE_URL": "sqlite://", "DATA_DIR": "/srv/depot"}, ["SECRET_KEY"]),
        ({"SECRET_KEY": GOOD_SECRET, "DATA_DIR": "/srv/depot"}, ["DATABASE_URL"]),
        ({}, ["SECRET_KEY", "DATABASE_URL", "DATA_DIR"]),
    ],
)
def test_production_refuses_to_start_naming_each_missing_variable(environ, missing):
    with pytest.raises(ConfigError) as raised:
        create_app(ProductionConfig(environ))

    assert [problem.split()[0] for problem in raised.value.problems] == missing
    assert all("is required in production" in problem for problem in raised.value.problems)


def test_production_refuses_a_short_secret_key():
    with pytest.raises(ConfigError, match="SECRET_KEY must be at least 32 characters"):
        ProductionConfig({"SECRET_KEY": "short", "DATABASE_URL": "sqlite://"}).validate()


def test_production_refuses_the_public_development_key():
    from app.config import DEV_SECRET_KEY

    with pytest.raises(ConfigError, match="public development key"):
        ProductionConfig({"SECRET_KEY": DEV_SECRET_KEY, "DATABASE_URL": "sqlite://"}).validate()


def test_every_problem_is_collected_into_one_error():
    config = ProductionConfig(
        {
            "TOKEN_TTL_SECONDS": "soon",
            "MAX_UPLOAD_BYTES": "1GB",
            "STORAGE_BACKEND": "ftp",
            "LOG_FORMAT": "xml",
            "RATELIMIT_ENABLED": "maybe",
            "DOWNLOAD_REDIRECT": "presigned",
            "CORS_ORIGINS": "https://ok.example.com,not-an-origin",
            "SECRET_KEY": "short",
        }
    )

    problems = problems_of(config)

    assert problems == [
        "TOKEN_TTL_SECONDS must be a whole number, got 'soon'",
        "RATELIMIT_ENABLED must be true or false (or 1/0, yes/no, on/off), got 'maybe'",
        "MAX_UPLOAD_BYTES must be a whole number, got '1GB'",
        "STORAGE_BACKEND must be one of local, s3, got 'ftp'",
        "LOG_FORMAT must be one of json, text, got 'xml'",
        "DOWNLOAD_REDIRECT=presigned needs STORAGE_BACKEND=s3",
        "CORS_ORIGINS entries must look like https://host[:port], got 'not-an-origin'",
        "SECRET_KEY must be at least 32 characters long",
        "DATABASE_URL is required in production, e.g. postgresql+psycopg://user:password@host/depot",
        "DATA_DIR is required in production with STORAGE_BACKEND=local: the folder that keeps the uploaded "
        "files (or set UPLOAD_DIR, or use STORAGE_BACKEND=s3)",
    ]


def test_a_value_read_twice_is_reported_once():
    # Development reads ALLOW_REGISTRATION again, with its own default.
    assert problems_of(
        DevelopmentConfig(
            {
                "ALLOW_REGISTRATION": "maybe",
            }
        )
    ) == ["ALLOW_REGISTRATION must be true or false (or 1/0, yes/no, on/off), got 'maybe'"]


def test_the_report_has_a_heading_and_one_line_per_problem():
    error = ConfigError(["A is wrong", "B is missing"])

    assert error.report().splitlines() == [
        "Depot cannot start: 2 configuration problems:",
        "- A is wrong",
        "- B is missing",
    ]
    assert str(error) == "A is wrong; B is missing"


def test_production_starts_with_its_secrets(tmp_path):
    app = create_app(
        ProductionConfig({"SECRET_KEY": GOOD_SECRET, "DATABASE_URL": "sqlite://", "DATA_DIR": str(tmp_path)})
    )

    assert app.config["SECRET_KEY"] == GOOD_SECRET
    assert app.config["ALLOW_REGISTRATION"] is False
    assert app.config["TESTING"] is False


def test_development_defaults_to_sqlite_in_the_data_folder(tmp_path):
    config = DevelopmentConfig({"DATA_DIR": str(tmp_path)})

    assert config.SQLALCHEMY_DATABASE_URI == f"sqlite:///{tmp_path}/depot.sqlite3"
    assert config.ALLOW_REGISTRATION is True


def test_each_environment_has_its_own_data_folder_by_default():
    development = DevelopmentConfig({})
    testing = TestingConfig({})
    production_on_s3 = ProductionConfig({"STORAGE_BACKEND": "s3", "S3_BUCKET": "b"})

    assert development.DATA_DIR == str(BASE_DIR / "var" / "development")
    assert development.SQLALCHEMY_DATABASE_URI == f"sqlite:///{BASE_DIR}/var/development/depot.sqlite3"
    assert development.UPLOAD_DIR == str(BASE_DIR / "var" / "development" / "uploads")
    # Tests: a fresh temporary folder each time, never a folder of the checkout.
    assert not Path(testing.DATA_DIR).is_relative_to(BASE_DIR)
    assert TestingConfig({}).DATA_DIR != testing.DATA_DIR
    # Production guesses no folder: the local store needs DATA_DIR (see above), S3 needs none.
    assert (production_on_s3.DATA_DIR, production_on_s3.UPLOAD_DIR) == (None, None)


def test_production_with_a_local_store_accepts_an_explicit_upload_folder():
    environ = {"SECRET_KEY": GOOD_SECRET, "DATABASE_URL": "sqlite://", "UPLOAD_DIR": "/srv/depot/uploads"}

    assert problems_of(ProductionConfig(environ)) == []


def test_production_on_s3_starts_without_a_data_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    environ = {"SECRET_KEY": GOOD_SECRET, "DATABASE_URL": "sqlite://", "STORAGE_BACKEND": "s3", "S3_BUCKET": "b"}

    app = create_app(ProductionConfig(environ))

    assert app.config["DATA_DIR"] is None
    assert list(tmp_path.iterdir()) == []


def test_a_database_left_by_an_older_version_in_var_is_named_at_start(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(config_module, "LEGACY_DATA_DIR", tmp_path)
    (tmp_path / "depot.sqlite3").write_bytes(b"")
    new_home = tmp_path / "development"
    monkeypatch.setattr(DevelopmentConfig, "default_data_dir", lambda self: str(new_home))

    create_app(DevelopmentConfig({"DATABASE_URL": "sqlite://"}))

    [notice] = [line for line in capsys.readouterr().err.splitlines() if "older Depot" in line]
    assert "WARNING" in notice
    assert f"{tmp_path}/depot.sqlite3 is from an older Depot and is no longer used" in notice
    assert str(new_home) in notice
    # With DATA_DIR chosen explicitly, the old file is none of Depot's business.
    assert DevelopmentConfig({"DATA_DIR": str(new_home)}).notices == []


def test_values_are_parsed_from_the_environment():
    config = DevelopmentConfig({"TOKEN_TTL_SECONDS": "60", "ALLOW_REGISTRATION": "no", "AUTH_RATE_LIMIT": "1/second"})

    assert (config.TOKEN_TTL_SECONDS, config.ALLOW_REGISTRATION, config.AUTH_RATE_LIMIT) == (60, False, "1/second")


def test_a_malformed_number_names_the_variable():
    with pytest.raises(ConfigError, match="TOKEN_TTL_SECONDS must be a whole number"):
        DevelopmentConfig({"TOKEN_TTL_SECONDS": "soon"}).validate()


def test_an_unknown_environment_name_is_refused():
    with pytest.raises(ConfigError, match="Unknown DEPOT_ENV 'staging'"):
        load_config("staging")


def test_s3_uploads_must_fit_in_s3s_part_count():
    settings = {"STORAGE_BACKEND": "s3", "S3_BUCKET": "b", "S3_PART_SIZE_BYTES": str(5 * 1024 * 1024)}

    TestingConfig({**settings, "MAX_UPLOAD_BYTES": str(10_000 * 5 * 1024 * 1024)}).validate()
    with pytest.raises(ConfigError, match="10000 parts"):
        TestingConfig({**settings, "MAX_UPLOAD_BYTES": str(10_000 * 5 * 1024 * 1024 + 1)}).validate()


def test_the_body_idle_timeout_defaults_to_30_seconds_and_is_read_from_the_environment():
    assert TestingConfig({}).BODY_IDLE_TIMEOUT_SECONDS == 30
    assert TestingConfig({"BODY_IDLE_TIMEOUT_SECONDS": "5"}).BODY_IDLE_TIMEOUT_SECONDS == 5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "BODY_IDLE_TIMEOUT_SECONDS must be more than 0, got 0"),
        ("-5", "BODY_IDLE_TIMEOUT_SECONDS must be more than 0, got -5"),
        ("soon", "BODY_IDLE_TIMEOUT_SECONDS must be a whole number, got 'soon'"),
    ],
)
def test_a_body_idle_timeout_that_cannot_work_is_refused(value, message):
    assert problems_of(TestingConfig({"BODY_IDLE_TIMEOUT_SECONDS": value})) == [message]


def test_a_bad_body_idle_timeout_is_listed_with_the_other_problems():
    problems = problems_of(ProductionConfig({"BODY_IDLE_TIMEOUT_SECONDS": "0"}))

    assert "BODY_IDLE_TIMEOUT_SECONDS must be more than 0, got 0" in problems
    assert any(problem.startswith("SECRET_KEY is required") for problem in problems)


def test_upload_caps_default_to_32_per_account_and_128_per_address_with_a_minute_lease():
    config = TestingConfig({})
    assert (config.MAX_CONCURRENT_UPLOADS_PER_ACCOUNT, config.MAX_CONCURRENT_UPLOADS_PER_ADDRESS) == (32, 128)
    assert config.UPLOAD_SLOT_LEASE_SECONDS == 60
    settings = {
        "MAX_CONCURRENT_UPLOADS_PER_ACCOUNT": "0",
        "MAX_CONCURRENT_UPLOADS_PER_ADDRESS": "4",
        "UPLOAD_SLOT_LEASE_SECONDS": "20",
    }
    config = TestingConfig(settings)
    assert problems_of(config) == []
    assert (config.MAX_CONCURRENT_UPLOADS_PER_ACCOUNT, config.MAX_CONCURRENT_UPLOADS_PER_ADDRESS) == (0, 4)
    assert config.UPLOAD_SLOT_LEASE_SECONDS == 20


def test_upload_caps_that_cannot_work_are_all_listed_with_the_other_problems():
    problems = problems_of(
        ProductionConfig(
            {
                "MAX_CONCURRENT_UPLOADS_PER_ACCOUNT": "-1",
                "MAX_CONCURRENT_UPLOADS_PER_ADDRESS": "many",
                "UPLOAD_SLOT_LEASE_SECONDS": "1",
            }
        )
    )

    assert "MAX_CONCURRENT_UPLOADS_PER_ACCOUNT must be 0 (no cap) or more, got -1" in problems
    assert "MAX_CONCURRENT_UPLOADS_PER_ADDRESS must be a whole number, got 'many'" in problems
    assert "UPLOAD_SLOT_LEASE_SECONDS must be at least 2, got 1" in problems
    assert any(problem.startswith("SECRET_KEY is required") for problem in problems)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"STORAGE_BACKEND": "s3"}, "S3_BUCKET"),
        ({"DOWNLOAD_REDIRECT": "presigned"}, "STORAGE_BACKEND=s3"),
        ({"STORAGE_BACKEND": "ftp"}, "STORAGE_BACKEND must be one of"),
        ({"STORAGE_BACKEND": "s3", "S3_BUCKET": "b", "S3_PART_SIZE_BYTES": "1000"}, "at least 5242880"),
    ],
)
def test_storage_settings_that_cannot_work_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        TestingConfig(settings).validate()


# The real entry points, as an operator starts them: a bad configuration ends the process
# with status 2 and every problem on a line of its own, never with a traceback.

BIN = Path(sys.executable).parent
BAD_PRODUCTION = {
    "DEPOT_ENV": "production",
    # Empty counts as unset, and keeps a developer's .env from filling these in.
    "SECRET_KEY": "",
    "DATABASE_URL": "",
    "DATA_DIR": "",
    "UPLOAD_DIR": "",
    "TOKEN_TTL_SECONDS": "soon",
    "LOG_FORMAT": "xml",
}
EXPECTED_NAMES = ["TOKEN_TTL_SECONDS", "LOG_FORMAT", "SECRET_KEY", "DATABASE_URL", "DATA_DIR"]


def run_entry_point(args: list[str], tmp_path: Path, **settings: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **BAD_PRODUCTION, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), **settings}
    return subprocess.run(args, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)


def assert_every_problem_on_its_own_line(done: subprocess.CompletedProcess, names: list[str]) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    lines = done.stderr.splitlines()
    start = lines.index(f"Depot cannot start: {len(names)} configuration problems:")
    problems = lines[start + 1 :]
    assert [line.removeprefix("- ").split()[0] for line in problems] == names, output


@pytest.mark.parametrize("command", [["db", "upgrade"], ["users", "create-admin", "a@example.com"], ["run"]])
def test_flask_commands_list_every_problem_and_exit_2(command, tmp_path):
    done = run_entry_point([str(BIN / "flask"), "--app", "autoapp", *command], tmp_path)

    assert_every_problem_on_its_own_line(done, EXPECTED_NAMES)


def test_gunicorn_lists_every_problem_once_and_exits_2_before_any_worker_starts(tmp_path):
    bind = f"127.0.0.1:{free_port()}"
    args = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--bind", bind, "autoapp:app"]

    done = run_entry_point(args, tmp_path, GUNICORN_THREADS="many")

    # gunicorn.conf.py's own settings first, then the app's.
    assert_every_problem_on_its_own_line(done, ["GUNICORN_THREADS", *EXPECTED_NAMES])
    assert done.stderr.count("Depot cannot start") == 1
    assert "Booting worker" not in done.stdout + done.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
