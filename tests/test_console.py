"""The web console's files under /console/ (app/console): its page with its own
Content-Security-Policy, JSON 404s for anything else, and a page that runs no inline code
(the policy would block it) and builds its DOM from text, never from HTML strings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import app.console as console
from app.console import CONSOLE_CSP, console_csp

SOURCES = Path(console.__file__).resolve().parent / "src"


@pytest.fixture
def dist(tmp_path, monkeypatch) -> Path:
    """A built console: what app/console/build.sh writes, in a temporary folder."""
    folder = tmp_path / "dist"
    folder.mkdir()
    (folder / "index.html").write_text("<!doctype html><title>Depot console</title>")
    (folder / "console.js").write_text("export {};")
    (folder / "config.json").write_text('{"api": ""}')
    monkeypatch.setattr(console, "DIST", folder)
    return folder


def test_the_console_page_is_served_with_its_own_content_security_policy(testapp, dist):
    page = testapp.get("/console/", status=200)

    assert page.content_type == "text/html" and "Depot console" in page.text
    assert page.headers["Content-Security-Policy"] == CONSOLE_CSP
    assert "script-src 'self';" in CONSOLE_CSP and "connect-src 'self';" in CONSOLE_CSP
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-cache"  # revalidated: a new build shows at once
    script = testapp.get("/console/console.js", status=200)
    assert script.content_type in ("text/javascript", "application/javascript")
    assert testapp.get("/console/config.json", status=200).json == {"api": ""}


def test_the_console_without_its_slash_redirects_to_it(testapp, dist):
    assert testapp.get("/console", status=308).headers["Location"].endswith("/console/")


@pytest.mark.parametrize("path", ["/console/missing.js", "/console/../app/config.py", "/console/%2e%2e/dist"])
def test_anything_else_under_console_is_a_json_404(testapp, dist, path):
    answer = testapp.get(path, status=404)

    assert answer.json["error"] == "not_found"


def test_an_unbuilt_console_says_how_to_build_it(testapp, tmp_path, monkeypatch):
    monkeypatch.setattr(console, "DIST", tmp_path / "never-built")

    answer = testapp.get("/console/", status=404)

    assert answer.json["message"] == (
        "The console is not built: run `npm ci && npm run build` in app/console (./run_dev.sh does it)."
    )


def test_a_console_on_another_origin_may_call_the_api_there_and_nothing_else():
    policy = console_csp("https://api.example.com")

    assert "connect-src 'self' https://api.example.com;" in policy
    assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy


def test_the_console_page_runs_no_inline_code():
    html = (SOURCES / "index.html").read_text()

    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="./' in attributes and not body.strip() for attributes, body in scripts)
    assert not re.search(r"\son\w+=", html)  # no inline handlers
    assert not re.search(r"\sstyle=", html) and "<style" not in html


def test_the_console_builds_its_page_from_text_never_from_html_strings():
    for source in SOURCES.glob("*.js"):
        code = source.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in code, (source.name, sink)
