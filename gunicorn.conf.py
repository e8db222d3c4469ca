"""Gunicorn settings for Depot: the container's server, and the integration tests' replicas.

Every value can be changed from the environment, so one image serves any host size:
GUNICORN_BIND (or PORT), GUNICORN_WORKERS, GUNICORN_THREADS, GUNICORN_TIMEOUT,
GUNICORN_GRACEFUL_TIMEOUT, GUNICORN_KEEPALIVE and FORWARDED_ALLOW_IPS.

Logs: the access log and gunicorn's own log are JSON lines on stdout/stderr, like the app's,
with the same time format, the request id and no secrets (share-link tokens are masked in
paths; headers such as Authorization are never logged). `bytes_sent` is the body's bytes put
on the wire, including a file gunicorn hands to the kernel with sendfile (see below).
Metrics: each worker writes its counters to PROMETHEUS_MULTIPROC_DIR (a fresh temporary
folder unless set), so /metrics adds them up.
Stopping: uploads still receiving their body when gunicorn is about to kill a stopping worker
are ended first, so their staged bytes are removed (post_worker_init, worker_int below).
Keep-alive: gunicorn honours the `Connection: close` Depot sets after an answer that left the
request body unread, and lingers on closing until the peer closes (app/keepalive.py says why).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

from dotenv import load_dotenv
from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.http import wsgi

from app.config import BASE_DIR

# .env counts here as it does for the app (app.config): variables already set win over it.
load_dotenv(BASE_DIR / ".env")

# Settings of this file that could not be read: on_starting reports them with Depot's own.
_problems: list[str] = []


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        _problems.append(f"{name} must be a whole number, got {value!r}")
        return default


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_int('PORT', 8000)}"
worker_class = "gthread"
workers = _int("GUNICORN_WORKERS", 2)
threads = _int("GUNICORN_THREADS", 4)
# With gthread the worker heartbeat runs beside request threads, so a long upload does not
# count against this; it only reaps workers that are truly stuck.
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Longer than the proxy's idle upstream keep-alive (nginx: 4 s), so the proxy always closes
# first and never sends a request on a connection gunicorn is closing.
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Addresses whose X-Forwarded-Proto is believed (the proxy); Depot's PROXY_COUNT does the rest.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's largest request line: long (still bounded) query strings reach Depot, which
# answers with its JSON 422 instead of gunicorn's HTML 414.
limit_request_line = 8190
accesslog = "-"
errorlog = "-"
# Depot needs no runtime control socket, and replicas on one host would share its path.
control_socket_disable = True

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="depot-metrics-")


def on_starting(server) -> None:
    _refuse_a_bad_config(depot=getattr(server.app, "app_uri", "").startswith("autoapp"))
    # Counters of an earlier run in the same folder would be added to this run's.
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def _refuse_a_bad_config(depot: bool) -> None:
    """Exit (status 2) listing every configuration problem, this file's and (for Depot, not the
    bench's baselines) the app's, before any worker boots: a worker that exits on a bad setting
    would only be started again, and again."""
    from app.config import ConfigError, exit_on_config_error, load_config

    problems = list(_problems)
    if depot:
        try:
            load_config().validate()
        except ConfigError as error:
            problems.extend(error.problems)
    if problems:
        exit_on_config_error(ConfigError(problems))


# A stopping worker ends the uploads still receiving their body this long before the master's
# SIGKILL (at most; a third of the graceful timeout when that is short), so their staged
# bytes are removed by the failed request itself, which no SIGKILL would let run.
STOP_MARGIN_SECONDS = 5.0


def post_worker_init(worker) -> None:
    """Adds to the worker's SIGTERM (graceful stop: requests get graceful_timeout to finish)
    a timer that ends the upload bodies still arriving shortly before the master kills it."""
    graceful = worker.cfg.graceful_timeout
    margin = min(STOP_MARGIN_SECONDS, graceful / 3)
    gunicorns_own = signal.getsignal(signal.SIGTERM)
    timers: list[threading.Timer] = []

    def on_sigterm(sig, frame) -> None:
        gunicorns_own(sig, frame)
        if not timers:
            timers.append(threading.Timer(graceful - margin, _end_bodies, kwargs={"wait": margin}))
            timers[0].daemon = True  # a worker done sooner exits without waiting for it
            timers[0].start()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn has it: signal.signal() resets it


def worker_int(worker) -> None:
    """SIGINT or SIGQUIT (quick stop): the worker exits at once, so end the upload bodies now."""
    _end_bodies(wait=1.0)


def _end_bodies(wait: float) -> None:
    # Loaded by Depot's upload views; not there, no upload is in flight (or the app is another,
    # such as the benchmark's baselines), and a stopping worker need not import it.
    bodies_in_flight = sys.modules.get("app.api.bodies_in_flight")
    if bodies_in_flight is not None:
        bodies_in_flight.end_bodies(wait)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


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


# Patched once, in the master when it reads this file, so every worker it forks has them.
if not getattr(wsgi.Response.sendfile, "counts_bytes", False):
    wsgi.Response.sendfile = _sendfile_counting_bytes(wsgi.Response.sendfile)
if not getattr(wsgi.Response.process_headers, "honours_close", False):
    wsgi.Response.process_headers = _process_headers_honouring_close(wsgi.Response.process_headers)
if not getattr(util.close_graceful, "lingers", False):
    util.close_graceful = _close_lingering_until_the_peer_closes(util.close_graceful)


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
            "status": resp.status_code,
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


logger_class = JsonLogger
