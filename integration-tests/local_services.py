"""Run a command (the test run) with PostgreSQL and Redis servers of its own:

    python integration-tests/local_services.py pytest -q

The test suite needs a PostgreSQL server where it may create databases and a Redis server.
They are found at DEPOT_TEST_PG and DEPOT_TEST_REDIS when those are set (a forge's service
containers, a developer's own servers). When one is not set, this starts that server here,
from Debian's packages, on a free loopback port with its data in a temporary folder, hands
its URL to the command in that variable, and stops it and deletes the folder when the command
ends, however it ends. So `./run_tests.sh` needs no server running beforehand, and never
touches the machine's own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from processes import PostgresServer, Process, find_tool, free_port


class RedisServer(Process):
    """Debian's redis-server on a free loopback port, keeping nothing on disk."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        program = find_tool("redis-server", "the rate-limit tests count in a real Redis")
        args = [program, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        args += ["--dir", str(log_dir)]
        super().__init__("redis", args, {**os.environ}, log_dir / "redis.log", cwd=log_dir)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        for _ in range(100):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.log()[-3000:]}")
            with contextlib.suppress(redis.RedisError):
                client.ping()
                return
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer:\n{self.log()[-3000:]}")


def main(command: list[str]) -> int:
    env = dict(os.environ)
    log_dir = Path(tempfile.mkdtemp(prefix="depot-services-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, log_dir, ignore_errors=True)
        if not env.get("DEPOT_TEST_PG"):
            postgres = PostgresServer(log_dir)
            stack.callback(postgres.close)
            env["DEPOT_TEST_PG"] = postgres.admin_url
            print(f"==> PostgreSQL of this run at {postgres.admin_url} (DEPOT_TEST_PG to use another)", flush=True)
        if not env.get("DEPOT_TEST_REDIS"):
            server = RedisServer(log_dir)
            stack.callback(server.stop)
            env["DEPOT_TEST_REDIS"] = server.url
            print(f"==> Redis of this run at {server.url} (DEPOT_TEST_REDIS to use another)", flush=True)
        child = subprocess.Popen(command, env=env)
        # Ctrl-C reaches the whole process group: let the command finish its own cleanup,
        # then stop the servers. SIGTERM (a CI timeout) is passed on the same way.
        signal.signal(signal.SIGINT, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
        return child.wait()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: local_services.py COMMAND [ARGS...]")
    sys.exit(main(sys.argv[1:]))
