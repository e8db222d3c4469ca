"""The uploads of this process still being handled, so a stopping worker can end their bodies,
and a body that stops arriving is ended after an idle timeout.

Why: gunicorn stops a worker (SIGTERM to the master) by letting its requests run for the
graceful timeout, then killing it with SIGKILL, and a killed process runs no cleanup. An upload
whose client sends slowly, or not at all, would still be receiving its body at that moment,
and its staged bytes (a file in the staging folder, an S3 multipart upload) would stay behind.
So gunicorn.conf.py calls `end_bodies` shortly before the kill: it shuts the reading side of
each upload's connection, the blocked read returns end-of-file, and the request fails the way
a client hanging up does (the body ended early), through the store's own error path, which
removes what was staged. `end_bodies` then waits, bounded, until those requests have finished.
Their client is told 503 (send it again: another worker or replica will take it), not the 400
of a body that ended early.

Shutting only the reading side leaves the answer free to go out; an upload that had already
received its whole body does not read again, so it is not disturbed. Outside gunicorn (the
development server, tests) a request has no `gunicorn.socket` and nothing is shut.

The same socket bounds a stalled client. gunicorn reads a body with recv() calls and no
timeout (blocking ones under gthread, cooperative ones under gevent), so a client that declares
a body, sends part of it and then nothing keeps its request (a thread, or a greenlet with its
staged file and upload slot) for as long as it keeps its connection open. While the upload is
handled the socket has a timeout of BODY_IDLE_TIMEOUT_SECONDS: each recv waits at most that
long (a body that keeps coming, however slowly, continues), a recv that times out raises
TimeoutError through gunicorn's body reader, and upload_sources turns it into BodyTimeout
(408), which fails the upload through the store's error path like any other. The socket's
own timeout is put back before the answer is written, so a connection kept alive carries no
timeout into its next request (gthread also makes the socket blocking again for each one).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

from flask import Request
from werkzeug.exceptions import ClientDisconnected

from app.exceptions import Malformed, Unavailable

log = logging.getLogger(__name__)

_changed = threading.Condition()
_stopping = threading.Event()
_uploads: dict[object, socket.socket | None] = {}


@contextlib.contextmanager
def upload_in_flight(request: Request, idle_timeout: float | None = None) -> Iterator[None]:
    """Counts the request as an upload of this process until it has finished, staged bytes
    removed or committed; meanwhile each read of its body waits at most `idle_timeout`
    seconds (None: no limit)."""
    token = object()
    sock = request.environ.get("gunicorn.socket")
    with _changed:
        _uploads[token] = sock
    with _idle_timeout(sock, idle_timeout):
        try:
            yield
        except (Malformed, ClientDisconnected):
            if not _stopping.is_set():
                raise
            raise Unavailable("The server is stopping; nothing was stored. Send the upload again.") from None
        finally:
            with _changed:
                del _uploads[token]
                _changed.notify_all()


@contextlib.contextmanager
def _idle_timeout(sock: socket.socket | None, seconds: float | None) -> Iterator[None]:
    """Each read from `sock` waits at most `seconds` meanwhile; its own timeout afterwards."""
    if sock is None or seconds is None:
        yield
        return
    previous = sock.gettimeout()
    sock.settimeout(seconds)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # closed meanwhile: nothing to put back
            sock.settimeout(previous)


def end_bodies(wait: float) -> int:
    """End the bodies of the uploads in flight, then wait up to `wait` seconds for those
    requests to finish; how many were still unfinished when the wait ended."""
    _stopping.set()
    with _changed:
        connections = [sock for sock in _uploads.values() if sock is not None]
    for sock in connections:
        with contextlib.suppress(OSError):  # already closed by the client
            sock.shutdown(socket.SHUT_RD)
    deadline = time.monotonic() + wait
    with _changed:
        while _uploads and (left := deadline - time.monotonic()) > 0:
            _changed.wait(left)
        unfinished = len(_uploads)
    if connections:
        log.warning(
            "stopping: ended the body of %d uploads in flight; %d still unfinished",
            len(connections),
            unfinished,
        )
    return unfinished
