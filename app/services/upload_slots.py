"""Caps on the uploads streaming at once, per account and per client address, counted across
every worker and replica.

Why: an upload holds a connection, a staged file and part of a worker for as long as its body
streams, and a slow body streams for a long time. One account, or one address, opening
hundreds of them would take what every other client needs (issue 12). So each upload takes a
slot in its account's scope and in its address's scope before a byte of its body is read, and
an upload that finds either scope full is refused with 429 and Retry-After at once.

How a slot is kept: a sorted set per scope (`<prefix>:upload-slots:account:<id>`, `...:
address:<ip>`) with one member per upload, scored by its lease's expiry. Taking a slot is one
Lua script, atomic across replicas: drop the expired members of each set, refuse if one is
full, else add the member to every set. The slot is released when the upload ends, however
it ends. Meanwhile one renewer per process (a thread; a greenlet under gevent) extends the
leases of all the slots the process holds, every quarter lease, in one round trip. A process
killed mid-upload (SIGKILL, a crash, a power cut) neither releases nor renews: its slots free
themselves when their lease runs out, so none is lost for good. A live upload cannot hold its
slot forever either: a body that stops arriving is ended after BODY_IDLE_TIMEOUT_SECONDS
(bodies_in_flight.py). Expiry uses Redis's clock (TIME), so replicas' clocks need not agree.

(Renewing from the body reader instead, as data arrives, does not work: the server's read()
of a large block returns only once the block is full, so a slowly arriving body would lose
its lease inside one read.)

Where the counts live: in Redis when RATELIMIT_STORAGE_URI names one (redis://, rediss://,
redis+unix://), under RATELIMIT_KEY_PREFIX, shared by every worker and replica; otherwise in
this process's memory (the development server and the in-process tests run one process).

When Redis fails, uploads go on: caps are a protection, and refusing every upload because
the counter is down would be the outage they exist to prevent. The failure is logged and
counted (depot_upload_slot_store_errors_total); for the next REDIS_RETRY_SECONDS slots are
counted in this process's memory, so each process still caps on its own, and then Redis is
tried again. The rate limiter behaves the same way (app/config.py, RATELIMIT_SWALLOW_ERRORS).

Who takes slots: UploadService, for each upload, around the reading of its body (`hold`). A
resumable upload's PATCH takes one the same way, for as long as its own body streams.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from app import metrics
from app.exceptions import TooManyUploads

log = logging.getLogger(__name__)

# What a refused client is told to wait before it tries again, in seconds.
RETRY_AFTER_SECONDS = 5
# After a Redis failure, slots are counted in memory this long before Redis is tried again.
REDIS_RETRY_SECONDS = 5.0
# Rate-limiter URIs that name a Redis server this module can use, and how redis-py spells them.
REDIS_SCHEMES = {"redis://": "redis://", "rediss://": "rediss://", "redis+unix://": "unix://"}

SCOPES = ("account", "address")
_FAILED = object()  # what a failed Redis call returns
MESSAGES = {
    "account": "You already have {cap} uploads in progress, the most allowed at once. "
    "Send this one again when one of them has finished.",
    "address": "{cap} uploads are already in progress from your network address, the most allowed "
    "at once. Send this one again when one of them has finished.",
}


class SlotStore(Protocol):
    """Where slots are counted: one sorted set (or its equivalent) per key."""

    def acquire(self, caps: Sequence[tuple[str, int]], member: str, lease: float) -> int | None:
        """Add `member` to every key of `caps` ((key, cap) pairs) with a lease of `lease`
        seconds, unless a key already holds `cap` live members: then add nothing and return
        that key's index. None when taken."""
        ...

    def renew(self, held: Sequence[tuple[Sequence[str], str]], lease: float) -> None:
        """Extend the lease of each (keys, member) of `held` to `lease` seconds from now in
        every one of its keys that still holds it."""
        ...

    def release(self, keys: Sequence[str], member: str) -> None:
        """Remove `member` from every key."""
        ...

    def in_use(self, key: str) -> int:
        """How many live members `key` holds."""
        ...


