"""The upload slots behind the caps on concurrent uploads (app/services/upload_slots.py): the
same rules in this process's memory and in the real Redis, leases that free the slots of a
process that died, one count shared by every UploadSlots on one Redis, and uploads that go on
when Redis fails.

The Redis tests use the real server at DEPOT_TEST_REDIS under a key prefix of their own,
deleted afterwards; their leases are a fraction of a second, so they wait in real time."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis

from app import metrics
from app.exceptions import TooManyUploads
from app.services.upload_slots import REDIS_RETRY_SECONDS, MemorySlotStore, RedisSlotStore, UploadSlots, redis_url
from tests.helpers import REDIS_URL, redis_key_prefix

LEASE = 0.4  # seconds; short enough to wait for in real time


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def redis_client():
    """A client of the real Redis the tests count in."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture(params=["memory", "redis"])
def make_slots(request, redis_client):
    """Builds UploadSlots on one store (memory, or the real Redis under a fresh prefix):
    make_slots(per_account, per_address) -> (slots, wait), where wait(seconds) lets that much
    lease time pass. Their leases are renewed only by calling renew_held(), as a living
    process does; without it they stand for the slots of a killed one."""
    if request.param == "memory":
        clock = FakeClock()
        memory = MemorySlotStore(clock)
        yield lambda per_account, per_address: (
            UploadSlots(per_account, per_address, LEASE, memory=memory, clock=clock, renew_in_background=False),
            clock.advance,
        )
        return
    with redis_key_prefix("depot-slots-test") as prefix:
        yield lambda per_account, per_address: (
            UploadSlots(
                per_account, per_address, LEASE, prefix=prefix, redis_client=redis_client, renew_in_background=False
            ),
            time.sleep,
        )


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def refused_scope(slots: UploadSlots, account: str, address: str | None) -> str | None:
    """None when a slot was taken (and kept), else which cap refused it, from the message."""
    try:
        slots.acquire(account, address)
    except TooManyUploads as error:
        assert error.retry_after > 0
        return "account" if error.message.startswith("You already have") else "address"
    return None


def test_an_account_gets_as_many_slots_as_its_cap_and_the_next_is_refused(make_slots):
    slots, _wait = make_slots(2, 0)

    taken = [refused_scope(slots, "alice", "10.0.0.1"), refused_scope(slots, "alice", "10.0.0.2")]

    assert taken == [None, None]
    assert refused_scope(slots, "alice", "10.0.0.3") == "account"
    assert refused_scope(slots, "bob", "10.0.0.1") is None  # another account is counted apart


def test_an_address_cap_counts_every_account_behind_it(make_slots):
    slots, _wait = make_slots(5, 2)

    assert refused_scope(slots, "alice", "10.0.0.1") is None
    assert refused_scope(slots, "bob", "10.0.0.1") is None
    assert refused_scope(slots, "carol", "10.0.0.1") == "address"
    assert refused_scope(slots, "carol", "10.0.0.2") is None


def test_a_refused_upload_takes_no_slot_in_any_scope(make_slots):
    slots, _wait = make_slots(5, 1)
    slots.acquire("alice", "10.0.0.1")

    for _ in range(3):
        assert refused_scope(slots, "bob", "10.0.0.1") == "address"

    assert slots.in_use("account", "bob") == 0
    assert slots.in_use("address", "10.0.0.1") == 1


def test_a_released_slot_is_free_at_once(make_slots):
    slots, _wait = make_slots(1, 1)
    with slots.hold("alice", "10.0.0.1"):
        assert refused_scope(slots, "alice", "10.0.0.1") == "account"

    assert slots.in_use("account", "alice") == 0
    assert slots.in_use("address", "10.0.0.1") == 0
    assert refused_scope(slots, "alice", "10.0.0.1") is None


def test_a_slot_is_released_when_the_upload_fails(make_slots):
    slots, _wait = make_slots(1, 1)

    with pytest.raises(RuntimeError), slots.hold("alice", "10.0.0.1"):
        raise RuntimeError("the body ended early")

    assert refused_scope(slots, "alice", "10.0.0.1") is None


def test_a_slot_never_released_frees_itself_when_its_lease_ends(make_slots):
    slots, wait = make_slots(1, 1)
    slots.acquire("alice", "10.0.0.1")  # its process "dies": nobody releases it
    wait(LEASE / 2)
    assert refused_scope(slots, "alice", "10.0.0.1") == "account"

    wait(LEASE / 2 + 0.1)

    assert slots.in_use("account", "alice") == 0
    assert refused_scope(slots, "alice", "10.0.0.1") is None


def test_a_renewed_slot_outlives_its_first_lease(make_slots):
    slots, wait = make_slots(1, 0)
    slot = slots.acquire("alice", None)
    for _ in range(4):  # twice the lease in all, renewed every half lease
        wait(LEASE / 2)
        slots.renew_held()

    assert refused_scope(slots, "alice", None) == "account"
    slots.release(slot)
    slots.renew_held()  # a released slot is not renewed back into its set
    assert slots.in_use("account", "alice") == 0


