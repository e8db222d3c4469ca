"""The web console (app/console) in Debian's Chromium, driven by Playwright, against Depot
deployed as compose deploys it (nginx's template in front of gunicorn):

- Through the scale-out topology (two replicas, PostgreSQL, S3), with the console served from
  another origin than the API, every flow a user has: log in; upload with Uppy's Dashboard
  through tus, paused and resumed; browse, search and filter with cursor pages; preview an
  image; download; edit description, visibility and tags; create and revoke a share link;
  delete; create an API token whose secret is shown once, and revoke it; as an admin, create,
  change and delete a user; log out. The token lives in sessionStorage, never in a cookie.
- Served by that nginx itself under /console/ (same origin, as compose serves it): a tab
  reloaded mid-upload keeps its session, and the same file chosen again resumes the upload.
- Through an nginx serving the console itself under /console/ (as the compose proxy does),
  in front of a Depot with a quota and a proxy body limit below Depot's own: uploads refused
  with 415 and 422 by Depot, 413 by Depot (the quota) and 413 by nginx each show the message
  of the JSON answer, not a status code.

No test ends with an error in the page's console. Screenshots of each view are saved in
test-artifacts/console/ (the forge workflow keeps them).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import struct
import time
import uuid
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, USER_PASSWORD, Api, depot_env, new_uploader, running_depot
from js_clients import chromium_context, open_console, require_console
from processes import ROOT, Nginx, temporary_database

from app.console import CONSOLE_CSP

MIB = 1024 * 1024
WAIT_MS = 60_000
SHOTS = ROOT / "test-artifacts" / "console"
# Uploaded paused and resumed: slowed to RATE in Chromium, so the pause comes midway.
# Past the 32 MiB the console downloads in memory: it downloads this one through a share link.
LARGE = 40 * MIB
RATE = 2 * MIB
THROTTLED = {"offline": False, "latency": 0, "downloadThroughput": -1}
# Whether the page would ask before being left (its beforeunload handler cancels the event).
LEAVING_IS_QUESTIONED = """() => {
  const event = new Event("beforeunload", { cancelable: true });
  window.dispatchEvent(event);
  return event.defaultPrevented;
}"""


def png(width: int = 24, height: int = 16) -> bytes:
    """A real PNG image (an orange rectangle), which a browser decodes for the preview."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x80\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def durable_offset(api: Api, tus_path: str) -> int:
    """The offset of a resumable upload whose PATCH the browser has just cut: what arrived is
    kept once Depot has seen the cut (within a few seconds)."""
    deadline = time.monotonic() + 15
    while True:
        offset = int(api.head(tus_path, headers={"Tus-Resumable": "1.0.0"}).headers["Upload-Offset"])
        if offset or time.monotonic() > deadline:
            return offset
        time.sleep(0.2)


