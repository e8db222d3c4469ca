"""Writing a staged file on a second thread while the request thread receives and hashes.

hashlib, file writes and socket sends release the GIL on large buffers, so the request
thread (reading the socket, parsing, hashing) and a writer thread (writing to disk, or
sending S3 parts) run at the same time on two cores: a large upload takes about as long as
the slower of the two, not their sum. Until THRESHOLD bytes have arrived everything happens
inline, so small files never pay for a thread.

Under gevent (gunicorn.conf.py) a Python thread is a greenlet on the worker's one OS thread.
That still overlaps network writes (S3 parts), which wait cooperatively, but a disk write
would stall every connection of the worker while it runs. So a store whose writes are disk
I/O says `blocking_io=True`, and under gevent its chunks are written on a real thread instead.
Either way the writer is an app.cooperative.Serial: writes in order, QUEUE_DEPTH in flight.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Callable

from app.cooperative import Pending, Serial

THRESHOLD = 1024 * 1024
# Chunks in flight at most (the request's chunks are up to 1 MiB): memory stays bounded.
QUEUE_DEPTH = 8


class HashingWriter:
    """SHA-256 every chunk and write it, in order, with `write_chunk`; errors surface to the caller."""

    def __init__(self, write_chunk: Callable[[bytes], None], blocking_io: bool = False) -> None:
        self._write_chunk = write_chunk
        self._blocking_io = blocking_io
        self._digest = hashlib.sha256()
        self._inline_bytes = 0
        self._writer: Serial | None = None  # made past THRESHOLD
        self._pending: collections.deque[Pending[None]] = collections.deque()
        self._failed = False

    def write(self, chunk: bytes) -> None:
        # Hashed here, written there: measured, the writes alone keep one core busy.
        self._digest.update(chunk)
        if self._writer is None:
            self._write_chunk(chunk)
            self._inline_bytes += len(chunk)
            if self._inline_bytes >= THRESHOLD:
                self._writer = Serial("depot-staging-writer", real_thread=self._blocking_io)
            return
        if len(self._pending) >= QUEUE_DEPTH:
            self._pending.popleft().get()  # the writer's error, if it failed
        self._pending.append(self._writer.start(self._write_unless_failed, chunk))

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
        self._wait_for_writer()
        return self._digest.hexdigest()

    def close(self) -> None:
        """Stop the writer thread (after an error elsewhere); idempotent."""
        try:
            self._wait_for_writer()
        except BaseException:  # noqa: BLE001,S110 (the error that brought us here is the one to report)
            pass

    def _write_unless_failed(self, chunk: bytes) -> None:
        if self._failed:
            return  # nothing after a failed write: the caller learns of the error from it
        try:
            self._write_chunk(chunk)
        except BaseException:
            self._failed = True
            raise

    def _wait_for_writer(self) -> None:
        """Wait for the writes in flight, then stop the writer; the first error, once all ended."""
        error = None
        while self._pending:
            try:
                self._pending.popleft().get()
            except BaseException as caught:  # noqa: BLE001 (raised once the others are done)
                error = error or caught
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if error is not None:
            raise error
