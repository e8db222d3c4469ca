"""Integration harness: Depot under a real gunicorn on a free loopback port, against a real
PostgreSQL database created for this run (and dropped after it), driven over HTTP.

PostgreSQL is found at DEPOT_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test);
if it does not answer, the run fails and says how to provide it, rather than skipping.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "integration admin password"
ADMIN_URL = os.environ.get("DEPOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _admin_connection() -> psycopg.Connection:
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL is not reachable at {ADMIN_URL} ({error.__class__.__name__}). The integration tests need "
            "a real server: on Debian, `apt-get install postgresql` and start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or point DEPOT_TEST_PG "
            "at a server where this user may create databases.",
            pytrace=False,
        )


def _temporary_database():
    """Create a uniquely named PostgreSQL database, yield its SQLAlchemy URL, then drop it."""
    name = f"depot_it_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = psycopg.conninfo.conninfo_to_dict(ADMIN_URL)
    user, host, port = params.get("user", "postgres"), params.get("host", "127.0.0.1"), params.get("port", 5432)
    try:
        yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
    finally:
        with _admin_connection() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def database_url():
    """A fresh PostgreSQL database shared by the gunicorn server of this run, dropped at the end."""
    yield from _temporary_database()


@pytest.fixture
def fresh_database_url():
    """An empty PostgreSQL database for one test, dropped after it."""
    yield from _temporary_database()


@pytest.fixture(scope="session")
def server_env(database_url, tmp_path_factory):
    """The environment a production deployment would give Depot."""
    return {
        **os.environ,
        "DEPOT_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path_factory.mktemp("depot-data")),
        "ALLOW_REGISTRATION": "true",
        "AUTH_RATE_LIMIT": "1000 per minute",
        "FLASK_APP": "autoapp.py",
    }


@pytest.fixture(scope="session")
def flask_cli(server_env):
    """Runs a `flask` command against the server's database and files: flask_cli("storage", "check")."""

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "flask"), *args],
            cwd=ROOT,
            env=server_env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


@pytest.fixture(scope="session")
def server(server_env, flask_cli, tmp_path_factory):
    """Base URL of Depot under gunicorn (2 workers), migrated and with an admin."""
    for args, stdin in (
        (("db", "upgrade"), None),
        (("users", "create-admin", ADMIN_EMAIL, "--password-stdin"), ADMIN_PASSWORD),
    ):
        done = flask_cli(*args, stdin=stdin)
        assert done.returncode == 0, done.stdout + done.stderr
    port = _free_port()
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "--workers", "2", "--threads", "4", "--bind", f"127.0.0.1:{port}", "autoapp:app"],
            cwd=ROOT,
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(base_url, process, log_path)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_healthy(base_url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()}", pytrace=False)
        try:
            if requests.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet, or too busy starting to answer
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not become healthy:\n{log_path.read_text()}", pytrace=False)


class Api:
    """A tiny HTTP client for Depot's JSON API with an optional bearer token."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def __getattr__(self, method):
        return lambda path, **kwargs: self.http.request(method.upper(), self.base_url + path, timeout=30, **kwargs)

    def login(self, email: str, password: str) -> Api:
        response = self.post("/api/v1/auth/token", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return Api(self.base_url, response.json()["access_token"])


@pytest.fixture
def api(server) -> Api:
    """An anonymous client."""
    return Api(server)


@pytest.fixture
def admin_api(api) -> Api:
    """A client logged in as the admin created with the CLI."""
    return api.login(ADMIN_EMAIL, ADMIN_PASSWORD)
