"""Integration harness: Depot under a real gunicorn on a free loopback port, against a real
PostgreSQL database created for this run (and dropped after it), driven over HTTP. The
`topology` fixture adds the scale-out deployment of docker-compose.yml, from local processes.

PostgreSQL is found at DEPOT_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test);
if it does not answer, the run fails and says how to provide it, rather than skipping.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from dataclasses import dataclass

import psycopg
import pytest
import redis
import requests
from processes import BIN, ROOT, FaultRelay, Gunicorn, MotoServer, Nginx, find_nginx, wait_until
from psycopg import sql

from app.storage.s3 import make_client

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "integration admin password"
ADMIN_URL = os.environ.get("DEPOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


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


def temporary_database():
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
    yield from temporary_database()


@pytest.fixture
def fresh_database_url():
    """An empty PostgreSQL database for one test, dropped after it."""
    yield from temporary_database()


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


def run_flask(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run a `flask` command of Depot with `env`, as an operator would."""
    return subprocess.run(
        [str(BIN / "flask"), *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="session")
def flask_cli(server_env):
    """Runs a `flask` command against the server's database and files: flask_cli("storage", "check")."""

    return lambda *args, stdin=None: run_flask(server_env, *args, stdin=stdin)


@pytest.fixture(scope="session")
def server(server_env, flask_cli, tmp_path_factory):
    """Base URL of Depot under gunicorn (2 workers, gunicorn.conf.py), migrated and with an admin."""
    for args, stdin in (
        (("db", "upgrade"), None),
        (("users", "create-admin", ADMIN_EMAIL, "--password-stdin"), ADMIN_PASSWORD),
    ):
        done = flask_cli(*args, stdin=stdin)
        assert done.returncode == 0, done.stdout + done.stderr
    replica = Gunicorn("server", server_env, tmp_path_factory.mktemp("gunicorn"))
    try:
        yield replica.url
    finally:
        replica.stop()


class Api:
    """A tiny HTTP client for Depot's JSON API with an optional bearer token."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.token = token
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def __getattr__(self, method):
        return lambda path, **kwargs: self.http.request(method.upper(), self.base_url + path, timeout=30, **kwargs)

    def at(self, base_url: str) -> Api:
        """The same credentials, sent to another server (say, one replica directly)."""
        return Api(base_url, self.token)

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


# --- the scale-out topology: nginx -> 2 replicas -> PostgreSQL, Redis, S3 ----------------

REDIS_URL = os.environ.get("DEPOT_TEST_REDIS", "redis://127.0.0.1:6379/0")
TOPOLOGY_BUCKET = "depot-it"
# Small enough to test the proxy's limit cheaply, large enough for multipart S3 uploads.
TOPOLOGY_MAX_UPLOAD = 64 * 1024 * 1024
TOPOLOGY_RATE_LIMIT = 20


def _redis_or_fail() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({error.__class__.__name__}). The scale-out tests share rate "
            "limits through it: on Debian, `apt-get install redis-server` and start it with "
            "`redis-server --daemonize yes`, or set DEPOT_TEST_REDIS.",
            pytrace=False,
        )
    return client


@dataclass
class Topology:
    """Everything the scale-out tests reach: the proxy, each replica, S3 and the fault relay."""

    proxy: Nginx
    replicas: list[Gunicorn]
    relay: FaultRelay
    s3: object  # a boto3 client on the S3 server itself (not through the relay)
    env: dict

    def flask(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return run_flask(self.env, *args, stdin=stdin)

    def bucket_keys(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=TOPOLOGY_BUCKET)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def unfinished_multipart_uploads(self) -> list[str]:
        return [u["Key"] for u in self.s3.list_multipart_uploads(Bucket=TOPOLOGY_BUCKET).get("Uploads", [])]

    def replica_serving(self, request_id: str) -> Gunicorn:
        """The replica nginx sent the request with this id to (from its JSON access log)."""
        records = wait_until(lambda: [r for r in self.proxy.access_records() if r["request_id"] == request_id])
        assert records, f"no access-log record for {request_id}"
        return next(r for r in self.replicas if records[0]["upstream"].endswith(f":{r.port}"))


@pytest.fixture(scope="session")
def topology(tmp_path_factory):
    """The docker-compose topology from local processes: nginx (the compose template) in front
    of two gunicorn replicas on one PostgreSQL database, Redis rate limits and an S3 server
    (moto) reached through a relay that can fail. Migrated, bucket created, with an admin."""
    find_nginx()  # fail early, with the install hint, if nginx is missing
    redis_client = _redis_or_fail()
    logs = tmp_path_factory.mktemp("topology")
    started: list = []
    databases = temporary_database()
    database_url = next(databases)
    prefix = f"depot-it-{uuid.uuid4().hex[:12]}"
    try:
        moto = MotoServer(logs)
        started.append(moto)
        relay = FaultRelay(moto.port)
        started.append(relay)
        env = {
            **os.environ,
            "DEPOT_ENV": "production",
            "FLASK_APP": "autoapp.py",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DATABASE_URL": database_url,
            "DATA_DIR": str(logs / "data"),
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT_URL": relay.url,
            "S3_BUCKET": TOPOLOGY_BUCKET,
            "S3_ACCESS_KEY_ID": "depot-it",
            "S3_SECRET_ACCESS_KEY": secrets.token_urlsafe(24),
            "S3_PART_SIZE_BYTES": str(5 * 1024 * 1024),
            "MAX_UPLOAD_BYTES": str(TOPOLOGY_MAX_UPLOAD),
            "RATELIMIT_STORAGE_URI": REDIS_URL,
            "RATELIMIT_KEY_PREFIX": prefix,
            "AUTH_RATE_LIMIT": f"{TOPOLOGY_RATE_LIMIT} per minute",
            "PROXY_COUNT": "1",
            "CORS_ORIGINS": "https://spa.example.com",
            "LOG_FORMAT": "json",
        }
        topology = Topology(proxy=None, replicas=[], relay=relay, s3=None, env=env)  # type: ignore[arg-type]
        for args, stdin in (
            (("db", "upgrade"), None),
            (("storage", "init"), None),
            (("users", "create-admin", ADMIN_EMAIL, "--password-stdin"), ADMIN_PASSWORD),
        ):
            done = topology.flask(*args, stdin=stdin)
            assert done.returncode == 0, done.stdout + done.stderr
        for name in ("replica-a", "replica-b"):
            replica = Gunicorn(name, env, logs)
            started.append(replica)
            topology.replicas.append(replica)
        topology.proxy = Nginx([f"127.0.0.1:{r.port}" for r in topology.replicas], TOPOLOGY_MAX_UPLOAD, logs)
        started.append(topology.proxy)
        topology.s3 = make_client(
            endpoint_url=moto.url,
            region_name="us-east-1",
            aws_access_key_id="depot-it",
            aws_secret_access_key="unused",
            addressing_style="path",
        )
        yield topology
    finally:
        for process in reversed(started):
            (process.close if isinstance(process, FaultRelay) else process.stop)()
        keys = list(redis_client.scan_iter(f"*{prefix}*"))
        if keys:
            redis_client.delete(*keys)
        redis_client.close()
        next(databases, None)  # drops the database
