"""Swagger UI's Authorize takes a bare token (issue 14): in Debian's Chromium, driven by
Playwright, a person opens /api/v1/docs/ on the session's server, pastes a session token as it
came from the login (no "Bearer " typed), runs GET /api/v1/users/me with "Try it out", and
gets their own user back. The document's bearer scheme is `http`, so Swagger UI adds
"Bearer " itself; with an `apiKey` scheme this request would carry the bare token and answer 401.
"""

from __future__ import annotations

from conftest import ADMIN_EMAIL
from js_clients import chromium_context

# Generous bounds for a browser on a 2-core machine; a hang fails instead of blocking.
WAIT_MS = 60_000


def test_swagger_ui_authorize_takes_a_bare_token_and_try_it_out_sends_it_as_bearer(server, admin_api, tmp_path):
    token = admin_api.token
    assert token and not token.lower().startswith("bearer")

    with chromium_context(tmp_path / "chromium-profile") as context:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{server}/api/v1/docs/")

        page.locator("button.authorize").first.click()
        dialog = page.locator(".dialog-ux")
        dialog.locator("input").first.fill(token)
        dialog.locator("button.authorize").click()
        dialog.locator("button.btn-done").click()

        operation = page.locator("#operations-users-getMe")
        operation.locator(".opblock-summary").click()
        operation.locator("button.try-out__btn").click()
        with page.expect_response(lambda r: r.url == f"{server}/api/v1/users/me") as answered:
            operation.locator("button.execute").click()
        response = answered.value
        sent = response.request.header_value("authorization")
        shown = operation.locator(".live-responses-table tr.response").first  # the answer Swagger UI displays
        shown_status = shown.locator(".response-col_status").inner_text()
        shown_body = shown.locator(".response-col_description pre").first.inner_text()

    assert sent == f"Bearer {token}"
    assert response.status == 200
    assert shown_status.strip() == "200", shown_status
    assert f'"email": "{ADMIN_EMAIL}"' in shown_body, shown_body
