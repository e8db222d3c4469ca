"""Rate limits on the credential endpoints: shared by every replica through Redis, still
enforced per process when Redis is down, and answered with 429 and Retry-After.

The Redis tests use the real server at DEPOT_TEST_REDIS (default redis://127.0.0.1:6379/0),
under a key prefix of their own that is deleted afterwards."""

from __future__ import annotations

import pytest
from webtest import TestApp

from tests.helpers import REDIS_URL, redis_key_prefix

TOKEN = "/api/v1/auth/token"
WRONG = {"email": "nobody@example.com", "password": "wrong password"}


@pytest.fixture
def redis_limits():
    """Settings for apps that count in the real Redis under a fresh prefix (removed after)."""
    with redis_key_prefix("depot-test") as prefix:
        yield {
            "RATELIMIT_ENABLED": "true",
            "RATELIMIT_STORAGE_URI": REDIS_URL,
            "RATELIMIT_KEY_PREFIX": prefix,
            "AUTH_RATE_LIMIT": "3 per minute",
        }


def test_replicas_sharing_redis_share_one_budget(app_factory, redis_limits):
    replica_a, replica_b = TestApp(app_factory(**redis_limits)), TestApp(app_factory(**redis_limits))

    statuses = [
        replica_a.post_json(TOKEN, WRONG, expect_errors=True).status_code,
        replica_b.post_json(TOKEN, WRONG, expect_errors=True).status_code,
        replica_a.post_json(TOKEN, WRONG, expect_errors=True).status_code,
    ]
    limited = replica_b.post_json(TOKEN, WRONG, status=429)

    assert statuses == [401, 401, 401]
    assert limited.json["error"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) <= 60


def test_when_redis_is_down_limits_fall_back_to_each_process(app_factory, redis_limits):
    client = TestApp(app_factory(**{**redis_limits, "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0"}))

    statuses = [client.post_json(TOKEN, WRONG, expect_errors=True).status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 429]


def test_creating_api_tokens_is_rate_limited(uploader_on):
    client, headers = uploader_on(RATELIMIT_ENABLED="true", AUTH_RATE_LIMIT="2 per minute")

    for name in ("one", "two"):
        client.post_json("/api/v1/users/me/tokens", {"name": name}, headers=headers, status=201)
    response = client.post_json("/api/v1/users/me/tokens", {"name": "three"}, headers=headers, status=429)

    assert int(response.headers["Retry-After"]) > 0
