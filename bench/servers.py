"""The servers a benchmark run starts on loopback, all with the same gunicorn settings:

- Depot under gunicorn.conf.py (production config, local file store, SQLite or PostgreSQL);
- the baselines of bench/baselines.py under the same gunicorn.conf.py;
- nginx serving the download test file from disk (Debian's nginx).

Process handling (free ports, start, wait, stop) is the integration harness's own
(integration-tests/processes.py), so the benchmark runs Depot exactly as the tests do.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "integration-tests"))

from processes import (  # noqa: E402
    BIN,
    Gunicorn,
    Process,
    find_tool,
    free_port,
    temporary_database,  # noqa: E402, F401 (bench.__main__ uses it from here)
    wait_for_http,
)

ADMIN_EMAIL = "bench@example.com"
ADMIN_PASSWORD = "benchmark admin password"
# Identical for Depot and the baselines: the comparison is of the code, not the settings.
# The worker class is gunicorn.conf.py's default (gevent) unless GUNICORN_WORKER_CLASS says
# gthread, to compare the two models.
WORKER_CLASS = os.environ.get("GUNICORN_WORKER_CLASS") or "gevent"
GUNICORN_SETTINGS = {"GUNICORN_WORKERS": "2", "GUNICORN_WORKER_CLASS": WORKER_CLASS, "GUNICORN_THREADS": "4"}


def describe_workers() -> str:
    """How the servers run, for the report."""
    return "2 gthread workers × 4 threads" if WORKER_CLASS == "gthread" else "2 gevent workers"


@dataclass
class Depot:
    """A running Depot: its URL, an admin's token, its database URL and its gunicorn."""

    server: Gunicorn
    token: str
    database_url: str
    upload_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def auth(self) -> str:
        return f"Authorization: Bearer {self.token}"


def _flask(env: dict, *args: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        [str(BIN / "flask"), *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


@contextlib.contextmanager
def depot(work: Path, name: str, database_url: str | None = None) -> Iterator[Depot]:
    """Depot under gunicorn, migrated, with an admin logged in; SQLite unless given a URL."""
    data = work / name
    data.mkdir()
    database_url = database_url or f"sqlite:///{data / 'depot.sqlite3'}"
    env = {
        **os.environ,
        **GUNICORN_SETTINGS,
        "DEPOT_ENV": "production",
        "FLASK_APP": "autoapp.py",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data),
        "UPLOAD_DIR": str(data / "uploads"),
        "MAX_UPLOAD_BYTES": str(2 * 1024**3),
        "RATELIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    _flask(env, "db", "upgrade")
    _flask(env, "users", "create-admin", ADMIN_EMAIL, "--password-stdin", stdin=ADMIN_PASSWORD)
    server = Gunicorn(name, env, work)
    try:
        reply = requests.post(
            f"{server.url}/api/v1/auth/token", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30
        )
        reply.raise_for_status()
        yield Depot(server, reply.json()["access_token"], database_url, data / "uploads")
    finally:
        server.stop()


@contextlib.contextmanager
def baselines(work: Path) -> Iterator[Gunicorn]:
    """bench/baselines.py under gunicorn with Depot's settings."""
    target = work / "baseline-files"
    target.mkdir()
    env = {**os.environ, **GUNICORN_SETTINGS, "BENCH_BASELINE_DIR": str(target)}
    server = Gunicorn("baselines", env, work, app="bench.baselines:app", health="/hello")
    server.files = target
    try:
        yield server
    finally:
        server.stop()


class StaticNginx(Process):
    """nginx serving one folder at /files/ with sendfile, as a download ceiling."""

    def __init__(self, folder: Path, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        prefix = work / "nginx-static"
        prefix.mkdir()
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {k}_temp_path {prefix / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (prefix / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 2;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} warn;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n{temp}\n    access_log off;\n    sendfile on;\n    tcp_nopush on;\n"
            f"    server {{\n        listen 127.0.0.1:{self.port};\n"
            f"        location /files/ {{ alias {folder}/; }}\n"
            "        location = /ok { return 200 'ok'; }\n    }\n}\n"
        )
        args = [find_tool("nginx", "the download benchmark compares Depot with it"), "-p", str(prefix)]
        super().__init__("nginx-static", [*args, "-c", str(prefix / "nginx.conf")], {**os.environ}, prefix / "out.log")
        wait_for_http(f"{self.url}/ok", self.process, prefix / "error.log", "nginx")


@contextlib.contextmanager
def static_nginx(folder: Path, work: Path) -> Iterator[StaticNginx]:
    server = StaticNginx(folder, work)
    try:
        yield server
    finally:
        server.stop()
