"""One rule for keep-alive: an answer given before the request body was read to its end
first reads what is left of a small body, and says `Connection: close` after a larger one.

Depot refuses many requests from their headers alone: no token or a role that may not
upload (401, 403), a Content-Length over the limit (413), a file type it refuses (415), a
rate limit (429), a multipart part it stops at (400, 422). Reading the rest of a large body
only to throw it away would cost what the refusal saves, so it stays unread on the
connection. Keeping that connection alive is then a bet that the server can drain it before
the next request: gunicorn drains at most 64 KiB (for at most 5 s), then closes the connection
its answer had just announced as kept alive. nginx (deploy/nginx: upstream `keepalive`,
request buffering off) has by then sent the whole body and pooled the connection, sends the
next client's request on it, and answers 502 (503 in Depot's template) to a request that
did nothing wrong.

So before answering, what is left of a body of at most DRAIN_BYTES (declared by its
Content-Length) is read and dropped, if it arrives within DRAIN_SECONDS: nginx has then
passed the whole body on and read all of the client's, and both of its connections stay
safely alive (draining after the answer would be too late: nginx, its answer complete, would
close the client's connection while the client may already be sending its next request on
it). The time bound needs the server's socket (gunicorn's is in the environ): under another
server nothing is drained. A larger body, one of unknown length, or one that does not come
in time, is left unread and the answer says `Connection: close`: the server closes the
connection after it, and no proxy reuses it (nginx never pools an upstream connection whose
answer said close). A body read to its end, or no body, changes nothing. gunicorn
drops the hop-by-hop headers an application sets, so gunicorn.conf.py makes it honour this
one; Werkzeug's development server honours it as it is.

It is WSGI middleware, not an after_request hook, because under gunicorn Flask's
`request.stream` is the server's own stream, which cannot tell whether it is exhausted:
counting what the app reads is the one portable way to know.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

# Read and dropped in well under a millisecond when it is already on its way, as the body
# of a refused upload is; a client still to send it holds its request only this long.
DRAIN_BYTES = 512 * 1024
# A client that declares a body and does not send it keeps its request no longer than this.
DRAIN_SECONDS = 0.5


def declared_body_length(environ: dict) -> int | None:
    """The body's length in bytes: 0 when there is none, None when unknown (chunked)."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None
    try:
        return max(int(environ.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return None


class TrackedBody:
    """The request body (`wsgi.input`), noting whether it has been read to its end."""

    def __init__(self, stream, length: int | None) -> None:
        self._stream = stream
        self._remaining = length
        self.finished = length == 0

    def _saw(self, data: bytes, size: int | None) -> bytes:
        self._count(len(data), size)
        return data

    def _count(self, received: int, size: int | None) -> None:
        if self._remaining is not None:
            self._remaining -= received
            if self._remaining <= 0:
                self.finished = True
        if not received and size != 0:  # the stream's end
            self.finished = True

    def read(self, size: int | None = -1) -> bytes:
        return self._saw(self._stream.read(*(() if size is None else (size,))), size)

    def readinto(self, buffer) -> int:
        """io's readinto, where the server's stream has one (gunicorn's, as gunicorn.conf.py
        wires it; Werkzeug's), else through read()."""
        with memoryview(buffer).cast("B") as view:
            if hasattr(self._stream, "readinto"):
                count = self._stream.readinto(view) or 0
            else:
                data = self._stream.read(len(view))
                count = len(data)
                view[:count] = data
            self._count(count, len(view))
        return count

    def readline(self, size: int | None = -1) -> bytes:
        return self._saw(self._stream.readline(*(() if size is None else (size,))), size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = self._stream.readlines(hint)
        for line in lines:
            self._saw(line, None)
        if hint is None or hint <= 0:  # read to the end
            self.finished = True
        return lines

    def drain(self, limit: int, seconds: float, sock) -> None:
        """Read and drop the rest of a body declared to be at most `limit` bytes long, for at
        most `seconds`, bounded by timeouts on `sock`, the connection the body comes from."""
        if self.finished or self._remaining is None or self._remaining > limit or sock is None:
            return
        deadline = time.monotonic() + seconds
        timeout = sock.gettimeout()
        try:
            while not self.finished and (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                self.read(min(self._remaining, 64 * 1024))
        except Exception:  # noqa: BLE001 (a timeout, or the client hung up: the connection closes)
            return
        finally:
            sock.settimeout(timeout)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class CloseAfterUnreadBody:
    """WSGI middleware: an answer given while the body is unread first drains a small body,
    and says `Connection: close` after a larger one."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        body = TrackedBody(environ["wsgi.input"], declared_body_length(environ))
        environ["wsgi.input"] = body

        def start(status: str, headers: list[tuple[str, str]], exc_info=None):
            body.drain(DRAIN_BYTES, DRAIN_SECONDS, environ.get("gunicorn.socket"))
            if not body.finished and not any(name.lower() == "connection" for name, _value in headers):
                headers = [*headers, ("Connection", "close")]
            return start_response(status, headers, exc_info)

        return self.app(environ, start)
