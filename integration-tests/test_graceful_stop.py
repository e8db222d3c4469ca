"""A normal stop (SIGTERM to gunicorn's master; also Ctrl-C's SIGINT) while an upload is still receiving its body:
real gunicorn with gunicorn.conf.py, PostgreSQL, and the local store or SeaweedFS as the S3
store. The client sends part of the body (more than one S3 part, so a multipart upload is
open) and then nothing, keeping its connection open, so the upload cannot finish within the
graceful timeout (shortened here to keep the test quick). Once gunicorn has exited, nothing
is staged (no staging file, no staged object, no unfinished multipart upload), and `flask
storage check --grace 0` finds the store consistent with nothing to repair (issue 12). The
client is answered 503.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time

import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, depot_env, prepare_depot, run_flask, s3_settings
from processes import Gunicorn, SeaweedFS, temporary_database, wait_until

GRACEFUL_TIMEOUT = 3
MIB = 1024 * 1024
# More than the S3 part size of s3_settings (5 MiB): the first part is sent, the upload open.
DECLARED, SENT = 16 * MIB, 6 * MIB
BUCKET = "depot-graceful-stop"


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


@pytest.mark.parametrize(
    ("backend", "stop"),
    [
        ("local", signal.SIGTERM),
        ("s3", signal.SIGTERM),
        # Ctrl-C (a quick stop): the workers exit at once, through gunicorn's worker_int hook.
        ("local", signal.SIGINT),
    ],
    ids=["local", "s3", "local-ctrl-c"],
)
def test_a_stop_with_an_upload_in_flight_leaves_no_staged_file(backend, stop, tmp_path):
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(temporary_database())
        data_dir = tmp_path / "data"
        if backend == "s3":
            store = SeaweedFS(tmp_path / "seaweedfs")
            stack.callback(store.stop)
            settings, s3 = s3_settings(store, BUCKET), store.client()

            def staged() -> list[str]:
                listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="staging/").get("Contents", [])
                uploads = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
                return [item["Key"] for item in listing] + [f"multipart {u['Key']}" for u in uploads]

        else:
            settings = {}

            def staged() -> list[str]:
                return [path.name for path in (data_dir / "uploads" / "staging").iterdir()]

        env = depot_env(database_url, data_dir, GUNICORN_GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT), **settings)
        prepare_depot(env, storage=backend == "s3")
        server = Gunicorn("graceful", env, tmp_path, workers=1, threads=2)
        stack.callback(server.stop)
        token = Api(server.url).login(ADMIN_EMAIL, ADMIN_PASSWORD).token
        conn = stack.enter_context(_trickling_upload(server.url, token))
        assert wait_until(staged, timeout=20), "the upload was never staged"

        started = time.monotonic()
        server.process.send_signal(stop)
        server.process.wait(timeout=GRACEFUL_TIMEOUT + 15)
        stopped_after = time.monotonic() - started
        answer = conn.recv(65536)

        assert staged() == [], f"left staged after {stopped_after:.1f} s:\n{server.log()[-3000:]}"
        # Told to send it again (another worker or replica takes it), not that its body was bad.
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        check = run_flask(env, "storage", "check", "--grace", "0")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "abandoned staged files: 0" in check.stdout
        assert check.stdout.rstrip().endswith("consistent")
