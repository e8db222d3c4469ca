"""Integration harness: Depot under a real gunicorn on a free loopback port, against a real
PostgreSQL database created for this run (and dropped after it), driven over HTTP. The
`topology` fixture adds the scale-out deployment of docker-compose.yml, from local processes.

PostgreSQL is found at DEPOT_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test);
if it does not answer, the run fails and says how to provide it, rather than skipping.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin

import pytest
import requests
from processes import (
    BIN,
    ROOT,
    FaultRelay,
    Gunicorn,
    Nginx,
    SeaweedFS,
    find_nginx,
    temporary_database,
    wait_until,
)

from tests.helpers import REDIS_URL, redis_key_prefix

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "integration admin password"
# The password of the accounts the fixtures create.
USER_PASSWORD = "integration password"


@pytest.fixture(scope="session")
def database_url():
    """A fresh PostgreSQL database shared by the gunicorn server of this run, dropped at the end."""
    with temporary_database() as url:
        yield url


@pytest.fixture
def fresh_database_url():
    """An empty PostgreSQL database for one test, dropped after it."""
    with temporary_database() as url:
        yield url


@pytest.fixture(scope="session")
def server_env(database_url, tmp_path_factory):
    """The environment a production deployment would give Depot."""
    return depot_env(
        database_url,
        tmp_path_factory.mktemp("depot-data"),
        ALLOW_REGISTRATION="true",
        AUTH_RATE_LIMIT="1000 per minute",
        # The browser tests' page (js_clients.PAGE_ORIGIN), as the topology allows it too.
        CORS_ORIGINS="https://spa.example.com",
        **ATTACKABLE,
    )


# The slow-client attack (test_slow_clients.py) sends its hundreds of uploads from one account
# and one address, to load the concurrency model itself: the per-account and per-address caps
# would refuse them (test_upload_caps.py tests those on servers of its own).
ATTACKABLE = {"MAX_CONCURRENT_UPLOADS_PER_ACCOUNT": "0", "MAX_CONCURRENT_UPLOADS_PER_ADDRESS": "0"}


def depot_env(database_url: str, data_dir, **settings: str) -> dict:
    """A production environment for Depot on `database_url`, with its files under `data_dir`
    and any other `settings`."""
    return {
        **os.environ,
        "DEPOT_ENV": "production",
        "FLASK_APP": "autoapp.py",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data_dir),
        **settings,
    }


def s3_settings(store: SeaweedFS, bucket: str, endpoint_url: str | None = None) -> dict[str, str]:
    """Depot's settings for the S3 server `store` (reached at `endpoint_url`, say through a
    relay, or directly), with its credentials and the smallest part size S3 allows, so
    multipart uploads are cheap to cause."""
    return {
        "STORAGE_BACKEND": "s3",
        "S3_ENDPOINT_URL": endpoint_url or store.url,
        "S3_BUCKET": bucket,
        "S3_ACCESS_KEY_ID": store.access_key,
        "S3_SECRET_ACCESS_KEY": store.secret_key,
        "S3_PART_SIZE_BYTES": str(5 * 1024 * 1024),
    }


def run_flask(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run a `flask` command of Depot with `env`, as an operator would."""
    return subprocess.run(
        [str(BIN / "flask"), *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=300
    )


def prepare_depot(env: dict, storage: bool = False) -> None:
    """What an operator does before the first start: migrate, prepare the store (the S3
    bucket, when `storage`), and create the admin (ADMIN_EMAIL)."""
    steps = [(("db", "upgrade"), None)]
    if storage:
        steps.append((("storage", "init"), None))
    steps.append((("users", "create-admin", ADMIN_EMAIL, "--password-stdin"), ADMIN_PASSWORD))
    for args, stdin in steps:
        done = run_flask(env, *args, stdin=stdin)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="session")
def flask_cli(server_env):
    """Runs a `flask` command against the server's database and files: flask_cli("storage", "check")."""

    return lambda *args, stdin=None: run_flask(server_env, *args, stdin=stdin)


