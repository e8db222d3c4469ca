"""`./run_tests.sh` needs no server running beforehand: without DEPOT_TEST_PG and
DEPOT_TEST_REDIS, integration-tests/local_services.py starts PostgreSQL and Redis servers of
the run's own, hands their URLs to the command, and stops them when it ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest
import redis
from processes import ROOT

# Run by the wrapper: proves both servers answer, and says where they are.
PROBE = """
import json, os, psycopg, redis
with psycopg.connect(os.environ["DEPOT_TEST_PG"], autocommit=True) as conn:
    conn.execute("CREATE DATABASE depot_local_services_probe")
    conn.execute("DROP DATABASE depot_local_services_probe")
redis.Redis.from_url(os.environ["DEPOT_TEST_REDIS"]).set("depot-local-services-probe", "1")
print(json.dumps({"pg": os.environ["DEPOT_TEST_PG"], "redis": os.environ["DEPOT_TEST_REDIS"]}))
"""


def run_wrapped(env: dict, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "integration-tests" / "local_services.py"), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_settings_the_run_gets_servers_of_its_own_stopped_at_the_end():
    env = {key: value for key, value in os.environ.items() if key not in ("DEPOT_TEST_PG", "DEPOT_TEST_REDIS")}
    done = run_wrapped(env, sys.executable, "-c", PROBE)
    assert done.returncode == 0, done.stderr
    urls = json.loads(done.stdout.splitlines()[-1])
    # Not the machine's servers: their own loopback ports.
    assert ":5432/" not in urls["pg"] and "127.0.0.1" in urls["pg"]
    assert ":6379/" not in urls["redis"] and "127.0.0.1" in urls["redis"]
    # Stopped once the command ended.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(urls["pg"], connect_timeout=2)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(urls["redis"], socket_connect_timeout=2).ping()


def test_given_servers_are_used_as_they_are_and_the_exit_code_is_the_commands():
    env = {**os.environ, "DEPOT_TEST_PG": "postgresql://given/pg", "DEPOT_TEST_REDIS": "redis://given/0"}
    done = run_wrapped(
        env,
        sys.executable,
        "-c",
        "import os, sys; print(os.environ['DEPOT_TEST_PG'], os.environ['DEPOT_TEST_REDIS']); sys.exit(7)",
    )
    assert done.returncode == 7
    assert done.stdout.split() == ["postgresql://given/pg", "redis://given/0"]
    assert "==>" not in done.stdout  # nothing started