class Console:
    """The console's tab, with the page's console errors and screenshot helper."""

    def __init__(self, page, name: str) -> None:
        self.page = page
        self.name = name
        self.errors: list[str] = []
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        SHOTS.mkdir(parents=True, exist_ok=True)

    def shot(self, step: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{self.name}-{step}.png"), full_page=True)

    def log_in(self, email: str, password: str) -> None:
        self.page.fill("input[name=email]", email)
        self.page.fill("input[name=password]", password)
        self.page.click("form.login button[type=submit]")
        self.page.wait_for_selector(f"#who:has-text('{email}')", timeout=WAIT_MS)

    def go(self, view: str, ready: str) -> None:
        self.page.click(f"nav a[data-view={view}]")
        self.page.wait_for_selector(ready, timeout=WAIT_MS)

    def add_files(self, *paths: Path) -> None:
        self.page.set_input_files(".uppy-Dashboard-input >> nth=0", [str(p) for p in paths])

    def start_upload(self) -> None:
        self.page.click(".uppy-StatusBar-actionBtn--upload")

    def rows(self) -> list[str]:
        """The file names listed, in order."""
        return self.page.eval_on_selector_all(
            "table.files tr[data-id] td.name", "cells => cells.map(c => c.firstChild.textContent)"
        )

    def row(self, filename: str):
        return self.page.locator("table.files tr[data-id]", has=self.page.locator(f"td.name:text-is('{filename}')"))

    def search(self, **fields: str) -> None:
        for name, value in fields.items():
            if name == "per_page":
                self.page.select_option("form.filters select[name=per_page]", value)
            else:
                self.page.fill(f"form.filters input[name={name}]", value)
        with self.page.expect_response(lambda r: "/api/v1/uploads?" in r.url):
            self.page.click("form.filters button[type=submit]")
        self.page.wait_for_timeout(100)  # the answer rendered


@pytest.fixture
def console_admin(topology) -> tuple[str, Api]:
    """A fresh admin (who may also upload) of the topology: its email, and an API client."""
    admin = Api(topology.proxy.url).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    email = f"console-{uuid.uuid4().hex[:8]}@example.com"
    created = admin.post(
        "/api/v1/users",
        json={"email": email, "password": USER_PASSWORD, "name": "Console", "roles": ["admin", "uploader"]},
    )
    assert created.status_code == 201, created.text
    return email, Api(topology.proxy.url).login(email, USER_PASSWORD)


def test_every_flow_of_the_console_on_another_origin_through_the_topology(
    topology, console_admin, topology_uploader, tmp_path
):
    email, api = console_admin
    tag = f"console-{uuid.uuid4().hex[:6]}"
    # Another user's public file with the same tag: listed, with its owner, unless "Only mine".
    theirs = topology_uploader.post(
        "/api/v1/uploads", files={"file": ("theirs.txt", b"theirs")}, data={"tags": tag, "visibility": "public"}
    )
    assert theirs.status_code == 201, theirs.text
    their_email = topology_uploader.get("/api/v1/users/me").json()["email"]
    photo, notes, large = tmp_path / "photo.png", tmp_path / "notes.txt", tmp_path / "holiday.png"
    photo.write_bytes(png())
    notes.write_bytes(b"notes from the console\n" * 100)
    large.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(LARGE - 8))
    # Enough uploads with one tag for two pages of 10.
    page_tag = f"paged-{uuid.uuid4().hex[:6]}"
    for number in range(11):
        made = api.post("/api/v1/uploads", files={"file": (f"page-{number:02}.txt", b"x")}, data={"tags": page_tag})
        assert made.status_code == 201, made.text

    with chromium_context(tmp_path / "chromium-profile") as context:
        ui = Console(open_console(context, topology.proxy.url), "cross-origin")
        page = ui.page
        assert page.evaluate("() => window.depotConsole.api") == topology.proxy.url
        ui.shot("1-login")
        ui.log_in(email, USER_PASSWORD)
        token = page.evaluate("() => sessionStorage.getItem('depot.console.token')")
        assert token and api.at(topology.proxy.url).get("/api/v1/users/me").status_code == 200
        assert page.evaluate("() => document.cookie") == ""
        assert page.evaluate("() => JSON.stringify(localStorage)").find(token) == -1

        # Upload two files with the settings above the Dashboard, through tus.
        ui.go("upload", ".uppy-Dashboard")
        page.wait_for_selector("#upload-limits:has-text('Up to 64 MB a file')")
        page.fill("form.upload-settings input[name=description]", "from the console")
        page.fill("form.upload-settings input[name=tags]", tag)
        ui.add_files(photo, notes)
        # A file's own metadata, set in the Dashboard, wins over the settings above it.
        page.locator(".uppy-Dashboard-Item", has_text="notes.txt").locator(".uppy-Dashboard-Item-action--edit").click()
        page.fill("#uppy-Dashboard-FileCard-input-description", "my own notes")
        page.select_option(".uppy-Dashboard-FileCard select", "public")
        page.click("button:text('Save changes')")
        ui.shot("2-upload-chosen")
        ui.start_upload()
        page.wait_for_function("() => document.querySelectorAll('#upload-stored li').length === 2", timeout=WAIT_MS)
        ui.shot("3-uploaded")

        # A large one, slowed down, paused midway and resumed.
        posts_before = [r for r in topology.proxy.access_records() if r["method"] == "POST"]
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {**THROTTLED, "uploadThroughput": RATE})
        page.click(".uppy-StatusBar-actionBtn--done")  # clears the finished batch
        ui.add_files(large)
        ui.start_upload()
        page.wait_for_function(
            "() => /Uploading: [1-9][0-9]?%/.test(document.querySelector('.uppy-StatusBar').innerText)", timeout=WAIT_MS
        )
        page.click(".uppy-StatusBar button[aria-label='Pause']")
        page.wait_for_selector(".uppy-StatusBar button[aria-label='Resume']")
        ui.shot("4-paused")
        records = topology.proxy.access_records()
        tus_path = next(r["path"] for r in reversed(records) if r["method"] == "PATCH")
        assert 0 < durable_offset(api, tus_path) < LARGE
        page.click(".uppy-StatusBar button[aria-label='Resume']")
        # Other views meanwhile: the upload goes on (it is not cancelled, nor ended on the server).
        page.wait_for_selector(".uppy-StatusBar button[aria-label='Pause']")
        ui.go("files", "table.files")
        ui.go("upload", ".uppy-StatusBar button[aria-label='Pause']")
        cdp.send("Network.emulateNetworkConditions", {**THROTTLED, "uploadThroughput": -1})
        page.wait_for_function("() => document.querySelectorAll('#upload-stored li').length === 3", timeout=WAIT_MS)
        after = topology.proxy.access_records()[len(records) :]
        assert "DELETE" not in [r["method"] for r in after], after
        # Resumed where it stopped: asked the offset, went on; the upload was not created again.
        assert ("HEAD", tus_path) in [(r["method"], r["path"]) for r in after], after
        posts = [r for r in topology.proxy.access_records() if r["method"] == "POST"][len(posts_before) :]
        assert [r["path"] for r in posts] == ["/api/v1/tus"], posts

        stored = {u["filename"]: u for u in api.get("/api/v1/uploads", params={"tag": tag}).json()["items"]}
        assert set(stored) == {"photo.png", "notes.txt", "holiday.png", "theirs.txt"}
        assert (stored["photo.png"]["description"], stored["photo.png"]["visibility"]) == (
            "from the console",
            "private",
        )
        assert (stored["notes.txt"]["description"], stored["notes.txt"]["visibility"]) == ("my own notes", "public")
        assert stored["notes.txt"]["tags"] == stored["holiday.png"]["tags"] == [tag]
        for source in (photo, notes, large):
            body = api.get(stored[source.name]["download_url"]).content
            assert hashlib.sha256(body).hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest(), source.name

        # Browse: filter by tag, search, page through a tag's 11 uploads ten at a time.
        ui.go("files", "table.files")
        ui.search(tag=tag)
        assert sorted(ui.rows()) == ["holiday.png", "notes.txt", "photo.png", "theirs.txt"]
        owner = ui.row("theirs.txt").locator("td.owner")
        page.wait_for_function(
            "([cell, email]) => cell.textContent === email", arg=[owner.element_handle(), their_email]
        )
        assert ui.row("photo.png").locator("td.owner").inner_text() == "you"
        with page.expect_response(lambda r: "owner=" in r.url):
            page.check("form.filters input[name=mine]")  # applies at once
        page.wait_for_timeout(100)
        assert sorted(ui.rows()) == ["holiday.png", "notes.txt", "photo.png"]
        ui.search(content_type="image/png")
        assert sorted(ui.rows()) == ["holiday.png", "photo.png"]
        ui.search(content_type="")
        preview = ui.row("photo.png").locator("td.thumb img")
        preview.wait_for(timeout=WAIT_MS)
        assert preview.get_attribute("src").startswith("blob:")
        page.wait_for_function("img => img.complete && img.naturalWidth === 24", arg=preview.element_handle())
        ui.shot("5-files")
        ui.search(q="notes")
        assert ui.rows() == ["notes.txt"]
        ui.search(q="", tag=page_tag, per_page="10")
        first_page = ui.rows()
        assert first_page == [f"page-{n:02}.txt" for n in range(10, 0, -1)]  # newest first
        with page.expect_response(lambda r: "cursor=" in r.url):
            page.click("button:text('Older →')")
        page.wait_for_selector(".pager span:text('Page 2')")
        assert ui.rows() == ["page-00.txt"]
        page.fill("form.filters input[name=tag]", "typed-but-not-searched")
        page.click("button:text('← Newer')")  # pages turn within the last search's filters
        page.wait_for_selector(".pager span:text('Page 1')")
        assert ui.rows() == first_page

        # Download, edit, share and revoke, delete.
        ui.search(tag=tag, per_page="20")
        with page.expect_download() as download:
            ui.row("notes.txt").locator("button:text('Download')").click()
        assert Path(download.value.path()).read_bytes() == notes.read_bytes()
        assert download.value.suggested_filename == "notes.txt"
        with page.expect_download(timeout=WAIT_MS) as download:
            ui.row("holiday.png").locator("button:text('Download')").click()
        assert download.value.suggested_filename == "holiday.png"
        assert (
            hashlib.sha256(Path(download.value.path()).read_bytes()).digest()
            == hashlib.sha256(large.read_bytes()).digest()
        )

        ui.row("photo.png").locator("button:text('Edit')").click()
        editor = page.locator("form.editor")
        editor.locator("textarea[name=description]").fill("edited in the console")
        editor.locator("select[name=visibility]").select_option("public")
        editor.locator("input[name=tags]").fill(f"{tag}, edited")
        editor.locator("button[type=submit]").click()
        page.wait_for_selector("#notice:has-text('Saved photo.png.')")
        edited = api.get(f"/api/v1/uploads/{stored['photo.png']['id']}").json()
        assert (edited["description"], edited["visibility"], edited["tags"]) == (
            "edited in the console",
            "public",
            [tag, "edited"],
        )

        ui.row("notes.txt").locator("button:text('Share')").click()
        page.locator("form.share button[type=submit]").click()
        link = page.locator("input.share-url")
        link.wait_for()
        url = link.input_value()
        ui.shot("6-share")
        assert url.startswith(f"{topology.proxy.url}/api/v1/links/")
        assert requests.get(url, timeout=30).content == notes.read_bytes()  # no token needed
        page.locator("form.share button:text('Revoke all links')").click()
        page.wait_for_selector("#notice:has-text('Every share link of notes.txt is revoked.')")
        assert requests.get(url, timeout=30).status_code in (404, 410)

        delete = ui.row("notes.txt").locator("button:text('Delete')")
        delete.click()
        delete.click()  # "Really delete?"
        page.wait_for_selector("#notice:has-text('Deleted notes.txt.')")
        assert "notes.txt" not in ui.rows()
        assert api.get(f"/api/v1/uploads/{stored['notes.txt']['id']}").status_code == 404

        # An API token with only the uploader role: its secret shown once.
        ui.go("tokens", "table.tokens")
        form = page.locator("form[aria-label='New API token']")
        form.locator("input[name=name]").fill("backup script")
        form.locator("input[name=roles][value=admin]").uncheck()
        form.locator("button[type=submit]").click()
        secret_field = page.locator("#token-secret input.token-value")
        secret_field.wait_for()
        secret = secret_field.input_value()
        ui.shot("7-token-secret")
        script = Api(topology.proxy.url, secret)
        assert script.get("/api/v1/users/me").json()["email"] == email
        assert script.get("/api/v1/users").status_code == 403  # uploader only
        row = page.locator("table.tokens tr[data-id]", has_text="backup script")
        assert row.locator("td").nth(1).inner_text() == "uploader"
        ui.go("files", "table.files")
        ui.go("tokens", "table.tokens tr[data-id]")
        assert secret not in page.content()  # shown once, kept nowhere
        revoke = page.locator("table.tokens tr[data-id]", has_text="backup script").locator("button.danger")
        revoke.click()
        assert script.get("/api/v1/users/me").status_code == 200  # one click only arms it
        revoke.click()  # "Really revoke?"
        page.wait_for_selector("#notice:has-text('Revoked backup script.')")
        assert script.get("/api/v1/users/me").status_code == 401

        # Users: create one, make it an uploader and deactivate it, then delete it.
        ui.go("users", "table.users tr[data-email]")
        person = f"person-{uuid.uuid4().hex[:6]}@example.com"
        new_user = page.locator("form[aria-label='New user']")
        new_user.locator("input[name=email]").fill(person)
        new_user.locator("input[name=name]").fill("Person")
        new_user.locator("input[name=password]").fill(USER_PASSWORD)
        new_user.locator("button[type=submit]").click()
        page.wait_for_selector(f"#notice:has-text('Created {person}.')")
        made = next(
            u for u in api.get("/api/v1/users", params={"per_page": 100}).json()["items"] if u["email"] == person
        )
        assert made["roles"] == ["user"] and made["active"] is True
        # Newest accounts come last: find its row on whichever page it is.
        while not page.locator(f"tr[data-email='{person}']").count():
            page.click("button:text('Next →')")
            page.wait_for_timeout(200)
        change = page.locator(f"tr[data-email='{person}'] form.user-change")
        change.locator("input[name=roles][value=user]").uncheck()
        change.locator("input[name=roles][value=uploader]").check()
        change.locator("input[name=active]").uncheck()
        ui.shot("8-users")
        change.locator("button[type=submit]").click()
        page.wait_for_selector(f"#notice:has-text('Saved {person}.')")
        changed = api.get(f"/api/v1/users/{made['id']}").json()
        assert (changed["roles"], changed["active"]) == (["uploader"], False)
        while not page.locator(f"tr[data-email='{person}']").count():
            page.click("button:text('Next →')")
            page.wait_for_timeout(200)
        remove = page.locator(f"tr[data-email='{person}'] button:text('Delete')")
        remove.click()
        page.locator(f"tr[data-email='{person}'] button:text('Really delete?')").click()
        page.wait_for_selector(f"#notice:has-text('Deleted {person}.')")
        assert api.get(f"/api/v1/users/{made['id']}").status_code == 404

        # Log out: the token stops working and the tab forgets it.
        page.click("#logout")
        page.wait_for_selector("form.login p:has-text('You are logged out.')")
        assert page.evaluate("() => sessionStorage.getItem('depot.console.token')") is None
        assert page.locator("#nav").is_hidden() and page.locator("#alert").is_hidden()
        assert page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('tus::'))") == []
        assert Api(topology.proxy.url, token).get("/api/v1/users/me").status_code == 401
        ui.shot("9-logged-out")

    assert ui.errors == []