def test_a_renewal_that_arrives_after_the_release_brings_nothing_back(make_slots):
    slots, _wait = make_slots(1, 1)
    slot = slots.acquire("alice", "10.0.0.1")
    slots.release(slot)

    slot.store.renew([(slot.keys, slot.member)], LEASE)  # the renewer had read it before the release

    assert slots.in_use("account", "alice") == 0
    assert slots.in_use("address", "10.0.0.1") == 0


def test_a_cap_of_zero_counts_nothing(make_slots):
    slots, _wait = make_slots(0, 0)

    for _ in range(50):
        slots.acquire("alice", "10.0.0.1")

    assert slots.in_use("account", "alice") == 0
    assert slots.in_use("address", "10.0.0.1") == 0


def test_a_process_renews_every_slot_it_holds_in_the_background(redis_client):
    renewals = []

    class CountingStore(RedisSlotStore):
        def renew(self, held, lease):
            renewals.append(len(held))
            super().renew(held, lease)

    with redis_key_prefix("depot-slots-test") as prefix:
        slots = UploadSlots(2, 0, LEASE, prefix=prefix, redis_client=redis_client)
        slots.redis = CountingStore(redis_client)
        first, second = slots.acquire("alice", None), slots.acquire("alice", None)

        time.sleep(3 * LEASE)  # the leases alone would have ended twice over

        assert slots.in_use("account", "alice") == 2
        assert set(renewals) == {2}  # one call for both slots each time
        assert len(renewals) <= 3 * 4 + 1  # every quarter lease, not more often
        slots.release(first)
        slots.release(second)
        assert slots.in_use("account", "alice") == 0
        assert wait_until(lambda: not slots.renewing, timeout=1)  # no slot held: the renewer ends
        slots.release(slots.acquire("alice", None))
        assert slots.renewing  # and the next slot taken starts it again


def test_uploads_slots_on_one_redis_share_one_count(redis_client):
    with redis_key_prefix("depot-slots-test") as prefix:
        replica_a = UploadSlots(2, 0, 60, prefix=prefix, redis_client=redis_client)
        replica_b = UploadSlots(2, 0, 60, prefix=prefix, redis_client=redis_client)

        replica_a.acquire("alice", None)
        held = replica_b.acquire("alice", None)

        assert refused_scope(replica_a, "alice", None) == "account"
        replica_b.release(held)
        assert refused_scope(replica_a, "alice", None) is None


def test_concurrent_takers_on_redis_never_exceed_the_cap(redis_client):
    cap, takers = 5, 40
    with redis_key_prefix("depot-slots-test") as prefix:
        replicas = [
            UploadSlots(cap, 0, 60, prefix=prefix, redis_client=redis.Redis.from_url(REDIS_URL)) for _ in range(4)
        ]
        start = threading.Barrier(takers)
        results: list[str | None] = []

        def take(index: int) -> None:
            start.wait()
            results.append(refused_scope(replicas[index % len(replicas)], "alice", None))

        threads = [threading.Thread(target=take, args=(index,)) for index in range(takers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert results.count(None) == cap
        assert replicas[0].in_use("account", "alice") == cap


def test_when_redis_fails_uploads_go_on_capped_per_process_and_the_failure_is_counted(caplog):
    failures = metrics.UPLOAD_SLOT_ERRORS.labels("acquire")
    before = failures._value.get()
    down = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1, socket_timeout=1)
    slots = UploadSlots(2, 0, 60, redis_client=down)

    with caplog.at_level(logging.WARNING, logger="app.services.upload_slots"):
        first = slots.acquire("alice", None)  # Redis refuses: counted in memory instead
        slots.acquire("alice", None)
        refused = refused_scope(slots, "alice", None)

    assert refused == "account"  # the cap still holds, in this process
    assert failures._value.get() == before + 1  # later uploads skip Redis for a while
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and "Redis failed" in warnings[0]
    slots.release(first)
    assert refused_scope(slots, "alice", None) is None


def test_redis_is_tried_again_after_a_failure(redis_client):
    clock = FakeClock()
    with redis_key_prefix("depot-slots-test") as prefix:
        slots = UploadSlots(1, 0, 60, prefix=prefix, redis_client=redis_client, clock=clock)
        working = slots.redis
        # The outage: the same slots, pointed at a port where no Redis answers.
        slots.redis = RedisSlotStore(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1))
        slots.acquire("alice", None)  # counted in memory
        slots.redis = working  # Redis is back
        clock.advance(REDIS_RETRY_SECONDS - 1)
        slots.acquire("bob", None)  # still in memory: Redis is not tried during the pause
        assert working.in_use(slots.key("account", "bob")) == 0

        clock.advance(1)
        slots.acquire("carol", None)

        assert working.in_use(slots.key("account", "carol")) == 1


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("rediss://:secret@cache:6380/1", "rediss://:secret@cache:6380/1"),
        ("redis+unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("memory://", None),
        ("memcached://cache:11211", None),
        (None, None),
    ],
)
def test_the_rate_limiter_redis_setting_is_reused(uri, url):
    assert redis_url(uri) == url
