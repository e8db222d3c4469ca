"""CORS for browser clients on allowed origins, security headers on every response, and the
trusted-proxy setting that decides which client address and scheme the app sees."""

from __future__ import annotations

import pytest
from webtest import TestApp

from app.config import ConfigError, TestingConfig
from tests.helpers import png_bytes

SPA = "https://app.example.com"
UPLOADS = "/api/v1/uploads"
TOKEN = "/api/v1/auth/token"


def header_list(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",")}


def preflight(client, path=UPLOADS, origin=SPA, method="POST", headers="authorization, content-digest"):
    return client.options(
        path,
        headers={"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers},
    )


def test_a_preflight_from_an_allowed_origin_permits_auth_and_upload_headers(uploader_on):
    client, _headers = uploader_on(CORS_ORIGINS=f"{SPA}, https://admin.example.com")

    response = preflight(client)

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == SPA
    assert {"authorization", "content-digest"} <= header_list(response.headers["Access-Control-Allow-Headers"])
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_responses_to_an_allowed_origin_expose_the_headers_a_client_needs(uploader_on):
    client, headers = uploader_on(CORS_ORIGINS=SPA)

    created = client.post(UPLOADS, upload_files=[("file", "a.png", png_bytes())], headers={**headers, "Origin": SPA})
    download = client.get(f"{UPLOADS}/{created.json['id']}/content", headers={**headers, "Origin": SPA})

    for response in (created, download):
        assert response.headers["Access-Control-Allow-Origin"] == SPA
        exposed = header_list(response.headers["Access-Control-Expose-Headers"])
        assert {"location", "etag", "content-disposition", "x-request-id", "retry-after"} <= exposed
        assert "Origin" in response.headers["Vary"]


def test_errors_carry_cors_headers_so_the_client_can_read_them(uploader_on):
    client, _headers = uploader_on(CORS_ORIGINS=SPA)

    response = client.get(UPLOADS, headers={"Origin": SPA}, status=401)

    assert response.headers["Access-Control-Allow-Origin"] == SPA
    assert response.json["error"] == "unauthorized"


@pytest.mark.parametrize("origins", ["", "https://other.example.com"])
def test_other_origins_get_no_cors_headers(uploader_on, origins):
    client, headers = uploader_on(CORS_ORIGINS=origins)

    response = client.get(UPLOADS, headers={**headers, "Origin": SPA})
    options = preflight(client)

    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in options.headers


def test_any_origin_is_allowed_without_credentials(uploader_on):
    client, _headers = uploader_on(CORS_ORIGINS="*")

    response = preflight(client, origin="https://anywhere.example")

    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("origin", ["app.example.com", "https://app.example.com/", "https://a.com/path", "null"])
def test_malformed_origins_are_refused_at_start(origin):
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        TestingConfig({"CORS_ORIGINS": origin}).validate()


def test_json_answers_and_errors_carry_the_security_headers(testapp):
    for response in (testapp.get("/healthz"), testapp.get("/api/v1/nothing", status=404)):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert response.headers["Cache-Control"] == "no-store"
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP


def test_downloads_keep_their_own_sandbox_policy(uploader_on):
    client, headers = uploader_on()
    created = client.post(UPLOADS, upload_files=[("file", "a.png", png_bytes())], headers=headers)

    response = client.get(f"{UPLOADS}/{created.json['id']}/content", headers=headers)

    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_docs_page_may_run_its_own_scripts_only(testapp):
    response = testapp.get("/api/v1/docs/")

    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-inline'" in csp
    assert "frame-ancestors 'none'" in csp


def test_hsts_is_sent_when_the_trusted_proxy_says_https(app_factory):
    behind_proxy = TestApp(app_factory(PROXY_COUNT="1"))
    direct = TestApp(app_factory())

    proxied = behind_proxy.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    spoofed = direct.get("/healthz", headers={"X-Forwarded-Proto": "https"})

    assert proxied.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" not in spoofed.headers


def login_attempts(client, forwarded_for: str, count: int) -> list[int]:
    payload = {"email": "nobody@example.com", "password": "wrong password"}
    return [
        client.post_json(TOKEN, payload, headers={"X-Forwarded-For": forwarded_for}, expect_errors=True).status_code
        for _ in range(count)
    ]


def test_behind_one_proxy_rate_limits_key_on_the_forwarded_client(app_factory):
    client = TestApp(app_factory(PROXY_COUNT="1", RATELIMIT_ENABLED="true", AUTH_RATE_LIMIT="2 per minute"))

    assert login_attempts(client, "203.0.113.1", 3) == [401, 401, 429]
    assert login_attempts(client, "203.0.113.2", 1) == [401]  # another client has its own budget


def test_without_a_trusted_proxy_a_forged_forwarded_for_changes_nothing(app_factory):
    client = TestApp(app_factory(RATELIMIT_ENABLED="true", AUTH_RATE_LIMIT="2 per minute"))

    assert login_attempts(client, "203.0.113.1", 2) == [401, 401]
    assert login_attempts(client, "203.0.113.2", 1) == [429]


def test_no_cookie_is_ever_set_or_read(uploader_on):
    client, headers = uploader_on()

    responses = [
        client.get("/api/v1/users/me", headers={**headers, "Cookie": "session=forged"}),
        client.post_json("/api/v1/auth/token", {"email": "x@example.com", "password": "wrong password"}, status=401),
    ]

    assert all("Set-Cookie" not in response.headers for response in responses)
