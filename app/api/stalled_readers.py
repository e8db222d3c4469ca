"""A download whose client stops reading is ended after BODY_IDLE_TIMEOUT_SECONDS.

Sending waits for the client: when it reads nothing, its receive window closes and the
server's send (gunicorn's sendfile, or a write of a streamed chunk) waits for it to open
again, for ever, holding the connection, the open file or the store's connection, and a
place among the worker's connections. A timeout on the socket cannot say "no progress for N
seconds": gevent's bounds a whole send, and one chunk of a slow but steady download may take
longer than N; a wait for writability needs a third of a large send buffer freed, which a
slow reader takes minutes to do. TCP_USER_TIMEOUT, the kernel's own bound, was measured to
abort slow but steady readers too (their small window updates do not reset it).

So a watcher looks at each download's connection about once a second: the bytes still queued in
its send buffer (SIOCOUTQ) change whenever the client reads, however slowly (down as it
acknowledges, up as the server can send more), and stay put when it reads nothing. After
BODY_IDLE_TIMEOUT_SECONDS without a change (and not empty), the connection is shut down: the
blocked send fails, and the request ends as a client hanging up does. A connection stays
watched until it closes: on a kept-alive connection the next requests' answers are bounded the
same way, and an idle one has nothing queued. One watcher per process (a thread, a greenlet
under gevent) runs while there is something to watch. Outside gunicorn (tests, the development
server) there is no socket in the environ and nothing is watched.

A slow reader must not cost much memory either. The kernel grows a socket's send buffer to
megabytes, which a reader at 1 KiB/s keeps full for hours: a thousand of them held about
1 GB between Depot and nginx, and past the kernel's TCP memory limit every connection on the
machine stalled. So a download's connection gets TCP_NOTSENT_LOWAT: Depot may queue only so
many bytes beyond those the network carries. The process's downloads share UNSENT_BUDGET_BYTES
for that, between MIN_UNSENT_BYTES and MAX_UNSENT_BYTES each: a lone download gets 1 MiB (a
bound of 256 KiB halved a fast download's throughput on loopback, from gevent's many more
wake-ups), a thousand slow ones a little each; the watcher applies the share as their number
changes. Bytes in flight are not limited, so a fast client over a long path still gets the
whole window its connection can use.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Bytes the process's downloads may queue beyond those in flight (TCP_NOTSENT_LOWAT), shared.
UNSENT_BUDGET_BYTES = 32 * 1024 * 1024
MIN_UNSENT_BYTES = 128 * 1024
MAX_UNSENT_BYTES = 1024 * 1024
_lock = threading.Lock()
_watched: dict[int, _Watch] = {}
_watcher: list[threading.Thread] = []


@dataclass
class _Watch:
    sock: socket.socket
    seconds: float
    queued: int = 0
    progress_at: float = field(default_factory=time.monotonic)
    unsent_limit: int = 0  # the TCP_NOTSENT_LOWAT last set


def end_when_unread_for(environ: dict, seconds: float) -> None:
    """Shut this request's connection down if its client reads nothing for `seconds` while
    answers wait to be sent on it."""
    sock = environ.get("gunicorn.socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with _lock:
        watch = _watched.get(id(sock))
        if watch is not None and watch.sock is sock:
            watch.seconds, watch.progress_at = seconds, time.monotonic()
            return
        watch = _watched[id(sock)] = _Watch(sock, seconds, _queued(sock) or 0)
        _limit_unsent(watch, unsent_share(len(_watched)))
        if not _watcher:
            _watcher.append(threading.Thread(target=_watch_until_none_left, name="depot-stalled-readers", daemon=True))
            _watcher[0].start()


def watched() -> int:
    """How many connections are watched (for tests)."""
    with _lock:
        return len(_watched)


def unsent_share(downloads: int) -> int:
    """Each download's TCP_NOTSENT_LOWAT when the process has `downloads` of them."""
    return max(MIN_UNSENT_BYTES, min(MAX_UNSENT_BYTES, UNSENT_BUDGET_BYTES // max(downloads, 1)))


def _limit_unsent(watch: _Watch, limit: int) -> None:
    if watch.unsent_limit != limit:
        with contextlib.suppress(OSError, AttributeError):  # Linux and macOS have the option
            watch.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, limit)
            watch.unsent_limit = limit


def _queued(sock: socket.socket) -> int | None:
    """Bytes sent on `sock` that its peer has not acknowledged yet; None once it is closed."""
    if sock.fileno() < 0:
        return None
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except OSError:
        return None


def _check(now: float) -> None:
    with _lock:
        watches = list(_watched.items())
    for key, watch in watches:
        queued = _queued(watch.sock)
        if queued is None:  # closed: the request and its connection are over
            with _lock:
                _watched.pop(key, None)
            continue
        if queued == 0 or queued != watch.queued:  # less: the client read; more: it was sent more
            watch.queued, watch.progress_at = queued, now
        elif now - watch.progress_at >= watch.seconds:
            log.info(
                "ending a download whose client read nothing for %.1f s (%d bytes unacknowledged)",
                now - watch.progress_at,
                queued,
            )
            with contextlib.suppress(OSError):
                watch.sock.shutdown(socket.SHUT_RDWR)
            with _lock:
                _watched.pop(key, None)
    with _lock:
        remaining = list(_watched.values())
    share = unsent_share(len(remaining))  # more each as downloads end, less as they come
    for watch in remaining:
        _limit_unsent(watch, share)


def _watch_until_none_left() -> None:
    while True:
        with _lock:
            if not _watched:
                _watcher.clear()
                return
            interval = min(1.0, min(w.seconds for w in _watched.values()) / 4)
        time.sleep(interval)
        try:
            _check(time.monotonic())
        except Exception:  # noqa: BLE001 (the watcher must outlive any one connection's surprise)
            log.exception("the stalled-reader watcher failed a round")