@pytest.fixture(scope="session")
def server(server_env, tmp_path_factory):
    """Base URL of Depot under gunicorn (2 workers, gunicorn.conf.py), migrated and with an admin."""
    with running_depot(server_env, "server", tmp_path_factory.mktemp("gunicorn")) as url:
        yield url


@contextlib.contextmanager
def running_depot(env: dict, name: str, log_dir) -> Iterator[str]:
    """Depot prepared as an operator would (prepare_depot), under gunicorn: its base URL."""
    prepare_depot(env)
    replica = Gunicorn(name, env, log_dir)
    try:
        yield replica.url
    finally:
        replica.stop()


def new_uploader(admin: Api) -> Api:
    """A client logged in as a fresh uploader of the Depot `admin` is logged in to."""
    email = f"up-{uuid.uuid4().hex[:10]}@example.com"
    created = admin.post(
        "/api/v1/users", json={"email": email, "password": USER_PASSWORD, "name": "U", "roles": ["uploader"]}
    )
    assert created.status_code == 201, created.text
    return Api(admin.base_url).login(email, USER_PASSWORD)


@pytest.fixture
def uploader(admin_api) -> Api:
    """A client logged in as a fresh uploader of the `server` Depot."""
    return new_uploader(admin_api)


class Api:
    """A tiny HTTP client for Depot's JSON API with an optional bearer token."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.token = token
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def __getattr__(self, method):
        # `path` is a path on base_url, or an absolute URL Depot gave (download_url, Location).
        return lambda path, **kwargs: self.http.request(
            method.upper(), urljoin(self.base_url, path), timeout=30, **kwargs
        )

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

TOPOLOGY_BUCKET = "depot-it"
# Small enough to test the proxy's limit cheaply, large enough for multipart S3 uploads.
TOPOLOGY_MAX_UPLOAD = 64 * 1024 * 1024
TOPOLOGY_RATE_LIMIT = 20


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
    (SeaweedFS, authentication on) reached through a relay that can fail. Migrated, bucket
    created, with an admin."""
    find_nginx()  # fail early, with the install hint, if nginx is missing
    logs = tmp_path_factory.mktemp("topology")
    # Stopped in reverse order, each even if starting a later one or stopping another fails:
    # the processes, then the Redis keys, then the database.
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(temporary_database())
        prefix = stack.enter_context(redis_key_prefix("depot-it"))  # Redis checked, keys removed after
        store = SeaweedFS(logs / "seaweedfs")
        stack.callback(store.stop)
        relay = FaultRelay(store.port)
        stack.callback(relay.close)
        env = depot_env(
            database_url,
            logs / "data",
            **s3_settings(store, TOPOLOGY_BUCKET, relay.url),
            MAX_UPLOAD_BYTES=str(TOPOLOGY_MAX_UPLOAD),
            RATELIMIT_STORAGE_URI=REDIS_URL,
            RATELIMIT_KEY_PREFIX=prefix,
            AUTH_RATE_LIMIT=f"{TOPOLOGY_RATE_LIMIT} per minute",
            PROXY_COUNT="1",
            CORS_ORIGINS="https://spa.example.com",
            LOG_FORMAT="json",
            **ATTACKABLE,
        )
        topology = Topology(proxy=None, replicas=[], relay=relay, s3=None, env=env)  # type: ignore[arg-type]
        prepare_depot(env, storage=True)
        for name in ("replica-a", "replica-b"):
            replica = Gunicorn(name, env, logs)
            stack.callback(replica.stop)
            topology.replicas.append(replica)
        topology.proxy = Nginx(
            [f"127.0.0.1:{r.port}" for r in topology.replicas], TOPOLOGY_MAX_UPLOAD, logs, env["CORS_ORIGINS"]
        )
        stack.callback(topology.proxy.stop)
        topology.s3 = store.client()
        yield topology


@pytest.fixture
def topology_uploader(topology) -> Api:
    """A client logged in as a fresh uploader of the scale-out topology, through its proxy."""
    return new_uploader(Api(topology.proxy.url).login(ADMIN_EMAIL, ADMIN_PASSWORD))
