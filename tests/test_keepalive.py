"""The keep-alive rule (app.keepalive): an answer given before the request body was read to
its end drains a small body first and says `Connection: close` after a larger one."""

from __future__ import annotations

import io

from app.keepalive import DRAIN_BYTES, CloseAfterUnreadBody


def test_a_refusal_that_leaves_a_large_body_unread_closes_the_connection(testapp):
    refused = testapp.put(
        "/api/v1/uploads/big.txt", params=b"x" * (DRAIN_BYTES + 1), content_type="text/plain", status=401
    )

    assert refused.headers["Connection"] == "close"


def test_a_refusal_of_a_small_body_drains_it_and_keeps_the_connection(testapp, uploader_headers):
    refused = testapp.put(
        "/api/v1/uploads/tool.exe", params=b"x" * 1024, headers=uploader_headers, content_type="text/plain", status=415
    )

    assert "Connection" not in refused.headers


def test_a_normal_answer_keeps_the_connection(testapp, uploader_headers):
    created = testapp.put(
        "/api/v1/uploads/notes.txt", params=b"notes\n", headers=uploader_headers, content_type="text/plain", status=201
    )
    me = testapp.get("/api/v1/users/me", headers=uploader_headers, status=200)

    assert "Connection" not in created.headers
    assert "Connection" not in me.headers


def _answer_without_reading(environ, start_response):
    start_response("401 UNAUTHORIZED", [("Content-Type", "application/json")])
    return [b"{}"]


def _call(app, body: bytes, **environ) -> tuple[list, io.BytesIO]:
    stream = io.BytesIO(body)
    seen: list = []
    app({"wsgi.input": stream, "CONTENT_LENGTH": str(len(body)), **environ}, lambda s, h, e=None: seen.extend(h))
    return seen, stream


def test_a_small_unread_body_is_read_to_its_end_before_the_answer():
    headers, stream = _call(CloseAfterUnreadBody(_answer_without_reading), b"y" * DRAIN_BYTES)

    assert stream.tell() == DRAIN_BYTES
    assert ("Connection", "close") not in headers


def test_a_chunked_body_of_unknown_length_is_not_drained_and_closes():
    headers, stream = _call(
        CloseAfterUnreadBody(_answer_without_reading), b"y" * 10, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked"
    )

    assert stream.tell() == 0
    assert ("Connection", "close") in headers
