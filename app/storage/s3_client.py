"""How Depot talks to S3: every call waits a bounded time (Patience), through one client
factory, and a failure is described by its error code only.

A store that stops answering without refusing connections (a stopped process, a full
network buffer) would otherwise hold a request, and the worker thread serving it, for minutes:
botocore's defaults are a 60 s read timeout and several retries. The bounds here are what
/readyz (2 s) and every request that needs the store (a JSON 503 within 10 s) promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from app.storage.base import StorageError

NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchUpload"}
BOTO_FAILURES = (BotoCoreError, ClientError)


@dataclass(frozen=True)
class Patience:
    """How long one S3 call may wait: per connection attempt, per socket read (or send), and
    how many attempts in all (botocore's standard retry mode; its backoff between attempts is
    well under a second for anything but throttling)."""

    connect: float
    read: float
    attempts: int

    def worst_case(self, with_body: bool = False) -> float:
        """The longest a call can take when the store stops answering (no backoff counted).
        A call with a body (PUT, part) first waits up to EXPECT_CONTINUE_SECONDS for the
        store's "100 Continue"; a stopped store accepts the connection, so it is the read
        that waits, not the connect: one or the other per attempt."""
        expect = EXPECT_CONTINUE_SECONDS if with_body else 0
        return self.attempts * max(self.connect, expect + self.read)


# botocore sends S3 bodies with "Expect: 100-continue" and waits this long for the answer.
EXPECT_CONTINUE_SECONDS = 1
# Every call that moves a file's bytes or metadata. A healthy store answers each in well under
# a second (a part's bytes are sent before the wait for the reply starts, each socket
# operation, not the whole transfer, gets `read`, and large copies go in parts: see
# COPY_PART_SIZE); a connect on a LAN or to a cloud endpoint takes milliseconds. Two attempts
# ride out one transient failure (a reset connection, a 503). With a hung store the worst case
# is 2 x (1 + 2) = 6 s for a PUT, so a request that needs the store answers 503 within 10 s
# (issue 11), with room for the database work around it (measured: at most about 6 s).
DATA_PATIENCE = Patience(connect=1, read=2, attempts=2)
# The readiness probe (one HEAD of the bucket) and cleanups after a failure: one short attempt.
# /readyz must answer within 2 s; a cleanup that fails is retried in the background.
QUICK_PATIENCE = Patience(connect=0.5, read=1, attempts=1)


def describe(error: Exception) -> str:
    # The error code only: messages can carry the endpoint, bucket or key.
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code", "ClientError")
    return type(error).__name__


def required(reply: dict, name: str, operation: str) -> Any:
    """A field S3 always answers with. Without it the reply was garbled or cut short (seen
    under a network fault): a failure of the store, not of Depot."""
    try:
        return reply[name]
    except KeyError:
        raise StorageError(f"{operation} failed: the store's reply has no {name}") from None


def is_not_found(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in NOT_FOUND


# Like gunicorn.conf.py's default worker_connections: a connection per transfer in flight.
MAX_POOL_CONNECTIONS = 4096


def make_client(
    endpoint_url: str | None = None,
    region_name: str | None = None,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    addressing_style: str = "auto",
    patience: Patience = DATA_PATIENCE,
) -> Any:
    """An S3 client whose every call waits at most as `patience` says; credentials fall back
    to boto3's chain."""
    config = BotoConfig(
        signature_version="s3v4",
        s3={"addressing_style": addressing_style},
        retries={"total_max_attempts": patience.attempts, "mode": "standard"},
        connect_timeout=patience.connect,
        read_timeout=patience.read,
        # Older S3-compatible stores reject the newer default checksum headers; integrity is
        # already covered by the SHA-256 Depot computes and `storage check` re-verifies.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # Connections kept for reuse. Under gevent a worker serves thousands of connections,
        # and each download or upload in flight holds one store connection while its client
        # is slow: beyond this many, new ones are made and, once free, closed (with a warning
        # from urllib3 each time), so keep as many as a worker may use.
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region_name,
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        config=config,
    )
