"""The readiness check's single flight: one check at a time per process, its answer shared
with the probes that arrive meanwhile and reused for a moment, and while the next check runs
the previous answer given at once, so probes never pile up on a hung dependency. (Against a
real hung store under gunicorn: integration-tests/test_hung_store.py.)"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.exceptions import Unavailable
from app.services.health import SingleFlight


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class SlowCheck:
    """A check that blocks until released, counting how often it ran and how many at once."""

    def __init__(self, outcome: dict | Exception = None) -> None:
        self.outcome = outcome or {"database": "ok"}
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls = 0
        self.running = self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self) -> dict:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()
        self.release.wait(5)
        with self._lock:
            self.running -= 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def ask(flight: SingleFlight):
    try:
        return flight()
    except Unavailable as error:
        return error


def ask_while_the_first_checks(flight: SingleFlight, check: SlowCheck, probes: int) -> list:
    """`probes` answers: the first probe starts the check, the others arrive while it runs."""
    with ThreadPoolExecutor(probes) as pool:
        first = pool.submit(ask, flight)
        check.started.wait(5)
        others = [pool.submit(ask, flight) for _ in range(probes - 1)]
        check.release.set()
        return [first.result(5)] + [f.result(5) for f in others]


def test_concurrent_probes_share_one_check():
    check = SlowCheck()
    flight = SingleFlight(check, ttl=1, wait=5)

    answers = ask_while_the_first_checks(flight, check, 8)

    assert (check.calls, check.most_at_once) == (1, 1)
    assert answers == [{"database": "ok"}] * 8


def test_a_failure_is_shared_and_each_probe_gets_its_own_error():
    check = SlowCheck(Unavailable("The file store is not answering.", fields={"storage": ["unavailable"]}))
    flight = SingleFlight(check, ttl=1, wait=5)

    errors = ask_while_the_first_checks(flight, check, 4)

    assert check.calls == 1
    assert all(isinstance(e, Unavailable) and e.fields == {"storage": ["unavailable"]} for e in errors)
    assert len({id(e) for e in errors}) == 4  # never one instance raised in several threads


def test_an_answer_is_reused_for_the_ttl_then_checked_again():
    clock = Clock()
    check = SlowCheck()
    check.release.set()
    flight = SingleFlight(check, ttl=1, wait=5, clock=clock)

    flight()
    clock.now += 0.9
    flight()
    assert check.calls == 1
    clock.now += 0.2
    flight()
    assert check.calls == 2


def test_while_a_check_runs_a_recent_answer_is_given_at_once():
    clock = Clock()
    check = SlowCheck()
    flight = SingleFlight(check, ttl=1, wait=5, stale=3, clock=clock)
    check.release.set()
    flight()  # the answer of the first check
    check.release.clear()
    check.outcome = Unavailable("The file store is not answering.", fields={"storage": ["unavailable"]})
    clock.now += 1.5  # expired: the next probe leads a new check, which hangs

    with ThreadPoolExecutor(1) as pool:
        leading = pool.submit(ask, flight)
        check.started.wait(5)
        meanwhile = [ask(flight) for _ in range(3)]  # not waiting: the previous answer
        clock.now += 2  # now too old to give: wait for the running check
        waited = pool.submit(ask, flight)
        check.release.set()
        later = [leading.result(5), waited.result(5)]

    assert meanwhile == [{"database": "ok"}] * 3
    assert all(isinstance(e, Unavailable) for e in later)
    assert check.calls == 2


def test_a_probe_waits_for_the_running_check_only_so_long():
    check = SlowCheck()
    flight = SingleFlight(check, ttl=1, wait=0.05)

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(ask, flight)
        check.started.wait(5)
        waited = ask(flight)
        check.release.set()
        first.result(5)

    assert isinstance(waited, Unavailable)
    assert waited.fields == {"readiness": ["timeout"]}
    assert check.calls == 1


def test_an_unexpected_error_in_a_check_is_not_ready():
    flight = SingleFlight(lambda: 1 / 0, ttl=1, wait=1)

    with pytest.raises(Unavailable, match="readiness check failed"):
        flight()
