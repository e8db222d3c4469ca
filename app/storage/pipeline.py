"""Writing a staged file on a second thread while the request thread receives and hashes.

hashlib, file writes and socket sends release the GIL on large buffers, so the request
thread (reading the socket, parsing, hashing) and a writer thread (writing to disk, or
sending S3 parts) run at the same time on two cores: a large upload takes about as long as
the slower of the two, not their sum. Until THRESHOLD bytes have arrived everything happens
inline, so small files never pay for a thread.

Under gevent (gunicorn.conf.py) a Python thread is a greenlet on the worker's one OS thread.
That still overlaps network writes (S3 parts), which wait cooperatively, but a disk write
would stall every connection of the worker while it runs. So a store whose writes are disk
I/O says `blocking_io=True`, and under gevent its chunks are written in order on a real thread
of their own (app.cooperative.Serial) while the request's greenlet receives and hashes the
next ones.
"""

from __future__ import annotations

import collections
import hashlib
import queue
import threading
from collections.abc import Callable

from app.cooperative import Pending, Serial, gevent_active

THRESHOLD = 1024 * 1024
# Chunks in flight at most (the request's chunks are up to 1 MiB): memory stays bounded.
QUEUE_DEPTH = 8
_DONE = object()


class HashingWriter:
    """SHA-256 every chunk and write it, in order, with `write_chunk`; errors surface to the caller."""

    def __init__(self, write_chunk: Callable[[bytes], None], blocking_io: bool = False) -> None:
        self._write_chunk = write_chunk
        # Under gevent, disk writes go to a real thread of their own, in order, QUEUE_DEPTH
        # chunks in flight at most (made past THRESHOLD, like the writer thread otherwise).
        self._offload = blocking_io and gevent_active()
        self._serial: Serial | None = None
        self._pending: collections.deque[Pending[None]] = collections.deque()
        self._digest = hashlib.sha256()
        self._inline_bytes = 0
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def write(self, chunk: bytes) -> None:
        if self._offload and self._serial is not None:
            self._digest.update(chunk)  # while earlier chunks are being written
            if len(self._pending) >= QUEUE_DEPTH:
                self._pending.popleft().get()
            self._pending.append(self._serial.start(self._write_chunk, chunk))
            return
        if self._queue is None:
            self._digest.update(chunk)
            self._write_chunk(chunk)
            self._inline_bytes += len(chunk)
            if self._inline_bytes >= THRESHOLD:
                if self._offload:
                    self._serial = Serial()
                else:
                    self._start()
            return
        self._raise_if_failed()
        # Hashed here, written there: measured, the writes alone keep one core busy.
        self._digest.update(chunk)
        self._queue.put(chunk)

    def drain(self, chunks) -> str:
        """Hash and write every chunk, then wait for the writer; the hex SHA-256. The writer
        thread is stopped whatever happens."""
        try:
            for chunk in chunks:
                self.write(chunk)
            return self.finish()
        finally:
            self.close()

    def finish(self) -> str:
        """Wait until every chunk is written; the hex SHA-256 of them all."""
        self._wait_for_write()
        self._stop()
        self._raise_if_failed()
        return self._digest.hexdigest()

    def close(self) -> None:
        """Stop the writer thread (after an error elsewhere); idempotent."""
        try:
            self._wait_for_write()
        except BaseException:  # noqa: BLE001,S110 (the error that brought us here is the one to report)
            pass
        self._stop()

    def _wait_for_write(self) -> None:
        """Wait for the writes in flight on the real thread; the first error, after all ended."""
        error = None
        while self._pending:
            try:
                self._pending.popleft().get()
            except BaseException as caught:  # noqa: BLE001 (raised once the others are done)
                error = error or caught
        if self._serial is not None:
            self._serial.close()
            self._serial = None
        if error is not None:
            raise error

    def _start(self) -> None:
        self._queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self._thread = threading.Thread(target=self._run, name="depot-staging-writer", daemon=True)
        self._thread.start()

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_DONE)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not _DONE:
            if self._error is not None:
                continue  # drain: the caller learns of the error on its next call
            try:
                self._write_chunk(chunk)
            except BaseException as error:  # noqa: BLE001 (handed to the request thread)
                self._error = error

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
