"""An upload's request body read in large blocks, each received straight into its own buffer.

Werkzeug's `request.stream` over gunicorn's body copies every byte four or five times on its
way (gunicorn's read-ahead buffers, then Werkzeug's readinto), and that copying, not the
network, the hash or the disk, was what bounded a large upload: 256 MiB read 1 MiB at a time
and hashed ran at 0.5-0.8 GB/s that way and at 1.25 GB/s received with recv_into (on a
socket pair, gevent and gthread alike). So a body of known length is read with the server's
`readinto` (gunicorn's as app/gunicorn_wiring.py gives it one, Werkzeug's otherwise) into a
new buffer per block, which the upload then hashes and hands to the store's writer thread
without copying it again. Never past the declared length: the server's stream may be the
bare connection. A chunked body, of unknown length, is read through `request.stream`.
"""

from __future__ import annotations

from flask import Request


class RequestBody:
    """read(size): the next `size` bytes of the body (fewer only at its end, none after it)."""

    def __init__(self, request: Request) -> None:
        self._left = request.content_length
        self._server_stream = request.environ.get("wsgi.input")
        if self._left is None or not hasattr(self._server_stream, "readinto"):
            self.read = request.stream.read  # of unknown length: Werkzeug knows where it ends

    def read(self, size: int) -> bytes | bytearray:
        block = bytearray(min(size, self._left))
        filled = 0
        with memoryview(block) as view:
            while filled < len(block):
                received = self._server_stream.readinto(view[filled:])
                if not received:
                    break  # the client hung up: the caller sees a short body
                filled += received
        self._left -= filled
        if filled < len(block):
            del block[filled:]
        return block
