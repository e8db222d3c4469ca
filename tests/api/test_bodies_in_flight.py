"""A stopping worker ends the bodies of the uploads in flight (app/api/bodies_in_flight.py),
over a real socket pair: the read blocked on the server side returns, and the request's
failure becomes a 503 that asks the client to send the upload again. A body that stops
arriving is ended by the idle timeout set on the same socket, and the socket gets its own
timeout back."""

from __future__ import annotations

import socket
import threading
from types import SimpleNamespace

import pytest

from app.api import bodies_in_flight
from app.exceptions import Malformed, Unavailable


@pytest.fixture
def stopping_reset():
    """Clears the process-wide 'stopping' mark that end_bodies sets."""
    yield
    bodies_in_flight._stopping.clear()


def test_end_bodies_wakes_a_blocked_read_and_waits_for_the_request(stopping_reset):
    server, client = socket.socketpair()
    request = SimpleNamespace(environ={"gunicorn.socket": server})
    outcome: list[BaseException] = []

    def upload() -> None:
        try:
            with bodies_in_flight.upload_in_flight(request):
                if server.recv(1024) == b"":  # blocks until end_bodies shuts the reading side
                    raise Malformed("The body ended after 0 of 10 bytes.")
        except BaseException as error:  # noqa: BLE001 (handed to the test)
            outcome.append(error)

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        while not bodies_in_flight._uploads:
            thread.join(0.01)
        assert bodies_in_flight.end_bodies(wait=5) == 0
        assert not thread.is_alive()
        assert [type(error) for error in outcome] == [Unavailable]
    finally:
        client.close()
        thread.join(5)
        server.close()


def test_an_early_end_is_a_malformed_body_while_not_stopping(stopping_reset):
    request = SimpleNamespace(environ={})
    with pytest.raises(Malformed), bodies_in_flight.upload_in_flight(request):
        raise Malformed("The body ended after 0 of 10 bytes.")
    assert bodies_in_flight.end_bodies(wait=0) == 0  # nothing in flight: returns at once


def test_a_read_waits_at_most_the_idle_timeout_and_the_socket_gets_its_own_back(stopping_reset):
    server, client = socket.socketpair()
    request = SimpleNamespace(environ={"gunicorn.socket": server})
    try:
        with pytest.raises(TimeoutError), bodies_in_flight.upload_in_flight(request, idle_timeout=0.05):
            client.sendall(b"part of the body")
            assert server.recv(1024) == b"part of the body"  # what comes in time is read
            server.recv(1024)  # then nothing comes
        assert server.gettimeout() is None  # blocking again, as gunicorn left it
        assert bodies_in_flight._uploads == {}
    finally:
        client.close()
        server.close()


def test_a_request_without_a_server_socket_has_no_idle_timeout(stopping_reset):
    with bodies_in_flight.upload_in_flight(SimpleNamespace(environ={}), idle_timeout=0.05):
        pass
