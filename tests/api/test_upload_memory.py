"""Large files stream through in bounded memory: a 200 MB upload and download, measured.

The request body is generated lazily and the response is consumed chunk by chunk, so the
only large allocations tracemalloc could see are the app's own.
"""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc

from webtest import TestRequest
from werkzeug.test import EnvironBuilder

SIZE = 200 * 1024 * 1024
BLOCK = os.urandom(1024 * 1024)
BOUNDARY = "depot-memory-test-boundary"
# Python allocations the app may make while moving 200 MB (chunks, parser buffers, objects).
PEAK_LIMIT = 32 * 1024 * 1024


class GeneratedBody(io.RawIOBase):
    """A readable body made of `prefix`, SIZE bytes of repeated BLOCK, then `suffix`."""

    def __init__(self, prefix: bytes, suffix: bytes) -> None:
        self.parts = [prefix, None, suffix]
        self.position = 0  # within the payload

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self.parts:
            part = self.parts[0]
            if part is None:
                remaining = SIZE - self.position
                if remaining == 0:
                    self.parts.pop(0)
                    continue
                offset = self.position % len(BLOCK)
                n = min(len(buffer), remaining, len(BLOCK) - offset)
                buffer[:n] = BLOCK[offset : offset + n]
                self.position += n
                return n
            if not part:
                self.parts.pop(0)
                continue
            n = min(len(buffer), len(part))
            buffer[:n] = part[:n]
            self.parts[0] = part[n:]
            return n
        return 0


def test_a_200_mb_upload_and_download_keep_memory_flat(app, testapp, uploader_headers):
    prefix = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="description"\r\n\r\nbig\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + b"\x89PNG\r\n\x1a\n"
    suffix = f"\r\n--{BOUNDARY}--\r\n".encode()
    request = TestRequest.blank(
        "/api/v1/uploads",
        method="POST",
        headers={**uploader_headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    request.environ["CONTENT_LENGTH"] = str(len(prefix) + SIZE + len(suffix))
    request.environ["wsgi.input"] = io.BufferedReader(GeneratedBody(prefix, suffix), buffer_size=64 * 1024)

    tracemalloc.start()
    try:
        response = testapp.do_request(request, status=201)
        _current, upload_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    digest = hashlib.sha256(b"\x89PNG\r\n\x1a\n")
    for _ in range(SIZE // len(BLOCK)):
        digest.update(BLOCK)
    assert response.json["size"] == SIZE + 8
    assert response.json["sha256"] == digest.hexdigest()
    assert upload_peak < PEAK_LIMIT, f"upload peak {upload_peak / 2**20:.1f} MiB"

    environ = EnvironBuilder(
        path=f"/api/v1/uploads/{response.json['id']}/content", headers=uploader_headers
    ).get_environ()
    received, download_digest = 0, hashlib.sha256()
    tracemalloc.start()
    try:
        body = app(environ, lambda status, headers, exc_info=None: None)
        for chunk in body:
            received += len(chunk)
            download_digest.update(chunk)
        getattr(body, "close", lambda: None)()
        _current, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (received, download_digest.hexdigest()) == (SIZE + 8, response.json["sha256"])
    assert download_peak < PEAK_LIMIT, f"download peak {download_peak / 2**20:.1f} MiB"
