"""Gunicorn settings for Depot: the container's server, and the integration tests' replicas.

Every value can be changed from the environment, so one image serves any host size:
GUNICORN_BIND (or PORT), GUNICORN_WORKERS, GUNICORN_WORKER_CLASS, GUNICORN_WORKER_CONNECTIONS,
GUNICORN_THREADS, GUNICORN_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT, GUNICORN_KEEPALIVE and
FORWARDED_ALLOW_IPS.

Logs: the access log and gunicorn's own log are JSON lines on stdout/stderr, like the app's,
with the same time format, the request id and no secrets (share-link tokens are masked in
paths; headers such as Authorization are never logged). `bytes_sent` is the body's bytes put
on the wire, including a file gunicorn hands to the kernel with sendfile (app/gunicorn_wiring.py).
Metrics: each worker writes its counters to PROMETHEUS_MULTIPROC_DIR (a fresh temporary
folder unless set), so /metrics adds them up.
Stopping: uploads still receiving their body when gunicorn is about to kill a stopping worker
are ended first, so their staged bytes are removed (post_worker_init, worker_int below).
Keep-alive: gunicorn honours the `Connection: close` Depot sets after an answer that left the
request body unread, and lingers on closing until the peer closes (app/keepalive.py says why;
the patches live in app/gunicorn_wiring.py).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from dotenv import load_dotenv

# .env counts here as it does for the app (app.config): variables already set win over it.
load_dotenv(Path(__file__).resolve().parent / ".env")

# Settings of this file that could not be read: on_starting reports them with Depot's own.
_problems: list[str] = []

# gevent (the default): each connection is a greenlet, so a client that sends or reads slowly,
# or never finishes its headers, costs a socket and a little memory, not one of a few threads
# (docs/robustness.md has the measurements that chose it). gthread stays available to compare.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "gevent"
if worker_class == "gevent":
    # Before anything else is imported: a module that made a threading.local (the transaction
    # manager, SQLAlchemy's scoped session) or a lock before the patch would share it between
    # every request of the worker. The workers inherit the patched modules from this master.
    from gevent import monkey

    monkey.patch_all()
elif worker_class != "gthread":
    _problems.append(f"GUNICORN_WORKER_CLASS must be gevent or gthread, got {worker_class!r}")
    worker_class = "gevent"

from app.gunicorn_wiring import JsonLogger, patch_gevent_sendfile, patch_gunicorn  # noqa: E402 (after the patch above)


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
workers = _int("GUNICORN_WORKERS", 2)
# gthread only: request threads per worker.
threads = _int("GUNICORN_THREADS", 4)
# gevent only: connections a worker holds at once (each takes a file descriptor, two while an
# upload is staged on disk); beyond it the worker stops accepting until one ends.
worker_connections = _int("GUNICORN_WORKER_CONNECTIONS", 4096)
# The worker heartbeat runs beside requests (a greenlet, or gthread's main thread), so a long
# upload does not count against this; it only reaps workers that are truly stuck.
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Longer than the proxy's idle upstream keep-alive (nginx: 4 s), so the proxy always closes
# first and never sends a request on a connection gunicorn is closing. Under gevent it also
# bounds the wait for a request's line and headers: a client that never finishes them is
# disconnected after this long.
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
    _raise_open_files_limit()
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


# File descriptors a worker may need: every connection it may hold, a staged file beside
# each, and room for its own (logs, database and store connections).
def _raise_open_files_limit() -> None:
    """Raise the soft limit on open files towards the hard one (the workers inherit it):
    Linux's usual soft limit, 1,024, is less than a worker's connections."""
    wanted = 2 * max(worker_connections, threads) + 1024  # per process: each worker counts its own
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


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
    timers: list = []  # the one timer (a thread, or a greenlet under gevent)

    def on_sigterm(sig, frame) -> None:
        gunicorns_own(sig, frame)
        if timers:
            return
        if worker_class == "gevent":
            # Under gevent the handler runs in the event loop, where a thread's start() (which
            # waits) may not block: a greenlet that sleeps until then does the same.
            import gevent

            timers.append(gevent.spawn_later(graceful - margin, _end_bodies, wait=margin))
            return
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


# Depot's additions to gunicorn (app/gunicorn_wiring.py): its JSON logger, and fixes to how
# gunicorn counts and closes (and gevent sends files). Patched once, in the master when it
# reads this file, so every worker it forks has them.
patch_gunicorn()
if worker_class == "gevent":
    patch_gevent_sendfile()


logger_class = JsonLogger
