"""A download's connection, as app.api.stalled_readers bounds it: when many download, a client
that reads slowly makes Depot queue only a little beyond the bytes in flight
(TCP_NOTSENT_LOWAT); a lone download gets the whole budget."""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from app.api import stalled_readers

KIB = 1024


def tcp_connection() -> tuple[socket.socket, socket.socket]:
    """(Depot's end, a client's end) of a real TCP connection on loopback; the client's receive
    buffer is small, as a slow reader's is."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * KIB)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    return server, client


@pytest.fixture
def connection():
    server, client = tcp_connection()
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


def lowat(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT)


def test_a_lone_download_may_queue_its_full_share():
    assert stalled_readers.unsent_share(1) == stalled_readers.MAX_UNSENT_BYTES
    assert stalled_readers.unsent_share(1000) == stalled_readers.MIN_UNSENT_BYTES
    assert stalled_readers.unsent_share(64) == stalled_readers.UNSENT_BUDGET_BYTES // 64


def test_many_downloads_share_the_budget_and_a_stalled_one_queues_little(monkeypatch):
    """Four downloads on a budget of four times 128 KiB: each may queue 128 KiB beyond what is
    in flight; once three have ended, the last one gets the whole budget."""
    monkeypatch.setattr(stalled_readers, "UNSENT_BUDGET_BYTES", 4 * stalled_readers.MIN_UNSENT_BYTES)
    pairs = [tcp_connection() for _ in range(4)]
    try:
        for server, _client in pairs:
            stalled_readers.end_when_unread_for({"gunicorn.socket": server}, 30)
        stalled_readers._check(time.monotonic())
        first = pairs[0][0]

        assert {lowat(server) for server, _ in pairs} == {stalled_readers.MIN_UNSENT_BYTES}
        # What is in flight is bounded by the client's window; the rest by its share.
        assert queue_until_full(first) < stalled_readers.MIN_UNSENT_BYTES + 256 * KIB

        for server, client in pairs[1:]:
            server.close()
            client.close()
        stalled_readers._check(time.monotonic())
        assert lowat(first) == 4 * stalled_readers.MIN_UNSENT_BYTES
    finally:
        for server, client in pairs:
            server.close()
            client.close()
        stalled_readers._check(time.monotonic())


def test_without_the_bound_the_kernel_queues_far_more(connection):
    """What the bound is for (the kernel's own sizing, measured here, not assumed)."""
    server, _client = connection

    assert queue_until_full(server) > 4 * stalled_readers.MIN_UNSENT_BYTES
