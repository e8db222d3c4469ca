"""Leftovers: keys that must not exist in the bucket, removed in the background.

A request to a store that stopped answering times out on our side, but it may still sit in
the store's socket buffers and be carried out once the store comes back: a part, an object,
a copy that nobody will ever commit. What such a request may have created is handed here, and
one thread removes it once the store answers again, and once more a moment later.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from app.storage.s3_client import BOTO_FAILURES, describe, is_not_found

log = logging.getLogger(__name__)
clock = time.monotonic  # replaced by the tests' clock

# Leftovers: how often pending cleanups are retried; how long after a first successful cleanup
# it is done again (requests sent during an outage are carried out as soon as the store comes
# back, possibly just after ours); when to give up and leave it to `storage check --repair`.
LEFTOVER_RETRY_SECONDS = 1.0
LEFTOVER_SETTLE_SECONDS = 3.0
LEFTOVER_GIVE_UP_SECONDS = 600.0


def remove_key(client: Any, bucket: str, key: str, upload_id: str | None = None) -> None:
    """Make sure nothing is stored under `key`: the object, and any multipart upload (the one
    named, and those the store lists, such as one whose id never reached us)."""
    uploads = {upload_id} if upload_id else set()
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key):
        uploads |= {u["UploadId"] for u in page.get("Uploads", []) if u["Key"] == key}
    for upload in uploads:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        except ClientError as error:
            if not is_not_found(error):
                raise
    client.delete_object(Bucket=bucket, Key=key)


@dataclass
class _Pending:
    added: float
    removed_at: float | None = None


class Leftovers:
    """Keys that must not exist in the bucket, removed in the background by one thread.

    A key is done once it has been removed twice, LEFTOVER_SETTLE_SECONDS apart: a request
    sent during an outage (a part, an object, a copy) can be carried out by the store when it
    comes back, just after our first removal. The thread runs only while keys are pending.
    A key still there after LEFTOVER_GIVE_UP_SECONDS is left to `flask storage check --repair`.
    """

    def __init__(self, client: Any, bucket: str, background: bool = True) -> None:
        self.client, self.bucket, self.background = client, bucket, background
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, key: str) -> None:
        with self._lock:
            self._pending.setdefault(key, _Pending(added=clock())).removed_at = None
            if self.background and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._run, name="depot-s3-leftovers", daemon=True)
                self._thread.start()

    def pending(self) -> set[str]:
        with self._lock:
            return set(self._pending)

    def sweep(self) -> None:
        """One pass over the pending keys."""
        for key in self.pending():
            now = clock()
            with self._lock:
                state = self._pending.get(key)
            if state is None:
                continue
            try:
                remove_key(self.client, self.bucket, key)
            except BOTO_FAILURES as error:
                if now - state.added > LEFTOVER_GIVE_UP_SECONDS:
                    log.warning("gave up removing %s (%s): `storage check --repair` will", key, describe(error))
                    self._forget(key)
                continue
            if state.removed_at is None:
                state.removed_at = now
            elif now - state.removed_at >= LEFTOVER_SETTLE_SECONDS:
                self._forget(key)

    def _forget(self, key: str) -> None:
        with self._lock:
            self._pending.pop(key, None)

    def _run(self) -> None:
        while True:
            time.sleep(LEFTOVER_RETRY_SECONDS)
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 (a background thread must not die silently)
                log.exception("removing leftovers failed")
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return