def test_the_console_served_by_the_proxy_resumes_an_upload_after_a_reload(topology, console_admin, tmp_path):
    """Same origin, as compose serves it: the tab reloaded mid-upload keeps its session
    (sessionStorage), and the same file chosen again goes on from where the upload stopped."""
    email, api = console_admin
    large = tmp_path / "again.png"
    large.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(LARGE - 8))

    with chromium_context(tmp_path / "chromium-profile") as context:
        page = context.new_page()
        ui = Console(page, "same-origin-reload")
        page.goto(f"{topology.proxy.url}/console/")
        page.wait_for_function("() => window.depotConsole && window.depotConsole.ready")
        assert page.evaluate("() => window.depotConsole.api") == topology.proxy.url
        ui.log_in(email, USER_PASSWORD)
        ui.go("upload", ".uppy-Dashboard")
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {**THROTTLED, "uploadThroughput": RATE})
        ui.add_files(large)
        ui.start_upload()
        page.wait_for_function(
            "() => /Uploading: [1-9][0-9]?%/.test(document.querySelector('.uppy-StatusBar').innerText)", timeout=WAIT_MS
        )
        # Leaving now would stop an upload that is sending: the page asks first.
        assert page.evaluate(LEAVING_IS_QUESTIONED) is True
        page.reload()
        cdp.send("Network.emulateNetworkConditions", {**THROTTLED, "uploadThroughput": -1})
        page.wait_for_function("() => window.depotConsole && window.depotConsole.ready")
        page.wait_for_selector(f"#who:has-text('{email}')")  # still logged in
        records = topology.proxy.access_records()
        tus_path = next(r["path"] for r in reversed(records) if r["method"] == "PATCH")
        assert 0 < durable_offset(api, tus_path) < LARGE

        ui.go("upload", ".uppy-Dashboard")
        ui.add_files(large)
        ui.start_upload()
        page.wait_for_selector("#upload-stored li", timeout=WAIT_MS)
        assert page.evaluate(LEAVING_IS_QUESTIONED) is False  # nothing sending any more
        after = topology.proxy.access_records()[len(records) :]

        # Logging out mid-upload ends that upload on the server, while the token still works.
        cdp.send("Network.emulateNetworkConditions", {**THROTTLED, "uploadThroughput": RATE})
        page.click(".uppy-StatusBar-actionBtn--done")
        later = large.with_name("later.png")
        later.write_bytes(large.read_bytes())
        ui.add_files(later)
        ui.start_upload()
        page.wait_for_function(
            "() => /Uploading: [1-9][0-9]?%/.test(document.querySelector('.uppy-StatusBar').innerText)", timeout=WAIT_MS
        )
        before_logout = len(topology.proxy.access_records())
        page.click("#logout")
        page.wait_for_selector("form.login p:has-text('You are logged out.')")
        ended = topology.proxy.access_records()[before_logout:]

    calls = [(r["method"], r["path"]) for r in after if r["path"].startswith("/api/v1/tus")]
    assert ("HEAD", tus_path) in calls and ("POST", "/api/v1/tus") not in calls, calls
    later_path = next(r["path"] for r in reversed(topology.proxy.access_records()) if r["method"] == "PATCH")
    assert ("DELETE", later_path, 204) in [(r["method"], r["path"], r["status"]) for r in ended], ended
    assert api.head(later_path, headers={"Tus-Resumable": "1.0.0"}).status_code in (404, 410)
    stored = api.get("/api/v1/uploads", params={"owner": api.get("/api/v1/users/me").json()["id"]}).json()["items"]
    assert [u["filename"] for u in stored] == ["again.png"]
    body = api.get(stored[0]["download_url"]).content
    assert hashlib.sha256(body).digest() == hashlib.sha256(large.read_bytes()).digest()
    # Only the browser's own note of the DELETE that waited for the cut PATCH (423, retried).
    assert set(ui.errors) <= {"Failed to load resource: the server responded with a status of 423 (LOCKED)"}


