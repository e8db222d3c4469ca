"""Blocking calls that must not stall a gevent worker's other connections.

Under gunicorn's gevent worker (gunicorn.conf.py) every connection of a worker is a greenlet
on one OS thread. Sockets wait cooperatively, but a disk write or an fsync blocks that thread,
and with it every other request of the worker, for as long as it takes (an fsync of a large
file: a second or more). Such calls go through `offload` or `start`, which run them on
gevent's pool of real threads while the calling greenlet waits cooperatively; file I/O and
hashlib release the GIL, so they also run beside the worker's other work on a second core.
Outside gevent (gthread, the development server, tests) the call runs in place.

Only calls that touch no gevent object belong here: files and os calls, not sockets or
clients of network services (their sockets belong to the worker's own thread).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def gevent_active() -> bool:
    """Whether this process runs under gevent's monkey patches (gunicorn's gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


class Pending(Protocol[R]):
    def get(self) -> R: ...


class _Done:
    """A call that already ran in place: its result, or its error raised again by get()."""

    def __init__(self, call: Callable[[], R]) -> None:
        self._result = self._error = None
        try:
            self._result = call()
        except BaseException as error:  # noqa: BLE001 (handed to get(), as gevent's result does)
            self._error = error

    def get(self):
        if self._error is not None:
            raise self._error
        return self._result


def start(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Pending[R]:
    """Begin `function(*args)` on a real thread under gevent (in place otherwise); get() waits
    for its result, or raises its error."""
    if gevent_active():
        from gevent import get_hub

        return get_hub().threadpool.spawn(function, *args, **kwargs)
    return _Done(lambda: function(*args, **kwargs))


class _Future:
    """A concurrent.futures.Future seen as a Pending: get() waits for its result."""

    def __init__(self, future: Future) -> None:
        self._future = future

    def get(self):
        return self._future.result()


def _name_thread(name: str) -> None:
    threading.current_thread().name = name


class Serial:
    """Calls run one after another, in order, on one thread of their own named `name`: a real
    OS thread under gevent when `real_thread` (disk I/O, which would stall the worker's other
    connections), else a `threading` thread (under gevent a greenlet, enough for network writes,
    which wait cooperatively). start() returns what get() waits on; close() ends the thread."""

    def __init__(self, name: str, real_thread: bool) -> None:
        if real_thread and gevent_active():
            from gevent.threadpool import ThreadPool

            pool = ThreadPool(1)
            self._start, self._close = pool.spawn, pool.kill
        else:
            executor = ThreadPoolExecutor(1, initializer=_name_thread, initargs=(name,))
            self._start = lambda function, *args: _Future(executor.submit(function, *args))
            self._close = executor.shutdown

    def start(self, function: Callable[..., R], *args) -> Pending[R]:
        return self._start(function, *args)

    def close(self) -> None:
        self._close()


def offload(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`function(*args)`, run where it stalls no other connection; its result or its error."""
    return start(function, *args, **kwargs).get()