class MemorySlotStore:
    """Slots in this process's memory, for a single process (development, in-process tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sets: dict[str, dict[str, float]] = {}

    def _live(self, key: str, now: float) -> dict[str, float]:
        members = self._sets.setdefault(key, {})
        for member in [m for m, expiry in members.items() if expiry <= now]:
            del members[member]
        return members

    def acquire(self, caps: Sequence[tuple[str, int]], member: str, lease: float) -> int | None:
        with self._lock:
            now = self._clock()
            for index, (key, cap) in enumerate(caps):
                if len(self._live(key, now)) >= cap:
                    return index
            for key, _cap in caps:
                self._sets[key][member] = now + lease
            return None

    def renew(self, held: Sequence[tuple[Sequence[str], str]], lease: float) -> None:
        with self._lock:
            now = self._clock()
            for keys, member in held:
                for key in keys:
                    members = self._sets.get(key, {})
                    if member in members:  # not one released meanwhile
                        members[member] = now + lease

    def release(self, keys: Sequence[str], member: str) -> None:
        with self._lock:
            for key in keys:
                members = self._sets.get(key, {})
                members.pop(member, None)
                if not members:
                    self._sets.pop(key, None)

    def in_use(self, key: str) -> int:
        with self._lock:
            return len(self._live(key, self._clock()))


# KEYS: one sorted set per capped scope. ARGV[1]: the member, ARGV[2]: the lease in ms,
# ARGV[2 + i]: the cap of KEYS[i]. Returns 0 when the member was added everywhere, else the
# (1-based) index of the first full set, having added nothing.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[2 + i]) then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease, ARGV[1])
  redis.call('PEXPIRE', key, lease)
end
return 0
"""
# The member's expiry becomes now + lease in every set that still holds it (a slot
# released while its renewal was on the way is not brought back); each set lives as long as
# its longest lease.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  if redis.call('ZSCORE', key, ARGV[1]) then
    redis.call('ZADD', key, now + lease, ARGV[1])
    redis.call('PEXPIRE', key, lease)
  end
end
return 0
"""
_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""


class RedisSlotStore:
    """Slots in Redis, shared by every process that uses the same server and key prefix."""

    def __init__(self, client) -> None:
        self.client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._count = client.register_script(_COUNT)

    @staticmethod
    def _ms(lease: float) -> int:
        return max(int(lease * 1000), 1)

    def acquire(self, caps: Sequence[tuple[str, int]], member: str, lease: float) -> int | None:
        keys = [key for key, _cap in caps]
        full = int(self._acquire(keys=keys, args=[member, self._ms(lease), *(cap for _key, cap in caps)]))
        return None if full == 0 else full - 1

    def renew(self, held: Sequence[tuple[Sequence[str], str]], lease: float) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for keys, member in held:
                self._renew(keys=list(keys), args=[member, self._ms(lease)], client=pipe)
            pipe.execute()

    def release(self, keys: Sequence[str], member: str) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(key, member)
            pipe.execute()

    def in_use(self, key: str) -> int:
        return int(self._count(keys=[key]))


def redis_url(storage_uri: str | None) -> str | None:
    """The redis-py URL of a rate-limit storage URI that names a Redis server, else None."""
    for scheme, replacement in REDIS_SCHEMES.items():
        if storage_uri and storage_uri.startswith(scheme):
            return replacement + storage_uri.removeprefix(scheme)
    return None


class Slot:
    """One upload's hold on its scopes, until `release`."""

    def __init__(self, store: SlotStore | None, keys: list[str], member: str) -> None:
        self.store = store  # None: nothing is capped, nothing to renew or release
        self.keys = keys
        self.member = member


