"""app/gunicorn_wiring.py's fix to gevent's sockets: under gevent a file is sent with the
kernel's sendfile, cooperatively, whole and in order, and a client that falls behind makes
the greenlet wait (other greenlets go on) rather than fail. Run in a child Python patched as
gunicorn.conf.py patches a worker: patching this test process would change every other test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

UNDER_GEVENT = r"""
from gevent import monkey
monkey.patch_all()
import hashlib, json, os, socket, tempfile
import gevent
from app.gunicorn_wiring import patch_gevent_sendfile

patch_gevent_sendfile()
calls = []
kernel_sendfile = os.sendfile
def counting(*args):
    calls.append(args[3])
    return kernel_sendfile(*args)
os.sendfile = counting

content = os.urandom(8 * 1024 * 1024 + 123)
with tempfile.NamedTemporaryFile() as f:
    f.write(content); f.flush()
    listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen()
    client = socket.create_connection(listener.getsockname())
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    server, _ = listener.accept()
    ticks = []
    def ticker():
        while True:
            ticks.append(1)
            gevent.sleep(0.005)
    def slow_reader():
        got = bytearray()
        while len(got) < len(content) - 1000:
            got += client.recv(256 * 1024)
            gevent.sleep(0.01)  # behind the server: it must wait for the socket
        while chunk := client.recv(1 << 20):
            got += chunk
        return bytes(got)
    gevent.spawn(ticker)
    reader = gevent.spawn(slow_reader)
    with open(f.name, "rb") as source:
        sent = server.sendfile(source, offset=1000)
        position = source.tell()
    server.close()
    received = reader.get(timeout=60)

print(json.dumps({
    "sent": sent, "expected": len(content) - 1000, "position": position,
    "intact": received == content[1000:], "kernel_calls": len(calls), "ticks": len(ticks),
}))
"""


def test_under_gevent_files_are_sent_by_the_kernel_whole_and_cooperatively():
    done = subprocess.run(
        [sys.executable, "-c", UNDER_GEVENT], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["intact"] is True
    assert outcome["sent"] == outcome["expected"] and outcome["position"] == outcome["expected"] + 1000
    # os.sendfile did the sending (gevent's own copy never calls it), and was called again
    # after the slow client made it wait...
    assert outcome["kernel_calls"] >= 2
    # ...while the worker's other greenlets kept running.
    assert outcome["ticks"] >= 5
