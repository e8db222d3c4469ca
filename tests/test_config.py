"""Configuration: environment parsing and production's refusal to start without secrets."""

from __future__ import annotations

import pytest

from app import create_app
from app.config import ConfigError, DevelopmentConfig, ProductionConfig, TestingConfig, load_config

GOOD_SECRET = "s" * 40


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({"DATABASE_URL": "sqlite://"}, "SECRET_KEY"),
        ({"SECRET_KEY": GOOD_SECRET}, "DATABASE_URL"),
        ({}, "SECRET_KEY, DATABASE_URL"),
    ],
)
def test_production_refuses_to_start_naming_what_is_missing(environ, missing):
    with pytest.raises(ConfigError, match=f"Missing required environment variable\\(s\\): {missing}$"):
        create_app(ProductionConfig(environ))


def test_production_refuses_a_short_secret_key():
    with pytest.raises(ConfigError, match="SECRET_KEY must be at least 32 characters"):
        ProductionConfig({"SECRET_KEY": "short", "DATABASE_URL": "sqlite://"}).validate()


def test_production_refuses_the_public_development_key():
    from app.config import DEV_SECRET_KEY

    with pytest.raises(ConfigError, match="public development key"):
        ProductionConfig({"SECRET_KEY": DEV_SECRET_KEY, "DATABASE_URL": "sqlite://"}).validate()


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


def test_values_are_parsed_from_the_environment():
    config = DevelopmentConfig({"TOKEN_TTL_SECONDS": "60", "ALLOW_REGISTRATION": "no", "AUTH_RATE_LIMIT": "1/second"})

    assert (config.TOKEN_TTL_SECONDS, config.ALLOW_REGISTRATION, config.AUTH_RATE_LIMIT) == (60, False, "1/second")


def test_a_malformed_number_names_the_variable():
    with pytest.raises(ConfigError, match="TOKEN_TTL_SECONDS must be a whole number"):
        DevelopmentConfig({"TOKEN_TTL_SECONDS": "soon"})


def test_an_unknown_environment_name_is_refused():
    with pytest.raises(ConfigError, match="Unknown DEPOT_ENV 'staging'"):
        load_config("staging")


def test_s3_uploads_must_fit_in_s3s_part_count():
    settings = {"STORAGE_BACKEND": "s3", "S3_BUCKET": "b", "S3_PART_SIZE_BYTES": str(5 * 1024 * 1024)}

    TestingConfig({**settings, "MAX_UPLOAD_BYTES": str(10_000 * 5 * 1024 * 1024)}).validate()
    with pytest.raises(ConfigError, match="10000 parts"):
        TestingConfig({**settings, "MAX_UPLOAD_BYTES": str(10_000 * 5 * 1024 * 1024 + 1)}).validate()


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
