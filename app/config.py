"""Configuration classes, one per environment, with every value read from the environment.

A config object is built from an environment mapping (``os.environ`` by default, after
python-dotenv has loaded ``.env``), so tests can build one from a plain dict. Building one
never stops at the first bad value: every problem (a malformed number, an unknown choice,
settings that cannot work together, production's missing secrets) is collected, and
`validate()` raises one ConfigError listing them all, so an operator fixes them in one go.

Each environment keeps its data apart by default (development in ./var/development, tests
in a temporary folder, production where DATA_DIR says), so a repair run in one never deletes
another's files.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NoReturn

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"  # noqa: S105 (public on purpose; refused in production)
# A browser origin: scheme, host and optional port, nothing after.
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
DEFAULT_EXTENSIONS = "png,jpg,jpeg,gif,webp,pdf,txt,csv,json,md,zip,gz"


class ConfigError(RuntimeError):
    """The configuration cannot run the app; `problems` lists every reason, one line each."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))

    def report(self) -> str:
        """What an entry point prints before it exits: a heading, then one line per problem."""
        count = len(self.problems)
        heading = f"Depot cannot start: {count} configuration problem{'s' if count != 1 else ''}:"
        return "\n".join([heading, *(f"- {problem}" for problem in self.problems)])


def exit_on_config_error(error: ConfigError) -> NoReturn:
    """What the entry points (autoapp.py, gunicorn.conf.py) do with a ConfigError: print every
    problem, one line each, to stderr, and exit with status 2, without a traceback."""
    print(error.report(), file=sys.stderr, flush=True)
    sys.exit(2)


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class _Env:
    """Typed reads from an environment mapping; an empty string counts as unset.

    A value that cannot be read is recorded in `problems` and its default is used instead,
    so that every later check still runs and reports its own problems too."""

    def __init__(self, environ: Mapping[str, str], problems: list[str] | None = None) -> None:
        self.environ = environ
        self.problems = [] if problems is None else problems

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name)
        return value if value not in (None, "") else default

    def bool(self, name: str, default: bool) -> bool:
        value = self.str(name)
        if value is None:
            return default
        if value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        self.problems.append(f"{name} must be true or false (or 1/0, yes/no, on/off), got {value!r}")
        return default

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = (self.str(name, default) or default).strip().lower()
        if value not in choices:
            self.problems.append(f"{name} must be one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def list(self, name: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in (self.str(name) or "").split(",") if item.strip())

    def int(self, name: str, default: int | None) -> int | None:
        value = self.str(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            self.problems.append(f"{name} must be a whole number, got {value!r}")
            return default


class Config:
    """Settings shared by every environment; subclasses change what differs."""

    ENV_NAME = "base"
    DEFAULT_LOG_FORMAT = "text"
    TESTING = False
    RATELIMIT_HEADERS_ENABLED = True
    # flask-apispec emits request bodies the OpenAPI 2.0 way, so the spec is 2.0 (Swagger).
    APISPEC_TITLE = "Depot API"
    APISPEC_VERSION = "v1"
    APISPEC_OAS_VERSION = "2.0"
    APISPEC_SWAGGER_URL = "/api/v1/openapi.json"
    APISPEC_SWAGGER_UI_URL = "/api/v1/docs/"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        # Problems found while reading values; validate() reports them with its own.
        self.problems: list[str] = []
        # Things worth telling the operator at start that do not stop it (logged by create_app).
        self.notices: list[str] = []
        env = self._env(environ)
        self.DATA_DIR = env.str("DATA_DIR") or self.default_data_dir()
        self.SECRET_KEY = env.str("SECRET_KEY")
        self.SQLALCHEMY_DATABASE_URI = env.str("DATABASE_URL")
        # The longest wait for one database round trip, or for a pooled connection; the engine
        # options built from it are in app/database.py.
        self.DATABASE_TIMEOUT_SECONDS = env.int("DATABASE_TIMEOUT_SECONDS", 3)
        # Lifetime of a login (session) token, in seconds.
        self.TOKEN_TTL_SECONDS = env.int("TOKEN_TTL_SECONDS", 3600)
        # Werkzeug password hash method: scrypt at Werkzeug's default cost unless overridden.
        self.PASSWORD_HASH_METHOD = env.str("PASSWORD_HASH_METHOD", "scrypt")
        self.ALLOW_REGISTRATION = env.bool("ALLOW_REGISTRATION", False)
        self.ADMIN_EMAIL = env.str("ADMIN_EMAIL")
        self.ADMIN_PASSWORD = env.str("ADMIN_PASSWORD")
        # JSON bodies are small; a larger body is refused with 413 before it is read.
        self.MAX_CONTENT_LENGTH = env.int("MAX_JSON_BYTES", 1024 * 1024)
        self.RATELIMIT_ENABLED = env.bool("RATELIMIT_ENABLED", True)
        # memory:// counts per process; redis://host:6379/0 shares counts across replicas.
        self.RATELIMIT_STORAGE_URI = env.str("RATELIMIT_STORAGE_URI", "memory://")
        self.RATELIMIT_KEY_PREFIX = env.str("RATELIMIT_KEY_PREFIX", "depot")
        # A Redis outage must not lock everyone out: fall back to per-process counting.
        self.RATELIMIT_SWALLOW_ERRORS = True
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        self.RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}
        # Limit on the credential endpoints (login, registration), per client address.
        self.AUTH_RATE_LIMIT = env.str("AUTH_RATE_LIMIT", "10 per minute")
        self.LOG_LEVEL = env.str("LOG_LEVEL", "INFO")
        # Uploads: the local file store's folder, the size limit, allowed extensions, quotas.
        self.UPLOAD_DIR = env.str("UPLOAD_DIR") or (str(Path(self.DATA_DIR) / "uploads") if self.DATA_DIR else None)
        self.MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", 1024**3)
        self.ALLOWED_EXTENSIONS = tuple(
            sorted(
                ext.strip().lower().lstrip(".")
                for ext in (env.str("ALLOWED_EXTENSIONS", DEFAULT_EXTENSIONS) or "").split(",")
                if ext.strip()
            )
        )
        self.USER_QUOTA_BYTES = env.int("USER_QUOTA_BYTES", None)
        # A resumable (tus) upload unfinished this long after its creation is removed, bytes
        # and all (Upload-Expires tells clients when).
        self.RESUMABLE_UPLOAD_EXPIRY_SECONDS = env.int("RESUMABLE_UPLOAD_EXPIRY_SECONDS", 86400)
        # An upload whose body sends nothing for this long is ended (408), its bytes removed,
        # so a stalled client does not keep a server thread.
        self.BODY_IDLE_TIMEOUT_SECONDS = env.int("BODY_IDLE_TIMEOUT_SECONDS", 30)
        # Uploads streaming at once, per account and per client address (0: no cap), counted
        # in Redis when RATELIMIT_STORAGE_URI names one (app/services/upload_slots.py).
        self.MAX_CONCURRENT_UPLOADS_PER_ACCOUNT = env.int("MAX_CONCURRENT_UPLOADS_PER_ACCOUNT", 32)
        self.MAX_CONCURRENT_UPLOADS_PER_ADDRESS = env.int("MAX_CONCURRENT_UPLOADS_PER_ADDRESS", 128)
        # How long an upload's slot outlives its process: a process renews its slots' leases
        # every quarter lease; one killed mid-upload cannot release them, and they free
        # themselves this long after it died.
        self.UPLOAD_SLOT_LEASE_SECONDS = env.int("UPLOAD_SLOT_LEASE_SECONDS", 60)
        # Signed download links: default and longest lifetime, in seconds.
        self.LINK_TTL_SECONDS = env.int("LINK_TTL_SECONDS", 3600)
        self.LINK_MAX_TTL_SECONDS = env.int("LINK_MAX_TTL_SECONDS", 7 * 24 * 3600)
        # The file store: "local" (UPLOAD_DIR) or "s3" (a bucket of an S3-compatible store).
        self.STORAGE_BACKEND = env.choice("STORAGE_BACKEND", ("local", "s3"), "local")
        self.S3_BUCKET = env.str("S3_BUCKET")
        self.S3_ENDPOINT_URL = env.str("S3_ENDPOINT_URL")  # unset: AWS S3 itself
        # Where browsers reach the store, for presigned URLs (default: S3_ENDPOINT_URL).
        self.S3_PUBLIC_ENDPOINT_URL = env.str("S3_PUBLIC_ENDPOINT_URL")
        self.S3_REGION = env.str("S3_REGION", "us-east-1")
        # Unset: boto3's own chain (AWS_* variables, instance or task roles).
        self.S3_ACCESS_KEY_ID = env.str("S3_ACCESS_KEY_ID")
        self.S3_SECRET_ACCESS_KEY = env.str("S3_SECRET_ACCESS_KEY")
        self.S3_PREFIX = env.str("S3_PREFIX", "")
        # MinIO and most self-hosted stores need path-style URLs; AWS prefers virtual hosts.
        self.S3_ADDRESSING_STYLE = env.choice(
            "S3_ADDRESSING_STYLE", ("auto", "path", "virtual"), "path" if self.S3_ENDPOINT_URL else "auto"
        )
        self.S3_PART_SIZE_BYTES = env.int("S3_PART_SIZE_BYTES", 8 * 1024 * 1024)
        # Downloads: "proxy" streams the bytes through Depot; "presigned" redirects the client
        # to a short-lived URL of the object store (S3 only).
        self.DOWNLOAD_REDIRECT = env.choice("DOWNLOAD_REDIRECT", ("proxy", "presigned"), "proxy")
        self.PRESIGNED_URL_TTL_SECONDS = env.int("PRESIGNED_URL_TTL_SECONDS", 60)
        # Browser origins allowed to call the API (CORS), e.g. https://app.example.com; "*" for any.
        self.CORS_ORIGINS = env.list("CORS_ORIGINS")
        # How many proxies in front of Depot set X-Forwarded-For/-Proto (1 behind the compose nginx).
        self.PROXY_COUNT = env.int("PROXY_COUNT", 0)
        # Log lines as JSON objects (production default) or as plain text.
        self.LOG_FORMAT = env.choice("LOG_FORMAT", ("json", "text"), self.DEFAULT_LOG_FORMAT)

    def _env(self, environ: Mapping[str, str] | None) -> _Env:
        """Reads from `environ` (default: os.environ) that record their problems on this config."""
        return _Env(os.environ if environ is None else environ, self.problems)

    def default_data_dir(self) -> str | None:
        """DATA_DIR when the environment does not set it; each environment has its own."""
        return str(BASE_DIR / "var" / self.ENV_NAME)

    def validate(self) -> None:
        """Raise one ConfigError listing every problem: values that could not be read, and
        settings that cannot work together (production adds its secrets, below)."""
        # dict.fromkeys: a value read twice (a subclass changing a default) is reported once.
        problems = list(dict.fromkeys([*self.problems, *self.conflicts()]))
        if problems:
            raise ConfigError(problems)

    def conflicts(self) -> list[str]:
        """Settings that were read but cannot work together, one message each."""
        found = []
        if self.STORAGE_BACKEND == "s3" and not self.S3_BUCKET:
            found.append("STORAGE_BACKEND=s3 needs S3_BUCKET")
        if self.DOWNLOAD_REDIRECT == "presigned" and self.STORAGE_BACKEND != "s3":
            found.append("DOWNLOAD_REDIRECT=presigned needs STORAGE_BACKEND=s3")
        if self.DATABASE_TIMEOUT_SECONDS <= 0:
            found.append(f"DATABASE_TIMEOUT_SECONDS must be more than 0, got {self.DATABASE_TIMEOUT_SECONDS}")
        if self.RESUMABLE_UPLOAD_EXPIRY_SECONDS <= 0:
            found.append(
                f"RESUMABLE_UPLOAD_EXPIRY_SECONDS must be more than 0, got {self.RESUMABLE_UPLOAD_EXPIRY_SECONDS}"
            )
        if self.BODY_IDLE_TIMEOUT_SECONDS <= 0:
            found.append(f"BODY_IDLE_TIMEOUT_SECONDS must be more than 0, got {self.BODY_IDLE_TIMEOUT_SECONDS}")
        for name in ("MAX_CONCURRENT_UPLOADS_PER_ACCOUNT", "MAX_CONCURRENT_UPLOADS_PER_ADDRESS"):
            if getattr(self, name) < 0:
                found.append(f"{name} must be 0 (no cap) or more, got {getattr(self, name)}")
        if self.UPLOAD_SLOT_LEASE_SECONDS < 2:
            # Renewed every quarter lease: below 2 s, a busy worker could miss a renewal.
            found.append(f"UPLOAD_SLOT_LEASE_SECONDS must be at least 2, got {self.UPLOAD_SLOT_LEASE_SECONDS}")
        if self.S3_PART_SIZE_BYTES < 5 * 1024 * 1024:
            found.append("S3_PART_SIZE_BYTES must be at least 5242880 (S3's smallest part)")
        elif self.STORAGE_BACKEND == "s3" and self.MAX_UPLOAD_BYTES > 10_000 * self.S3_PART_SIZE_BYTES:
            found.append("MAX_UPLOAD_BYTES needs more than S3's 10000 parts: raise S3_PART_SIZE_BYTES")
        found.extend(
            f"CORS_ORIGINS entries must look like https://host[:port], got {origin!r}"
            for origin in self.CORS_ORIGINS
            if origin != "*" and not _ORIGIN.match(origin)
        )
        return found


# Where Depot before issue 11 kept development (and, by default, production) data.
LEGACY_DATA_DIR = BASE_DIR / "var"


class DevelopmentConfig(Config):
    """Local development: SQLite and a data folder inside the checkout (./var/development),
    a throwaway secret."""

    ENV_NAME = "development"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(environ)
        env = self._env(environ)
        self.SECRET_KEY = self.SECRET_KEY or DEV_SECRET_KEY
        self.SQLALCHEMY_DATABASE_URI = self.SQLALCHEMY_DATABASE_URI or (
            "sqlite:///" + str(Path(self.DATA_DIR) / "depot.sqlite3")
        )
        self.ALLOW_REGISTRATION = env.bool("ALLOW_REGISTRATION", True)
        legacy = LEGACY_DATA_DIR / "depot.sqlite3"
        if env.str("DATA_DIR") is None and legacy.exists():
            self.notices.append(
                f"{legacy} is from an older Depot and is no longer used: development data now lives in "
                f"{self.DATA_DIR}. To keep the old data, stop Depot and move depot.sqlite3 and uploads/ "
                "there; otherwise delete them."
            )


@functools.cache
def _testing_root() -> str:
    """The folder of this process's testing data folders, removed when the process exits."""
    root = tempfile.mkdtemp(prefix="depot-testing-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


class TestingConfig(Config):
    """The test suite: an in-memory database unless given one, cheap hashing, no rate limits."""

    ENV_NAME = "testing"
    TESTING = True
    __test__ = False  # a config, not a pytest test class

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = {} if environ is None else environ
        super().__init__(environ)
        env = self._env(environ)
        self.SECRET_KEY = self.SECRET_KEY or "testing-secret-key"
        self.SQLALCHEMY_DATABASE_URI = self.SQLALCHEMY_DATABASE_URI or "sqlite://"
        # A low scrypt cost keeps the suite fast; the algorithm and code path are production's.
        self.PASSWORD_HASH_METHOD = env.str("PASSWORD_HASH_METHOD", "scrypt:1024:8:1")
        self.ALLOW_REGISTRATION = env.bool("ALLOW_REGISTRATION", True)
        self.RATELIMIT_ENABLED = env.bool("RATELIMIT_ENABLED", False)

    def default_data_dir(self) -> str:
        """A fresh temporary folder: a test never sees another run's (or development's) files.
        Each is made inside one folder of this process, removed when it exits."""
        return tempfile.mkdtemp(dir=_testing_root())


class ProductionConfig(Config):
    """Production: every secret, and the data folder, comes from the environment."""

    ENV_NAME = "production"
    DEFAULT_LOG_FORMAT = "json"  # one JSON object per line, for log collectors

    def default_data_dir(self) -> None:
        """None: production never guesses where its files live (see conflicts)."""
        return None

    def conflicts(self) -> list[str]:
        """Also refuse to start without a real secret key, a database URL and, for the local
        store, a data folder, naming each missing variable."""
        found = super().conflicts()
        if not self.SECRET_KEY:
            found.append(
                "SECRET_KEY is required in production: at least 32 random characters, e.g. from "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        elif self.SECRET_KEY == DEV_SECRET_KEY:
            found.append("SECRET_KEY is the public development key; generate a secret one")
        elif len(self.SECRET_KEY) < 32:
            found.append("SECRET_KEY must be at least 32 characters long")
        if not self.SQLALCHEMY_DATABASE_URI:
            found.append("DATABASE_URL is required in production, e.g. postgresql+psycopg://user:password@host/depot")
        if self.STORAGE_BACKEND == "local" and not self.UPLOAD_DIR:
            found.append(
                "DATA_DIR is required in production with STORAGE_BACKEND=local: the folder that keeps the "
                "uploaded files (or set UPLOAD_DIR, or use STORAGE_BACKEND=s3)"
            )
        return found


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(name: str | None = None) -> Config:
    """Build the config named by `name`, else by DEPOT_ENV (default: development).

    `.env` is loaded first; variables already in the environment win over it.
    """
    load_dotenv(BASE_DIR / ".env")
    name = name or os.environ.get("DEPOT_ENV") or "development"
    try:
        config_class = CONFIGS[name]
    except KeyError:
        raise ConfigError(f"Unknown DEPOT_ENV {name!r}; expected one of: {', '.join(CONFIGS)}") from None
    return config_class()
