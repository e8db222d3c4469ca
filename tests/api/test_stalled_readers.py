"""A download's connection, as app.api.stalled_readers bounds it: a client that reads slowly
may make Depot queue only a little beyond the bytes in flight (TCP_NOTSENT_LOWAT)."""

from __future__ import annotations

import contextlib
import socket

import pytest

from app.api import stalled_readers

KIB = 1024


@pytest.fixture
def connection():
    """(Depot's end, a client's end) of a real TCP connection on loopback; the client's receive
    buffer is small, as a slow reader's is."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * KIB)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    yield server, client
    for sock in (server, client):
        sock.close()


def queue_until_full(sock: socket.socket) -> int:
    """Send until the kernel takes no more; how many bytes it took."""
    sock.setblocking(False)
    taken = 0
    block = b"x" * (64 * KIB)
    with contextlib.suppress(BlockingIOError):
        while taken < 64 * 1024 * KIB:
            taken += sock.send(block)
    return taken


def test_a_download_connection_queues_little_for_a_client_that_does_not_read(connection):
    server, _client = connection
    stalled_readers.end_when_unread_for({"gunicorn.socket": server}, 30)

    assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT) == stalled_readers.UNSENT_BYTES
    # What is in flight is bounded by the client's window; the rest by UNSENT_BYTES.
    assert queue_until_full(server) < stalled_readers.UNSENT_BYTES + 256 * KIB


def test_without_the_bound_the_kernel_queues_far_more(connection):
    """What the bound is for (the kernel's own sizing, measured here, not assumed)."""
    server, _client = connection

    assert queue_until_full(server) > 2 * stalled_readers.UNSENT_BYTES
