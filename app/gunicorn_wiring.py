"""What Depot adds to gunicorn, which gunicorn.conf.py wires in: a logger writing JSON lines
like the app's, fixes to gunicorn's own HTTP handling and to gevent's sockets, and a faster
way to read bodies. Each is a wrapper around or an addition to one gunicorn function, applied
once by `patch_gunicorn()`, and pinned by a test over a real gunicorn
(tests/test_gunicorn_logging.py, tests/test_gunicorn_wiring.py,
integration-tests/test_keepalive_refusals.py):

- a whole file sent with sendfile counts in the access log's bytes_sent;
- an answer saying `Connection: close` closes the connection (gunicorn drops the header);
- closing after such an answer lets the peer finish sending first (nginx would answer 502);
- the gevent worker closes that way too (it closed abruptly, whatever the peer still sent);
- under gevent, a file is sent with the kernel's sendfile, cooperatively (gevent copies it
  through Python 8 KiB at a time: downloads ran at 78% of gthread's speed);
- a request body has `readinto`, which receives a body of known length straight into the
  caller's buffer (gunicorn's read() copies every byte four times through its buffers: 256
  MiB read in 1 MiB blocks and hashed ran at 0.5-0.8 GB/s that way, 1.25 GB/s with recv_into,
  on gevent and gthread alike). Uploads read their bodies with it (app/api/request_body.py).
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time

from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.http import wsgi
from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers import base_async


class _CountingSocket:
    """The response's socket, counting what its sendfile() reports sent."""

    def __init__(self, sock) -> None:
        self._sock, self.sendfile_bytes = sock, 0

    def sendfile(self, *args, **kwargs) -> int:
        sent = self._sock.sendfile(*args, **kwargs)
        self.sendfile_bytes += sent
        return sent

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _sendfile_counting_bytes(original):
    """gunicorn's Response.sendfile, the path of a whole local file (Werkzeug's send_file hands
    it `wsgi.file_wrapper`), sends the body without adding it to `resp.sent`, which its write()
    does: so full downloads were logged with 0 bytes. This adds what the kernel reports sent."""

    def sendfile(self, respiter):
        sock, counting = self.sock, _CountingSocket(self.sock)
        self.sock = counting
        try:
            return original(self, respiter)
        finally:
            self.sock = sock
            self.sent += counting.sendfile_bytes

    sendfile.counts_bytes = True
    return sendfile


def _process_headers_honouring_close(original):
    """gunicorn drops every hop-by-hop header an application sets, `Connection` among them,
    and decides keep-alive alone. Depot says `Connection: close` when it answers before the
    request body was read to its end (app/keepalive.py says why): gunicorn then closes the
    connection after the answer, and its own Connection header says so."""

    def process_headers(self, headers):
        original(self, headers)
        if any(name.lower() == "connection" and value.strip().lower() == "close" for name, value in headers):
            self.force_close()

    process_headers.honours_close = True
    return process_headers


def _close_lingering_until_the_peer_closes(original):
    """gunicorn's graceful close (after an answer that said `Connection: close`) reads and
    drops what the peer still sends, then closes; but it stops after 64 KiB, and closing with
    more on its way resets the connection. nginx, still passing on the body of an upload Depot
    refused unread, then fails its write and answers 502 instead of Depot's 401/413/415. So
    it lingers until the peer closes (nginx does as soon as it has the answer), bounded by
    gunicorn's own 2 s alone."""

    def close_graceful(sock, timeout=2.0, max_drain=None):
        return original(sock, timeout=timeout, max_drain=sys.maxsize if max_drain is None else max_drain)

    close_graceful.lingers = True
    return close_graceful


class _UtilClosingGracefully:
    """gunicorn's util module as the gevent worker (base_async) sees it: its connections close
    gracefully, as the gthread worker's do, so the wrapper above applies to them as well."""

    closes_gracefully = True

    @staticmethod
    def close(sock) -> None:
        util.close_graceful(sock)

    def __getattr__(self, name: str):
        return getattr(util, name)


class _NoKernelSendfile(Exception):
    """os.sendfile cannot send this file (not a regular file, or refused before a byte)."""


def _kernel_sendfile(sock, file, offset: int, count: int | None) -> int:
    from gevent.socket import wait_write

    try:
        fileno = file.fileno()
        size = os.fstat(fileno).st_size
    except (AttributeError, io.UnsupportedOperation, OSError) as error:
        raise _NoKernelSendfile from error
    if not size:
        return 0
    sockno, timeout = sock.fileno(), sock.gettimeout()
    blocksize = min(count or size, 1 << 30)
    sent_in_all = 0
    try:
        while True:
            if count:
                blocksize = min(count - sent_in_all, blocksize)
                if blocksize <= 0:
                    break
            try:
                sent = os.sendfile(sockno, fileno, offset, blocksize)
            except BlockingIOError:
                wait_write(sockno, timeout=timeout)
                continue
            except OSError as error:
                if sent_in_all == 0:
                    raise _NoKernelSendfile from error
                raise
            if sent == 0:
                break  # the end of the file
            offset += sent
            sent_in_all += sent
        return sent_in_all
    finally:
        if sent_in_all > 0 and hasattr(file, "seek"):
            file.seek(offset)


