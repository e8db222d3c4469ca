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

Blocks start at FIRST_BLOCK_BYTES and double up to the size asked for while the body keeps
coming: a buffer is allocated (and zeroed) whole, so a thousand uploads trickling 1 KiB/s
each holding a 1 MiB block cost a GiB of memory and made the worker slow to answer others
(the slow-clients test's probes: p99 530 ms); each holds 64 KiB instead.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Request, current_app
from werkzeug.exceptions import HTTPException

from app.exceptions import BodyTimeout, Malformed

FIRST_BLOCK_BYTES = 64 * 1024


class RequestBody:
    """read(size): the body's next bytes, at most `size` (fewer in the first blocks and at its
    end; none after it)."""

    def __init__(self, request: Request) -> None:
        self._left = request.content_length
        self._block = FIRST_BLOCK_BYTES
        self._failure: Exception | None = None
        self._server_stream = request.environ.get("wsgi.input")
        if self._left is None or not hasattr(self._server_stream, "readinto"):
            self.read = request.stream.read  # of unknown length: Werkzeug knows where it ends

    def read(self, size: int) -> bytes | bytearray:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        block = bytearray(min(size, self._block, self._left))
        self._block = min(self._block * 2, size)
        filled = 0
        with memoryview(block) as view:
            while filled < len(block):
                try:
                    received = self._server_stream.readinto(view[filled:])
                except Exception as error:
                    if not filled:
                        raise
                    # What arrived before the failure is the caller's (a resumable upload
                    # keeps it); the failure comes with the next read.
                    # (Without its traceback, whose frames hold a view of the block.)
                    self._failure = error.with_traceback(None)
                    break
                if not received:
                    break  # the client hung up: the caller sees a short body
                filled += received
        self._left -= filled
        if filled < len(block):
            del block[filled:]
        return block


def read_block(body: RequestBody, size: int) -> bytes | bytearray:
    """body.read(size), its failures as Depot's errors: a body the server cannot decode (bad
    chunk framing) is 400, one that stops arriving for the idle timeout is 408."""
    try:
        return body.read(size)
    except (TimeoutError, HTTPException) as error:
        # The idle timeout that upload_in_flight sets on the connection; Werkzeug's stream
        # (a body of known length) raises it as ClientDisconnected, the timeout its context.
        if isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError):
            raise BodyTimeout(current_app.config["BODY_IDLE_TIMEOUT_SECONDS"]) from None
        raise  # Werkzeug's own answer (a client that disconnected)
    except Exception as error:  # noqa: BLE001 (servers raise their own types: gunicorn's ParseException)
        raise Malformed(f"The request body could not be read ({type(error).__name__}).") from None


def body_blocks(request: Request, size: int) -> Iterator[bytes | bytearray]:
    """The request body in blocks of at most `size` bytes, until its end."""
    body = RequestBody(request)
    while block := read_block(body, size):
        yield block
