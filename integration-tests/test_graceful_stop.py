"""A normal stop (SIGTERM to gunicorn's master) while an upload is still receiving its body:
real gunicorn with gunicorn.conf.py, PostgreSQL and the local store. The client sends part
of the body and then nothing, keeping its connection open, so the upload cannot finish
within the graceful timeout (shortened here to keep the test quick). Once gunicorn has
exited, nothing is left in the staging area, and `flask storage check --grace 0` finds the
store consistent with nothing to repair (issue 12). The client is answered 503.
"""

from __future__ import annotations

import signal
import socket
import time

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, depot_env, prepare_depot, run_flask
from processes import Gunicorn, temporary_database, wait_until

GRACEFUL_TIMEOUT = 3
DECLARED, SENT = 4 * 1024 * 1024, 256 * 1024


def _trickling_upload(url: str, token: str) -> socket.socket:
    """A raw PUT that declares DECLARED bytes, sends SENT of them and stops: the socket, open."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    conn.sendall(
        (
            "PUT /api/v1/uploads/trickle.txt HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Content-Type: text/plain\r\n"
            f"Content-Length: {DECLARED}\r\n\r\n"
        ).encode()
        + b"x" * SENT
    )
    return conn


def test_sigterm_with_an_upload_in_flight_leaves_no_staged_file(tmp_path):
    with temporary_database() as database_url:
        data_dir = tmp_path / "data"
        env = depot_env(database_url, data_dir, GUNICORN_GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT))
        prepare_depot(env)
        server = Gunicorn("graceful", env, tmp_path, workers=1, threads=2)
        try:
            token = Api(server.url).login(ADMIN_EMAIL, ADMIN_PASSWORD).token
            staging = data_dir / "uploads" / "staging"
            conn = _trickling_upload(server.url, token)
            try:
                assert wait_until(lambda: any(staging.iterdir()), timeout=10), "the upload was never staged"
                started = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                server.process.wait(timeout=GRACEFUL_TIMEOUT + 15)
                stopped_after = time.monotonic() - started
                answer = conn.recv(65536)
            finally:
                conn.close()
        finally:
            server.stop()
        log = server.log()
        assert list(staging.iterdir()) == [], f"left staged after {stopped_after:.1f} s:\n{log[-3000:]}"
        # Told to send it again (another worker or replica takes it), not that its body was bad.
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        check = run_flask(env, "storage", "check", "--grace", "0")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "abandoned staged files: 0" in check.stdout
        assert check.stdout.rstrip().endswith("consistent")
