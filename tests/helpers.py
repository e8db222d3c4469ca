"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
# The bucket the `s3_client` fixture creates in moto's in-process S3.
S3_BUCKET = "depot-test"
# Settings that put an app's files in that bucket.
S3_SETTINGS = {
    "STORAGE_BACKEND": "s3",
    "S3_BUCKET": S3_BUCKET,
    "S3_ACCESS_KEY_ID": "test",
    "S3_SECRET_ACCESS_KEY": "test",
}


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def send_chunked(testapp, path: str, body: bytes, content_type: str, status: int, method: str = "POST", headers=None):
    """Send `body` without Content-Length, as a server passes on a chunked request."""
    import io

    from webtest import TestRequest

    request = TestRequest.blank(path, method=method, headers={"Content-Type": content_type, **(headers or {})})
    request.environ.pop("CONTENT_LENGTH", None)
    request.environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    request.environ["wsgi.input"] = io.BytesIO(body)
    request.environ["wsgi.input_terminated"] = True
    return testapp.do_request(request, status=status)


def without_request_id(body: dict) -> dict:
    """An error body minus its per-request id, for comparing two errors."""
    return {key: value for key, value in body.items() if key != "request_id"}


def png_bytes(size: int = 1024) -> bytes:
    """Bytes that start like a PNG file, padded with random data to `size`."""
    import os

    header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    return header + os.urandom(max(size - len(header), 0))


def pdf_bytes(size: int = 1024) -> bytes:
    """Bytes that start like a PDF file."""
    header = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    return header + b"0" * max(size - len(header), 0)


def sha256_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# The real Redis the rate-limit tests count in.
REDIS_URL = os.environ.get("DEPOT_TEST_REDIS", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def redis_key_prefix(name: str) -> Iterator[str]:
    """A fresh key prefix in the Redis at REDIS_URL; its keys are deleted afterwards. Fails,
    never skips, with what to install when Redis does not answer."""
    import pytest
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({error.__class__.__name__}). Install and start it "
            "(Debian: `apt-get install redis-server`, then `redis-server --daemonize yes`) or set DEPOT_TEST_REDIS.",
            pytrace=False,
        )
    prefix = f"{name}-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(f"*{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def exec_gunicorn_conf(folder: Path = ROOT) -> tuple[dict, mock.Mock]:
    """gunicorn.conf.py's settings, read as gunicorn reads the file (from `folder`, whose .env it
    loads), with gevent's monkey patching recorded instead of applied to the test process."""
    settings: dict = {"__file__": str(folder / "gunicorn.conf.py")}
    with mock.patch("gevent.monkey.patch_all") as patch_all:
        exec(compile((ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), settings)  # noqa: S102
    return settings, patch_all
