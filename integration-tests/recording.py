"""What clients saw while a dependency hung: each request's kind, when it was sent, how long
its answer took, its status and JSON body. Shared by the hung-dependency tests
(test_hung_store.py, test_hung_database.py), which assert bounds on these samples."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests


@dataclass
class Sample:
    kind: str
    started: float
    seconds: float
    status: int | None  # None: no HTTP answer
    body: dict | None


@dataclass
class Record:
    samples: list[Sample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, kind: str, method: str, url: str, **kwargs) -> requests.Response | None:
        started = time.monotonic()
        response = None
        try:
            response = requests.request(method, url, timeout=30, **kwargs)
        except requests.RequestException:
            pass  # no answer at all (a reset, or none within 30 s): status None
        seconds = time.monotonic() - started
        body = None
        if response is not None and response.headers.get("Content-Type", "").startswith("application/json"):
            body = response.json()
        status = None if response is None else response.status_code
        with self.lock:
            self.samples.append(Sample(kind, started, seconds, status, body))
        return response

    def of(self, kind: str, after: float = 0, before: float = float("inf")) -> list[Sample]:
        """The samples of `kind` sent after `after` that were answered before `before`."""
        with self.lock:
            return [s for s in self.samples if s.kind == kind and after <= s.started <= before - s.seconds]

    def during(self, kind: str, began: float, ended: float) -> list[Sample]:
        """The samples of `kind` sent between `began` and `ended`, whenever answered."""
        with self.lock:
            return [s for s in self.samples if s.kind == kind and began <= s.started < ended]


def print_figures(record: Record, kinds: tuple[str, ...], began: float, ended: float) -> None:
    """What each kind of request sent between `began` and `ended` saw (shown with `pytest -s`)."""
    for kind in kinds:
        during = record.during(kind, began, ended)
        if during:
            statuses = sorted({str(s.status) for s in during})
            print(f"{kind}: {len(during)} sent, statuses {statuses}, slowest {max(s.seconds for s in during):.2f} s")
