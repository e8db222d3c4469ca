"""The keep-alive rule (app.keepalive): an answer given before the request body was read to
its end drains a small body that comes in time, and says `Connection: close` otherwise."""

from __future__ import annotations

import io
import socket
import threading

import pytest

from app.keepalive import DRAIN_BYTES, CloseAfterUnreadBody


def test_a_refusal_that_leaves_a_large_body_unread_closes_the_connection(testapp):
    refused = testapp.put(
        "/api/v1/uploads/big.txt", params=b"x" * (DRAIN_BYTES + 1), content_type="text/plain", status=401
    )

    assert refused.headers["Connection"] == "close"


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


@pytest.fixture
def connection():
    """(client end, server end) of a real local connection; the server end is the socket
    gunicorn puts in the environ."""
    client, server = socket.socketpair()
    with client, server:
        yield client, server


def _answer(connection, declared: int, sent: bytes, **environ) -> list[tuple[str, str]]:
    """The headers of an answer given without reading a body of `declared` bytes, of which
    the client sent `sent`; what was drained is gone from the connection."""
    client, server = connection
    sender = threading.Thread(target=client.sendall, args=(sent,))
    sender.start()
    headers: list = []
    environ = {
        "wsgi.input": server.makefile("rb"),
        "gunicorn.socket": server,
        "CONTENT_LENGTH": str(declared),
        **environ,
    }
    CloseAfterUnreadBody(_answer_without_reading)(environ, lambda s, h, e=None: headers.extend(h))
    sender.join()
    return headers


def _left_on(server: socket.socket) -> int:
    server.setblocking(False)
    try:
        return len(server.recv(1 << 20))
    except BlockingIOError:
        return 0


def test_a_small_unread_body_is_read_to_its_end_before_the_answer(connection):
    headers = _answer(connection, DRAIN_BYTES, b"y" * DRAIN_BYTES)

    assert ("Connection", "close") not in headers
    assert _left_on(connection[1]) == 0


def test_a_small_body_that_does_not_come_in_time_is_left_and_closes(connection):
    headers = _answer(connection, 1000, b"y" * 10)

    assert ("Connection", "close") in headers


def test_a_large_unread_body_is_not_drained_and_closes(connection):
    headers = _answer(connection, DRAIN_BYTES + 1, b"y" * 1000)

    assert ("Connection", "close") in headers
    assert _left_on(connection[1]) == 1000


def test_a_chunked_body_of_unknown_length_is_not_drained_and_closes(connection):
    headers = _answer(connection, 0, b"y" * 10, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")

    assert ("Connection", "close") in headers
    assert _left_on(connection[1]) == 10


def test_without_the_servers_socket_nothing_is_drained():
    body = io.BytesIO(b"y" * 10)
    headers: list = []
    CloseAfterUnreadBody(_answer_without_reading)(
        {"wsgi.input": body, "CONTENT_LENGTH": "10"}, lambda s, h, e=None: headers.extend(h)
    )

    assert ("Connection", "close") in headers
    assert body.tell() == 0


def _read_with_readinto(environ, start_response):
    buffer = bytearray(4096)
    while environ["wsgi.input"].readinto(buffer):
        pass
    start_response("201 CREATED", [("Content-Type", "application/json")])
    return [b"{}"]


@pytest.mark.parametrize("server_stream", [io.BytesIO, lambda data: io.BufferedReader(io.BytesIO(data))])
def test_a_body_read_to_its_end_with_readinto_keeps_the_connection(server_stream):
    headers: list = []
    body = b"y" * (DRAIN_BYTES + 10_000)  # too large to be drained: only the app's reads count
    CloseAfterUnreadBody(_read_with_readinto)(
        {"wsgi.input": server_stream(body), "CONTENT_LENGTH": str(len(body))}, lambda s, h, e=None: headers.extend(h)
    )

    assert ("Connection", "close") not in headers


def test_readinto_works_over_a_server_stream_that_only_has_read():
    class ReadOnly:
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self._data.read(size)

    headers: list = []
    CloseAfterUnreadBody(_read_with_readinto)(
        {"wsgi.input": ReadOnly(b"z" * 10_000), "CONTENT_LENGTH": "10000"}, lambda s, h, e=None: headers.extend(h)
    )

    assert ("Connection", "close") not in headers
