"""app/api/request_body.py: an upload's body read into a new buffer per block, never past
its declared length (the server's stream may be the bare connection), and through Werkzeug's
stream when its length is unknown."""

from __future__ import annotations

import io

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from app.api.request_body import RequestBody


def _request(server_stream, **headers) -> Request:
    environ = EnvironBuilder(method="PUT", headers=headers).get_environ()
    environ["wsgi.input"] = server_stream
    environ.pop("CONTENT_LENGTH", None)
    if "Content-Length" in headers:
        environ["CONTENT_LENGTH"] = headers["Content-Length"]
    return Request(environ)


def _blocks(body: RequestBody, size: int) -> list[bytes]:
    blocks = []
    while block := body.read(size):
        blocks.append(bytes(block))
    return blocks


def test_a_body_of_known_length_is_read_in_full_blocks_and_not_past_its_end():
    connection = io.BufferedReader(io.BytesIO(b"a" * 2500 + b"GET /next HTTP/1.1\r\n"))

    blocks = _blocks(RequestBody(_request(connection, **{"Content-Length": "2500"})), 1000)

    assert blocks == [b"a" * 1000, b"a" * 1000, b"a" * 500]
    assert connection.read() == b"GET /next HTTP/1.1\r\n"


def test_a_body_cut_short_ends_where_the_client_stopped():
    blocks = _blocks(RequestBody(_request(io.BytesIO(b"b" * 700), **{"Content-Length": "5000"})), 1000)

    assert blocks == [b"b" * 700]


def test_a_body_of_unknown_length_goes_through_werkzeugs_stream():
    environ = EnvironBuilder(method="PUT", headers={"Transfer-Encoding": "chunked"}).get_environ()
    environ["wsgi.input"] = io.BytesIO(b"hello world")
    environ["wsgi.input_terminated"] = True  # a server that decoded the chunks, as gunicorn does
    environ.pop("CONTENT_LENGTH", None)

    blocks = _blocks(RequestBody(Request(environ)), 4)

    assert b"".join(blocks) == b"hello world"


def test_bytes_that_arrived_before_a_failure_are_returned_then_the_failure():
    class Stalls(io.RawIOBase):
        def __init__(self) -> None:
            self._sent = False

        def readable(self):
            return True

        def readinto(self, buffer):
            if self._sent:
                raise TimeoutError("timed out")
            self._sent = True
            buffer[:300] = b"c" * 300
            return 300

    body = RequestBody(_request(Stalls(), **{"Content-Length": "5000"}))

    assert bytes(body.read(1000)) == b"c" * 300
    with pytest.raises(TimeoutError):
        body.read(1000)