def _cooperative_sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
    """gevent's socket.sendfile, made to use os.sendfile: gevent does not ("not cooperative")
    and copies the file through Python in 8 KiB reads and sends. But the socket's descriptor is
    non-blocking under gevent, so os.sendfile sends what fits and says EAGAIN when the client is
    behind, and the greenlet then waits for the socket like any other. Modelled on CPython's
    socket._sendfile_use_sendfile (which waits with a selector); gevent's copy remains for what
    the kernel cannot send."""
    self._check_sendfile_params(file, offset, count)
    try:
        return _kernel_sendfile(self, file, offset, count)
    except _NoKernelSendfile:
        return self._sendfile_use_send(file, offset, count)


_cooperative_sendfile.uses_the_kernel = True


def patch_gevent_sendfile() -> None:
    """Under gevent (gunicorn.conf.py's default worker), send files with os.sendfile."""
    from gevent import _socket3

    if not getattr(_socket3.socket.sendfile, "uses_the_kernel", False):
        _socket3.socket.sendfile = _cooperative_sendfile


def _body_readinto(self, buffer) -> int:
    """Read into `buffer` what is next of the body, as io's readinto: the byte count, 0 at the end.

    Bytes gunicorn already holds (its read-ahead of the headers, leftovers of an earlier read)
    come first, through its own read(); then, for a body of known length, one recv_into
    the socket, never past the body's end, and gunicorn's count of what is left goes down by
    what arrived, so keep-alive and the drain of an unread rest work as before. Chunked
    bodies go through read()."""
    view = memoryview(buffer).cast("B")
    reader = self.reader
    direct = type(reader) is LengthReader and type(reader.unreader) is SocketUnreader
    if self.buf.tell() or not direct:
        data = self.read(min(len(view), self.buf.tell()) or len(view))
    elif held := reader.unreader.buf.seek(0, os.SEEK_END):
        data = self._read_reader(min(len(view), held))
    else:
        data = None
    if data is not None:
        view[: len(data)] = data
        return len(data)
    want = min(len(view), reader.length)
    if want <= 0:
        return 0
    try:
        received = reader.unreader.sock.recv_into(view, want)
    except BaseException:
        self.failed = True  # where the next request starts is unknown: no keep-alive
        raise
    reader.length -= received
    return received


_body_readinto.receives_directly = True


def patch_gunicorn() -> None:
    """Apply the fixes above to gunicorn's classes, once (reading the config twice is harmless)."""
    if not getattr(wsgi.Response.sendfile, "counts_bytes", False):
        wsgi.Response.sendfile = _sendfile_counting_bytes(wsgi.Response.sendfile)
    if not getattr(wsgi.Response.process_headers, "honours_close", False):
        wsgi.Response.process_headers = _process_headers_honouring_close(wsgi.Response.process_headers)
    if not getattr(util.close_graceful, "lingers", False):
        util.close_graceful = _close_lingering_until_the_peer_closes(util.close_graceful)
    if not getattr(base_async.util, "closes_gracefully", False):
        base_async.util = _UtilClosingGracefully()
    if not getattr(getattr(Body, "readinto", None), "receives_directly", False):
        Body.readinto = _body_readinto


def _status_of(resp) -> int | None:
    """The answer's status. gunicorn's own error answers (a request it refused: 400) are
    Responses it never started, with `status` set and no `status_code`: reading that crashed
    the access log, and gunicorn answered 500 instead of 400."""
    code = getattr(resp, "status_code", None)
    if code is None and isinstance(getattr(resp, "status", None), str):
        head = resp.status.split(" ", 1)[0]
        code = int(head) if head.isdigit() else None
    return code


class JsonLogger(Logger):
    """Gunicorn's logger with one JSON object per line for both the error and access logs."""

    def setup(self, cfg) -> None:
        from app.observability import JsonLineFormatter, RedactingFilter

        super().setup(cfg)
        formatter = JsonLineFormatter()
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter)
            # "Error handling request GET /api/v1/links/<token>" must not show the token.
            handler.addFilter(RedactingFilter())
        for handler in self.access_log.handlers:
            handler.setFormatter(logging.Formatter("%(message)s"))  # access lines are JSON already

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        from app.observability import iso_time, redact  # the app's own time format and masking

        headers = {name.lower(): value for name, value in resp.headers}
        record = {
            "time": iso_time(time.time()),
            "level": "INFO",
            "logger": "gunicorn.access",
            "message": "request",
            "request_id": headers.get("x-request-id", "-"),
            "method": environ.get("REQUEST_METHOD"),
            "path": redact(environ.get("PATH_INFO", "")),
            "status": _status_of(resp),
            "bytes_sent": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        try:
            self.access_log.info(json.dumps(record))
        except Exception:  # noqa: BLE001 (logging must never break a response)
            self.exception("could not write the access log")
