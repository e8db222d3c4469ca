"""The real JavaScript tus clients the integration tests drive, and how they are started.

- tus-js-client runs under Node (integration-tests/js/tus_node_upload.mjs), one process per
  attempt, and reports what it did as JSON lines: every request and response, its progress,
  and how it ended. A second process resumes what a first one started, as a restarted
  program would, from the URL tus-js-client itself stored.
- Uppy (@uppy/core with @uppy/tus, from the `uppy` package's prebuilt bundle) runs in
  Debian's Chromium driven by Playwright: `chromium_context` launches the machine's
  /usr/bin/chromium (never a downloaded browser) on a fresh profile. test_swagger_ui.py
  uses it too, for Depot's own Swagger UI page, with no npm package.

The web console (app/console, built into app/console/dist by ./run_tests.sh) opens in the
same Chromium, served from another origin than the API (`open_console`).

Both clients come from integration-tests/js/package-lock.json, which ./run_tests.sh installs with
`npm ci`; when they are missing the tests fail and say so, never skip. So do the OpenAPI tools
(`npm_tool`): redocly, openapi-typescript and tsc.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from processes import CONSOLE_DIST, ROOT

JS_DIR = ROOT / "integration-tests" / "js"
NODE_UPLOAD_SCRIPT = JS_DIR / "tus_node_upload.mjs"
UPPY_PAGE = JS_DIR / "uppy_page.html"
UPPY_XHR_PAGE = JS_DIR / "uppy_xhr_page.html"
UPPY_BUNDLE = JS_DIR / "node_modules" / "uppy" / "dist" / "uppy.min.js"
# Where the Uppy page is served from: the browser origin Depot's CORS_ORIGINS must allow.
PAGE_ORIGIN = "https://spa.example.com"
CHROMIUM = Path("/usr/bin/chromium")
# What the machine's Chromium needs to start headless as root with no network but loopback:
# without the background-networking flags it keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # In a container /dev/shm may be 64 MiB (the forge workflow's test job): use /tmp.
    "--disable-dev-shm-usage",
]


def require_js_clients() -> None:
    """Fail (never skip) with the way to install them when the npm packages are missing."""
    if not (JS_DIR / "node_modules" / "tus-js-client" / "package.json").exists() or not UPPY_BUNDLE.exists():
        pytest.fail(
            "The JavaScript tus clients are not installed: run `npm ci` in integration-tests/js "
            "(./run_tests.sh does it).",
            pytrace=False,
        )


def node() -> str:
    found = shutil.which("node")
    if not found:
        pytest.fail("Node.js is not installed: tus-js-client runs under it (Debian's nodejs package).", pytrace=False)
    return found


def npm_tool(name: str) -> str:
    """The path of the command `name` of integration-tests/js's pinned npm packages (its
    node_modules/.bin), failing (never skipping) with the way to install it when it is missing."""
    node()
    path = JS_DIR / "node_modules" / ".bin" / name
    if not path.exists():
        pytest.fail(
            f"{name} is not installed: run `npm ci` in integration-tests/js (./run_tests.sh does it).", pytrace=False
        )
    return str(path)


@dataclass
class NodeRun:
    """What one tus-js-client process did: its JSON-line events, exit code and stderr."""

    returncode: int
    events: list[dict] = field(default_factory=list)
    stderr: str = ""

    def of(self, kind: str) -> list[dict]:
        return [event for event in self.events if event["event"] == kind]

    def last(self, kind: str) -> dict:
        found = self.of(kind)
        assert found, f"tus-js-client reported no {kind!r} event:\n{self.describe()}"
        return found[-1]

    def describe(self) -> str:
        lines = [json.dumps(event) for event in self.events]
        return "\n".join([*lines, f"exit {self.returncode}", self.stderr[-3000:]])


def run_tus_js_client(options: dict, timeout: float = 300) -> NodeRun:
    """Run tus_node_upload.mjs with `options` (see its header) and collect what it reported."""
    require_js_clients()
    done = subprocess.run(
        [node(), str(NODE_UPLOAD_SCRIPT), json.dumps(options)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return NodeRun(done.returncode, events, done.stderr)


@contextlib.contextmanager
def chromium_context(profile_dir: Path) -> Iterator[object]:
    """A Playwright browser context in Debian's Chromium, headless, on the fresh profile
    `profile_dir`; closed (and Playwright stopped) afterwards. It needs no npm package."""
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's Chromium is not installed (/usr/bin/chromium): `apt-get install chromium` "
            "(./run_tests.sh does it when run as root).",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield context
        finally:
            context.close()


def open_uppy_page(context, origin: str = PAGE_ORIGIN, page: str = "uppy.html"):
    """A new tab on `page` at `origin`: uppy.html (uppy_page.html, Uppy with tus) or
    uppy-xhr.html (uppy_xhr_page.html, Uppy's XHR upload with its default options), served by
    Playwright from integration-tests/js with the `uppy` bundle beside it, allowed to reach
    Depot on loopback.

    The page is on another origin than the API, as a single-page app using Depot is. Chromium
    asks the user before a page reaches a loopback address (Local Network Access): the test
    grants that permission as a user would, since here the API is on loopback rather than on
    the public address it would have in production."""
    require_js_clients()
    files = {
        "/uppy.html": (UPPY_PAGE, "text/html"),
        "/uppy-xhr.html": (UPPY_XHR_PAGE, "text/html"),
        "/uppy.min.js": (UPPY_BUNDLE, "text/javascript"),
    }

    def serve(route) -> None:
        found = files.get(urlsplit(route.request.url).path)
        if found is None:
            route.fulfill(status=404, body="not found")
        else:
            route.fulfill(status=200, content_type=found[1], body=found[0].read_bytes())

    context.grant_permissions(["local-network-access"], origin=origin)
    tab = context.new_page()
    tab.route(f"{origin}/**", serve)
    tab.goto(f"{origin}/{page}")
    # Loaded: stop routing, so the page's requests to Depot go out as the browser sends them.
    # While any route is set, Playwright answers every CORS preflight itself, allowing all.
    tab.unroute_all()
    return tab


def require_console() -> None:
    """Fail (never skip) with the way to build it when the web console is not built."""
    if not (CONSOLE_DIST / "index.html").exists():
        pytest.fail("The web console is not built: run app/console/build.sh (./run_tests.sh does it).", pytrace=False)


def open_console(context, api_url: str, origin: str = PAGE_ORIGIN):
    """A new tab on the web console (app/console/dist) served from `origin`, another origin
    than the API, as a team hosting it next to their own apps would: the console's files with
    its own Content-Security-Policy (naming the API's origin for its requests) and a
    config.json naming the API at `api_url`. Served by Playwright until the console has
    started, then the routing stops, so every request to Depot goes out as the browser sends
    it, preflights included (while a route is set, Playwright answers them itself)."""
    from app.console import console_csp

    require_console()
    api_origin = "{0.scheme}://{0.netloc}".format(urlsplit(api_url))
    headers = {"Content-Security-Policy": console_csp(api_origin), "X-Content-Type-Options": "nosniff"}
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json"}

    def serve(route) -> None:
        path = urlsplit(route.request.url).path.removeprefix("/console/") or "index.html"
        if path == "config.json":
            route.fulfill(status=200, headers=headers, content_type=types[".json"], body=json.dumps({"api": api_url}))
            return
        found = CONSOLE_DIST / path
        if path.startswith(".") or "/" in path or not found.is_file():
            route.fulfill(status=404, body="not found")
        else:
            route.fulfill(status=200, headers=headers, content_type=types.get(found.suffix), body=found.read_bytes())

    context.grant_permissions(["local-network-access"], origin=origin)
    tab = context.new_page()
    tab.route(f"{origin}/**", serve)
    tab.goto(f"{origin}/console/")
    tab.wait_for_function("() => window.depotConsole && window.depotConsole.ready")
    tab.unroute_all()
    return tab
