"""app/gunicorn_wiring.py's fix to gevent's sockets: under gevent a file is sent with the
kernel's sendfile, cooperatively, whole and in order, and a client that falls behind makes
the greenlet wait (other greenlets go on) rather than fail. Run in a child Python patched as
gunicorn.conf.py patches a worker: patching this test process would change every other test.

And its request bodies' readinto, over gunicorn's own parser: whole, never past the body's
end, after what gunicorn already held, and through gunicorn's decoder for chunked bodies.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from app.gunicorn_wiring import patch_gunicorn

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


# A request body read with readinto (app/api/request_body.py): gunicorn's own parser on a real
# connection, the body's first bytes arriving with the headers, the next request pipelined
# right behind it.
@pytest.fixture
def parsed_connection():
    """(client end, gunicorn's RequestParser on the server end) of a real local connection."""
    patch_gunicorn()
    client, server = socket.socketpair()
    server.settimeout(10)  # a read that waits for bytes that never come fails, not hangs
    with client, server:
        yield client, RequestParser(Config(), server, ("127.0.0.1", 0))


def _send_soon(client: socket.socket, data: bytes) -> threading.Thread:
    sender = threading.Thread(target=client.sendall, args=(data,))
    sender.start()
    return sender


def _read_all_with_readinto(body, block: int) -> bytes:
    received = bytearray()
    buffer = bytearray(block)
    while count := body.readinto(buffer):
        received += buffer[:count]
    return bytes(received)


def test_a_body_read_with_readinto_is_whole_and_the_next_request_intact(parsed_connection):
    client, parser = parsed_connection
    content = os.urandom(3 * 1024 * 1024 + 17)
    sender = _send_soon(
        client,
        b"PUT /first HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(content)
        + content
        + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n",
    )

    first = next(parser)
    received = _read_all_with_readinto(first.body, 1024 * 1024)
    following = next(parser)
    sender.join()

    assert received == content
    assert first.body.readinto(bytearray(10)) == 0  # nothing past the body's end
    assert (following.method, following.path) == ("GET", "/next")


def test_readinto_after_a_read_returns_what_gunicorn_held_first(parsed_connection):
    client, parser = parsed_connection
    content = os.urandom(200_000)
    sender = _send_soon(client, b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(content) + content)

    request = next(parser)
    start = request.body.read(1000)
    rest = _read_all_with_readinto(request.body, 64 * 1024)
    sender.join()

    assert start + rest == content


def test_a_chunked_body_is_read_with_readinto_through_gunicorns_decoder(parsed_connection):
    client, parser = parsed_connection
    sender = _send_soon(
        client,
        b"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )

    request = next(parser)
    received = _read_all_with_readinto(request.body, 4)
    sender.join()

    assert received == b"hello world"


def test_a_body_cut_short_reads_to_where_it_stopped(parsed_connection):
    client, parser = parsed_connection
    client.sendall(b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"y" * 5000)
    client.shutdown(socket.SHUT_WR)

    request = next(parser)

    assert _read_all_with_readinto(request.body, 64 * 1024) == b"y" * 5000
