"""app.cooperative: under gevent (as in a gunicorn worker) a blocking call handed to it runs on
a real thread while the worker's other greenlets go on; outside gevent it runs in place.

The gevent half runs in a child Python, patched the way gunicorn.conf.py patches a worker:
monkey patching this test process would change every other test's threads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.cooperative import gevent_active, offload, start

ROOT = Path(__file__).resolve().parent.parent

UNDER_GEVENT = r"""
from gevent import monkey
monkey.patch_all()
import hashlib, json, os, sys, tempfile, threading
import gevent
from app.cooperative import gevent_active, offload
from app.storage.pipeline import HashingWriter

real_sleep = monkey.get_original("time", "sleep")
ticks = []

def ticker():
    while True:
        ticks.append(1)
        gevent.sleep(0.01)

gevent.spawn(ticker)
gevent.sleep(0.05)

def ticks_during(call):
    before = len(ticks)
    call()
    return len(ticks) - before

# A staged file written through HashingWriter on a real thread: every byte, in order.
chunks = [bytes([i % 251]) * (256 * 1024 + i) for i in range(24)]
path = tempfile.mktemp()
with open(path, "wb") as out:
    writer = HashingWriter(out.write, blocking_io=True)
    digest = writer.drain(iter(chunks))
with open(path, "rb") as written:
    content = written.read()
os.remove(path)
expected = b"".join(chunks)

failing = HashingWriter(lambda chunk: (_ for _ in ()).throw(OSError("disk full")), blocking_io=True)
try:
    failing.drain(iter(chunks))
    error = None
except OSError as caught:
    error = str(caught)

print(json.dumps({
    "active": gevent_active(),
    "ticks_in_place": ticks_during(lambda: real_sleep(0.3)),
    "ticks_offloaded": ticks_during(lambda: offload(real_sleep, 0.3)),
    "other_thread": offload(threading.get_native_id) != threading.get_native_id(),
    "content_ok": content == expected,
    "digest_ok": digest == hashlib.sha256(expected).hexdigest(),
    "write_error": error,
}))
"""


@pytest.fixture(scope="module")
def under_gevent() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", UNDER_GEVENT], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_under_gevent_a_blocking_call_stalls_the_worker_unless_offloaded(under_gevent):
    assert under_gevent["active"] is True
    # The control: a blocking call made in place freezes every greenlet of the worker...
    assert under_gevent["ticks_in_place"] == 0
    # ...handed to offload, the other greenlets keep running (a tick every 10 ms for 0.3 s).
    assert under_gevent["ticks_offloaded"] >= 10
    assert under_gevent["other_thread"] is True


def test_under_gevent_staged_writes_on_a_real_thread_keep_every_byte_in_order(under_gevent):
    assert under_gevent["content_ok"] is True
    assert under_gevent["digest_ok"] is True
    assert under_gevent["write_error"] == "disk full"


def test_outside_gevent_calls_run_in_place():
    assert gevent_active() is False
    assert offload(threading.get_native_id) == threading.get_native_id()
    pending = start(int, "not a number")
    with pytest.raises(ValueError):
        pending.get()
