"""Browser apps on another origin, in Debian's Chromium (driven by Playwright), through the
compose nginx in front of the replicas (issue 15's interoperability failures):

- Uppy's XHR upload with its default options (it sends the form fields `name`, `type` and
  `relativePath` beside the file, and retries any refusal) stores the file at the first try,
  and the answer's download_url is absolute, on the address the app called.
- The answers nginx gives itself carry the CORS headers Depot's would, so the app reads
  them instead of seeing status 0: a 413 for a body over the limit, a 400 for a URL too long
  for nginx, and, with no replica answering, the preflight (answered by nginx) and the 503.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid

from conftest import TOPOLOGY_MAX_UPLOAD
from js_clients import PAGE_ORIGIN, chromium_context, open_uppy_page
from processes import Nginx, free_port

MIB = 1024 * 1024
WAIT_MS = 60_000

# fetch() from the page, resolved to what the app can see of the answer (or of the failure).
FETCH = """async ({url, method, headers, size}) => {
  try {
    const body = size ? new Uint8Array(size) : undefined;
    const answer = await fetch(url, { method, headers, body });
    return {
      status: answer.status,
      body: await answer.text(),
      requestId: answer.headers.get("X-Request-ID"),
      retryAfter: answer.headers.get("Retry-After"),
    };
  } catch (error) {
    return { status: 0, failure: String(error) };
  }
}"""


def test_uppy_xhr_upload_with_its_default_options_stores_the_file_at_the_first_try(
    topology, topology_uploader, tmp_path
):
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(256 * 1024)
    source = tmp_path / f"holiday-{uuid.uuid4().hex[:6]}.png"
    source.write_bytes(data)
    posts_before = len([r for r in topology.proxy.access_records() if r["method"] == "POST"])

    with chromium_context(tmp_path / "chromium-profile") as context:
        page = open_uppy_page(context, page="uppy-xhr.html")
        assert page.evaluate("() => depot.state.versions") == {"core": "6.0.1", "xhr": "6.0.0"}  # the locked bundle
        page.evaluate(
            "options => depot.configure(options)",
            {"endpoint": f"{topology.proxy.url}/api/v1/uploads", "token": topology_uploader.token},
        )
        page.set_input_files("#file", str(source))
        page.evaluate("() => depot.start()")
        page.wait_for_function("() => depot.state.success !== null || depot.state.error !== null", timeout=WAIT_MS)
        state = page.evaluate("() => depot.state")

    assert state["error"] is None, json.dumps(state)
    created = state["success"]["body"]
    assert state["success"]["status"] == 201 and created["filename"] == source.name, state
    # Its download_url is absolute, on the proxy's address: the app can use it as it is.
    assert created["download_url"] == f"{topology.proxy.url}/api/v1/uploads/{created['id']}/content"
    stored = topology_uploader.http.get(created["download_url"], timeout=30)
    assert hashlib.sha256(stored.content).hexdigest() == hashlib.sha256(data).hexdigest()
    # One request: nothing was refused and retried.
    posts = [r for r in topology.proxy.access_records() if r["method"] == "POST"][posts_before:]
    assert [(r["path"], r["status"]) for r in posts] == [("/api/v1/uploads", 201)], posts


def test_a_browser_app_reads_the_413_and_400_nginx_gives_itself(topology, topology_uploader, tmp_path):
    with chromium_context(tmp_path / "chromium-profile") as context:
        page = open_uppy_page(context, page="uppy-xhr.html")
        too_large = page.evaluate(
            FETCH,
            {
                "url": f"{topology.proxy.url}/api/v1/uploads",
                "method": "POST",
                "headers": {"Authorization": f"Bearer {topology_uploader.token}", "X-Request-ID": "browser-413"},
                "size": TOPOLOGY_MAX_UPLOAD + 2 * MIB,
            },
        )
        too_long = page.evaluate(
            FETCH, {"url": f"{topology.proxy.url}/api/v1/uploads?q={'x' * 20000}", "method": "GET", "headers": {}}
        )

    assert too_large["status"] == 413, too_large
    assert json.loads(too_large["body"])["message"] == "The request body is larger than this server accepts."
    assert too_large["requestId"] == "browser-413"  # an exposed header, readable too
    assert too_long["status"] == 400, too_long
    assert json.loads(too_long["body"])["error"] == "bad_request"


def test_with_no_replica_answering_nginx_answers_the_preflight_and_the_app_reads_the_503(tmp_path):
    proxy = Nginx([f"127.0.0.1:{free_port()}"], TOPOLOGY_MAX_UPLOAD, tmp_path, cors_origins=PAGE_ORIGIN)
    try:
        with chromium_context(tmp_path / "chromium-profile") as context:
            page = open_uppy_page(context, page="uppy-xhr.html")
            answer = page.evaluate(
                FETCH,
                {"url": f"{proxy.url}/api/v1/users/me", "method": "GET", "headers": {"Authorization": "Bearer x"}},
            )
        records = proxy.access_records()
    finally:
        proxy.stop()

    assert answer["status"] == 503, answer
    assert json.loads(answer["body"])["error"] == "unavailable"
    assert answer["retryAfter"] == "5"
    # The browser's preflight (Authorization is not a safelisted header) was answered by nginx.
    calls = [(r["method"], r["path"], r["status"]) for r in records]
    assert calls[-2:] == [("OPTIONS", "/api/v1/users/me", 204), ("GET", "/api/v1/users/me", 503)], calls