class UploadSlots:
    """The caps, the stores that count them (Redis when configured, else this process's
    memory), and the slots this process holds."""

    def __init__(
        self,
        per_account: int,
        per_address: int,
        lease: float,
        prefix: str = "depot",
        redis_client=None,
        memory: MemorySlotStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        renew_in_background: bool = True,
    ) -> None:
        self.caps = {"account": per_account, "address": per_address}
        self.lease = lease
        self.renew_every = lease / 4
        self.prefix = prefix
        self.clock = clock  # when Redis is tried again after a failure
        self.memory = memory or MemorySlotStore(clock)
        self.redis = RedisSlotStore(redis_client) if redis_client is not None else None
        self._redis_down_until = 0.0
        self._held: dict[str, Slot] = {}
        self._held_lock = threading.Lock()
        # The tests of leases renew by hand (renew_held), standing for a process that lives.
        self._renew_in_background = renew_in_background
        self._renewer_pid: int | None = None

    @classmethod
    def from_config(cls, config) -> UploadSlots:
        uri = config["RATELIMIT_STORAGE_URI"]
        url = redis_url(uri)
        client = None
        if url is None and uri and not uri.startswith("memory://"):
            scheme = uri.split("://", 1)[0]
            log.warning("upload slots: RATELIMIT_STORAGE_URI is %s://, not Redis; caps count per process", scheme)
        if url is not None:
            import redis

            # As the rate limiter's: a Redis that does not answer costs an upload one second.
            client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        return cls(
            per_account=int(config["MAX_CONCURRENT_UPLOADS_PER_ACCOUNT"]),
            per_address=int(config["MAX_CONCURRENT_UPLOADS_PER_ADDRESS"]),
            lease=float(config["UPLOAD_SLOT_LEASE_SECONDS"]),
            prefix=config["RATELIMIT_KEY_PREFIX"],
            redis_client=client,
        )

    def key(self, scope: str, value: str) -> str:
        return f"{self.prefix}:upload-slots:{scope}:{value}"

    @contextlib.contextmanager
    def hold(self, account: str, address: str | None) -> Iterator[Slot]:
        """A slot for one upload of `account` from `address` while the block runs; raises
        TooManyUploads, taking nothing, when either scope is full."""
        slot = self.acquire(account, address)
        try:
            yield slot
        finally:
            self.release(slot)

    def acquire(self, account: str, address: str | None) -> Slot:
        """Take a slot in each capped scope, renewed until `release`, or raise
        TooManyUploads, taking nothing."""
        values = {"account": account, "address": address}
        scopes = [scope for scope in SCOPES if self.caps[scope] > 0 and values[scope]]
        member = uuid.uuid4().hex
        if not scopes:
            return Slot(None, [], member)
        caps = [(self.key(scope, values[scope]), self.caps[scope]) for scope in scopes]
        store = self._store()
        full = self._call(store, "acquire", caps, member, self.lease)
        if full is _FAILED:  # Redis failed: this process counts on its own meanwhile
            store = self.memory
            full = store.acquire(caps, member, self.lease)
        if full is not None:
            scope = scopes[full]
            metrics.UPLOAD_SLOT_REFUSALS.labels(scope).inc()
            raise TooManyUploads(MESSAGES[scope].format(cap=self.caps[scope]), retry_after=RETRY_AFTER_SECONDS)
        slot = Slot(store, [key for key, _cap in caps], member)
        with self._held_lock:
            self._held[member] = slot
        self._ensure_renewer()
        return slot

    def release(self, slot: Slot) -> None:
        """Give the slot back (again: nothing happens)."""
        with self._held_lock:
            if self._held.pop(slot.member, None) is None:
                return
        self._call(slot.store, "release", slot.keys, slot.member)

    def renew_held(self) -> None:
        """Extend the lease of every slot this process holds, one call per store."""
        with self._held_lock:
            held = list(self._held.values())
        for store in {id(slot.store): slot.store for slot in held}.values():
            if store is not self.memory and self.redis_down():
                continue  # each try would wait for Redis's timeout; a lapsed lease frees early, no more
            self._call(store, "renew", [(slot.keys, slot.member) for slot in held if slot.store is store], self.lease)

    def in_use(self, scope: str, value: str) -> int:
        """Live slots of one scope (`account` or `address`) in the store in use now."""
        return self._store().in_use(self.key(scope, value))

    @property
    def renewing(self) -> bool:
        """Whether this process runs a renewer now (only while it holds slots)."""
        return self._renewer_pid == os.getpid()

    def redis_down(self) -> bool:
        """Whether Redis failed less than REDIS_RETRY_SECONDS ago."""
        return self.clock() < self._redis_down_until

    def _store(self) -> SlotStore:
        return self.redis if self.redis is not None and not self.redis_down() else self.memory

    def _ensure_renewer(self) -> None:
        """Start this process's renewer unless it runs (a forked worker starts its own)."""
        if not self._renew_in_background:
            return
        with self._held_lock:
            if self._renewer_pid == os.getpid():
                return
            self._renewer_pid = os.getpid()
        threading.Thread(target=self._renew_while_held, name="depot-upload-slots", daemon=True).start()

    def _renew_while_held(self) -> None:
        """Renew every quarter lease until the process holds no slot (the next one to be taken
        starts a renewer again), so an idle process runs none."""
        while True:
            time.sleep(self.renew_every)
            with self._held_lock:
                if not self._held:
                    self._renewer_pid = None
                    return
            try:
                self.renew_held()
            except Exception:  # noqa: BLE001 (the renewer must outlive any one failure)
                log.exception("upload slots: renewing the leases failed")

    def _call(self, store: SlotStore, operation: str, *args):
        """`store.<operation>(*args)`; a Redis failure is logged, counted and returns _FAILED,
        and memory counts for the next REDIS_RETRY_SECONDS."""
        if store is self.memory:
            return getattr(store, operation)(*args)
        try:
            return getattr(store, operation)(*args)
        except Exception as error:  # noqa: BLE001 (any Redis or network error: uploads go on)
            metrics.UPLOAD_SLOT_ERRORS.labels(operation).inc()
            if not self.redis_down():  # once per outage, not once per upload
                log.warning(
                    "upload slots: Redis failed (%s: %s); counting in this process for %g s",
                    type(error).__name__,
                    error,
                    REDIS_RETRY_SECONDS,
                )
            self._redis_down_until = self.clock() + REDIS_RETRY_SECONDS
            return _FAILED
