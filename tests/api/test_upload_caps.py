"""The caps on concurrent uploads over WebTest: an upload past its account's or its address's
cap is refused with a JSON 429 and Retry-After before a byte of its body is read, and every
upload gives its slot back when it ends, stored or refused. The address is the one Depot
already uses (the rate limiter's): the peer, or X-Forwarded-For only behind PROXY_COUNT proxies.

Slots are held here by taking them from the app's UploadSlots directly, as uploads still
streaming would: over real HTTP, integration-tests/test_upload_caps.py holds them with slow
bodies."""

from __future__ import annotations

import pytest
from webtest import TestApp

from app import metrics
from app.services.upload_slots import RETRY_AFTER_SECONDS, UploadSlots
from tests.api.test_uploads import assert_nothing_stored, send_unread
from tests.helpers import bearer, png_bytes

UPLOADS = "/api/v1/uploads"
CLIENT = "192.0.2.10"
CAPS = {"MAX_CONCURRENT_UPLOADS_PER_ACCOUNT": "1", "MAX_CONCURRENT_UPLOADS_PER_ADDRESS": "2"}


@pytest.fixture
def app(app_factory):
    """A Depot app allowing 1 upload at once per account and 2 per address."""
    return app_factory(**CAPS)


@pytest.fixture
def testapp(app) -> TestApp:
    """WebTest client for `app`, calling from CLIENT."""
    return TestApp(app, extra_environ={"REMOTE_ADDR": CLIENT})


@pytest.fixture
def slots(app) -> UploadSlots:
    """The app's upload slots (counted in memory: no Redis is configured)."""
    return app.injector.get(UploadSlots)


def upload(testapp, headers, status, name="caps.png"):
    return testapp.post(
        UPLOADS, upload_files=[("file", name, png_bytes(2048))], headers=headers, status=status, expect_errors=True
    )


def assert_too_many(response, message_start: str) -> None:
    assert response.status_code == 429
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    body = response.json
    assert body["error"] == "too_many_uploads"
    assert body["message"].startswith(message_start), body["message"]


def test_an_upload_past_the_account_cap_is_refused_with_429_before_its_body_is_read(
    testapp, slots, uploader, uploader_headers, fetch, disk
):
    slots.acquire(uploader.id, "198.51.100.7")  # an upload still streaming, from elsewhere
    refusals = metrics.UPLOAD_SLOT_REFUSALS.labels("account")
    before = refusals._value.get()

    multipart = send_unread(
        testapp, UPLOADS, {**uploader_headers, "Content-Type": "multipart/form-data; boundary=x"}, 10_000, status=429
    )
    raw = send_unread(testapp, f"{UPLOADS}/raw.txt", {**uploader_headers, "Content-Type": "text/plain"}, 10, "PUT", 429)

    for response in (multipart, raw):
        assert_too_many(response, "You already have 1 uploads in progress, the most allowed at once.")
    assert_nothing_stored(fetch, disk)
    assert slots.in_use("address", CLIENT) == 0  # a refused upload holds nothing
    assert refusals._value.get() == before + 2  # depot_upload_slot_refusals_total{scope="account"}


def test_other_accounts_at_one_address_are_accepted_until_the_address_cap(testapp, slots, make_user, login):
    first, second, third = (bearer(login(make_user(roles=["uploader"]))) for _ in range(3))
    holder = make_user(roles=["uploader"])
    slots.acquire(holder.id, CLIENT)

    upload(testapp, first, 201)
    slots.acquire("someone-else", CLIENT)  # now 2 uploads in progress from CLIENT
    refused = upload(testapp, second, 429)

    assert_too_many(refused, "2 uploads are already in progress from your network address")
    upload(TestApp(testapp.app, extra_environ={"REMOTE_ADDR": "192.0.2.11"}), third, 201)


def test_every_upload_gives_its_slot_back_stored_or_refused(testapp, slots, uploader, uploader_headers):
    upload(testapp, uploader_headers, 201)
    upload(testapp, uploader_headers, 415, name="script.exe")
    testapp.put(f"{UPLOADS}/empty.txt", b"", headers={**uploader_headers, "Content-Type": "text/plain"}, status=422)
    upload(testapp, uploader_headers, 201, name="again.png")  # the cap is 1: each slot came back

    assert slots.in_use("account", uploader.id) == 0
    assert slots.in_use("address", CLIENT) == 0


def test_a_caller_who_may_not_upload_is_told_403_even_when_the_caps_are_full(testapp, slots, make_user, login):
    slots.acquire("a", CLIENT)
    slots.acquire("b", CLIENT)
    plain = bearer(login(make_user(roles=["user"])))

    upload(testapp, plain, 403)


def test_a_forwarded_address_counts_only_behind_trusted_proxies(app_factory, make_user, login):
    headers = bearer(login(make_user(roles=["uploader"])))
    full, other, proxy = "203.0.113.5", "203.0.113.6", "10.0.0.2"

    def client_of(app) -> TestApp:
        for holder in ("a", "b"):
            app.injector.get(UploadSlots).acquire(holder, full)
        return TestApp(app, extra_environ={"REMOTE_ADDR": proxy})

    behind_proxy = client_of(app_factory(**CAPS, PROXY_COUNT="1"))
    assert_too_many(upload(behind_proxy, {**headers, "X-Forwarded-For": full}, 429), "2 uploads are already")
    upload(behind_proxy, {**headers, "X-Forwarded-For": other}, 201)

    # Without a trusted proxy the header is the client's say-so: its cap is its own address's.
    direct = TestApp(app_factory(**CAPS), extra_environ={"REMOTE_ADDR": full})
    for holder in ("a", "b"):
        direct.app.injector.get(UploadSlots).acquire(holder, full)
    assert_too_many(upload(direct, {**headers, "X-Forwarded-For": other}, 429), "2 uploads are already")


def test_uploads_go_on_when_the_redis_that_counts_them_is_down(uploader_on):
    client, headers = uploader_on(**CAPS, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    client.extra_environ = {"REMOTE_ADDR": CLIENT}

    for name in ("one.png", "two.png"):  # one at a time: the cap of 1 is never reached
        upload(client, headers, 201, name=name)