@pytest.fixture
def quota_deployment(tmp_path):
    """Depot with a 4 MiB quota and an 8 MiB upload limit behind an nginx (the compose template)
    whose body limit is lower (2 MiB), serving the console itself: that nginx."""
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(temporary_database())
        env = depot_env(
            database_url,
            tmp_path / "data",
            MAX_UPLOAD_BYTES=str(8 * MIB),
            USER_QUOTA_BYTES=str(4 * MIB),
            AUTH_RATE_LIMIT="100 per minute",
            PROXY_COUNT="1",
        )
        app_url = stack.enter_context(running_depot(env, "quota-depot", tmp_path))
        proxy = Nginx([urlsplit(app_url).netloc], 1 * MIB, tmp_path)
        stack.callback(proxy.stop)
        yield proxy


def test_refused_uploads_show_the_message_of_depot_or_of_its_proxy(quota_deployment, tmp_path):
    require_console()
    proxy = quota_deployment
    api = new_uploader(Api(proxy.url).login(ADMIN_EMAIL, ADMIN_PASSWORD))
    email = api.get("/api/v1/users/me").json()["email"]
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is text, not an image\n")
    tagged = tmp_path / "tagged.txt"
    tagged.write_bytes(b"fine text\n")
    large = tmp_path / "large.txt"  # under Depot's limit and the quota, over the proxy's
    large.write_bytes(b"a" * (3 * MIB))
    late = tmp_path / "late.txt"
    late.write_bytes(b"b" * (3 * MIB // 2))

    with chromium_context(tmp_path / "chromium-profile") as context:
        page = context.new_page()
        ui = Console(page, "same-origin")
        answer = page.goto(f"{proxy.url}/console")  # nginx redirects to /console/
        assert answer.url == f"{proxy.url}/console/"
        assert answer.headers["content-security-policy"] == CONSOLE_CSP
        missing = requests.get(f"{proxy.url}/console/missing.js", timeout=10)
        assert (missing.status_code, missing.headers["Content-Type"]) == (404, "application/json")
        assert missing.json()["error"] == "not_found"
        page.wait_for_function("() => window.depotConsole && window.depotConsole.ready")
        ui.log_in(email, USER_PASSWORD)
        # An uploader has no Users page: asked for it, the console says why and shows Files.
        assert page.locator("nav a[data-view=users]").is_hidden()
        page.evaluate("() => { location.hash = '#/users'; }")
        page.wait_for_selector("#alert:has-text('That page needs the admin role.')")
        assert page.evaluate("() => location.hash") == "#/files"
        ui.go("upload", ".uppy-Dashboard")
        page.wait_for_selector("#upload-limits:has-text('4 MB left of your 4 MB quota')")

        def refusal(path: Path, count: int) -> str:
            ui.add_files(path)
            ui.start_upload()
            page.wait_for_function(
                f"() => document.querySelectorAll('#upload-refusals li').length === {count}", timeout=WAIT_MS
            )
            text = page.locator("#upload-refusals li").nth(count - 1).inner_text()
            assert page.locator("#alert").inner_text() == text
            page.click(".uppy-Dashboard-Item-action--remove")  # clear it for the next
            return text

        # The policy's limits, before anything is sent: Uppy refuses, saying why.
        sent_before = len(proxy.access_records())
        too_large = tmp_path / "too-large.txt"
        too_large.write_bytes(b"d" * (4 * MIB + 1))  # over what is left of the quota
        program = tmp_path / "setup.exe"
        program.write_bytes(b"MZ")
        ui.add_files(too_large)
        ui.add_files(program)
        page.wait_for_function("() => document.querySelectorAll('#upload-refusals li').length === 2")
        assert page.locator("#upload-refusals li").all_inner_texts() == [
            "too-large.txt: too-large.txt exceeds maximum allowed size of 4 MB",
            "setup.exe: You can only upload: .csv, .gif, .gz, .jpeg, .jpg, .json, .md, .pdf, .png, .txt, .webp, .zip",
        ]
        sent = [r["path"] for r in proxy.access_records()[sent_before:]]
        assert not [path for path in sent if path.startswith(("/api/v1/tus", "/api/v1/uploads"))], sent
        page.evaluate("() => document.getElementById('upload-refusals').replaceChildren()")

        # 415 from Depot: the bytes are not the PNG the name says.
        assert (
            refusal(fake, 1) == "fake.png: The file's content is not image/png. (file: Content and extension disagree.)"
        )
        # 422 from Depot: a tag it does not accept, with the field's message.
        page.fill("form.upload-settings input[name=tags]", "no spaces allowed")
        assert refusal(tagged, 2) == (
            "tagged.txt: Upload-Metadata is invalid. (tags: A tag is 1 to 50 letters, digits, '_', '.' or '-'.)"
        )
        page.fill("form.upload-settings input[name=tags]", "")
        # 413 from nginx: a PATCH body over the proxy's limit; its JSON message, readable.
        assert refusal(large, 3) == "large.txt: The request body is larger than this server accepts."
        ui.shot("refusals-proxy")
        # 413 from Depot: the quota, used up by another client since the policy was read.
        # Both fit only because the console ended the upload nginx refused: unfinished, its
        # 3 MiB would still be reserved against the 4 MiB quota.
        for number in range(2):
            sent = api.post("/api/v1/uploads", files={"file": (f"other-{number}.txt", b"c" * (3 * MIB // 2))})
            assert sent.status_code == 201, sent.text
        text = refusal(late, 4)
        ui.shot("refusals")

    assert text.startswith("late.txt: This upload would exceed your storage quota of 4194304 bytes"), text
    assert api.get("/api/v1/uploads/policy").json()["used_bytes"] == 3 * MIB  # none of the refused
    # The page's console shows only the browser's own note of each refused request.
    refused = re.compile(r"Failed to load resource: the server responded with a status of (413|415|422) ")
    assert ui.errors and all(refused.match(error) for error in ui.errors), ui.errors
