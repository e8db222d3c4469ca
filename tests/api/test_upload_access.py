"""Reading, listing, changing, deleting, downloading and sharing uploads, and who may do what."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.models import Upload
from app.transactions import manager
from tests.helpers import bearer, png_bytes, sha256_hex

UPLOADS = "/api/v1/uploads"


@pytest.fixture
def alice(make_user, login):
    """Headers of an uploader called Alice."""
    return bearer(login(make_user(roles=["uploader"], name="Alice")))


@pytest.fixture
def bob(make_user, login):
    """Headers of another uploader, Bob."""
    return bearer(login(make_user(roles=["uploader"], name="Bob")))


@pytest.fixture
def private_upload(upload, alice):
    """Alice's private PNG: (upload json, bytes)."""
    data = png_bytes(10_000)
    return upload(alice, "secret.png", data, description="Alice only").json, data


# --- who sees what ----------------------------------------------------------------------


ROUTES = [
    ("get", "{id}"),
    ("get", "{id}/content"),
    ("patch_json", "{id}"),
    ("delete", "{id}"),
    ("post_json", "{id}/links"),
    ("delete", "{id}/links"),
]


@pytest.mark.robustness("auth attacks")
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_others_get_404_for_a_private_upload_on_every_route(testapp, private_upload, bob, method, path):
    body, _data = private_upload
    url = f"{UPLOADS}/" + path.format(id=body["id"])
    args = (url, {}) if method.endswith("_json") else (url,)

    missing = getattr(testapp, method)(*args, headers=bob, status=404)
    unknown = getattr(testapp, method)(
        *((f"{UPLOADS}/{uuid.uuid4()}" + url[len(UPLOADS) + 37 :],) + args[1:]), headers=bob, status=404
    )

    assert missing.json["message"] == unknown.json["message"] == "No such upload."


@pytest.mark.robustness("auth attacks")
def test_a_private_upload_is_unchanged_by_probing(testapp, private_upload, bob, fetch):
    body, _data = private_upload
    testapp.delete(f"{UPLOADS}/{body['id']}", headers=bob, status=404)
    testapp.patch_json(f"{UPLOADS}/{body['id']}", {"visibility": "public"}, headers=bob, status=404)

    row = fetch(lambda s: s.get(Upload, body["id"]))
    assert (row.visibility, row.description) == ("private", "Alice only")


def test_a_public_upload_can_be_read_but_not_changed_by_others(testapp, upload, alice, bob):
    data = png_bytes()
    body = upload(alice, data=data, visibility="public").json

    assert testapp.get(f"{UPLOADS}/{body['id']}", headers=bob).json["id"] == body["id"]
    assert testapp.get(f"{UPLOADS}/{body['id']}/content", headers=bob).body == data
    testapp.patch_json(f"{UPLOADS}/{body['id']}", {"description": "mine now"}, headers=bob, status=403)
    testapp.delete(f"{UPLOADS}/{body['id']}", headers=bob, status=403)
    testapp.post_json(f"{UPLOADS}/{body['id']}/links", {}, headers=bob, status=403)


def test_admins_see_and_manage_everything(testapp, private_upload, admin_headers, disk):
    body, data = private_upload

    assert testapp.get(f"{UPLOADS}/{body['id']}/content", headers=admin_headers).body == data
    testapp.patch_json(f"{UPLOADS}/{body['id']}", {"tags": ["reviewed"]}, headers=admin_headers)
    testapp.delete(f"{UPLOADS}/{body['id']}", headers=admin_headers, status=204)
    assert disk()["objects"] == []


def test_plain_users_can_read_public_uploads(testapp, upload, alice, make_user, login):
    body = upload(alice, visibility="public").json
    reader = bearer(login(make_user(roles=["user"])))

    testapp.get(f"{UPLOADS}/{body['id']}/content", headers=reader, status=200)


# --- listing ----------------------------------------------------------------------------


def test_listing_shows_own_and_public_uploads_newest_first(testapp, upload, alice, bob):
    a1 = upload(alice, "a1.png").json
    b1 = upload(bob, "b1.png").json
    b2 = upload(bob, "b2.png", visibility="public").json
    a2 = upload(alice, "a2.png").json

    listing = testapp.get(UPLOADS, headers=alice).json

    assert [item["id"] for item in listing["items"]] == [a2["id"], b2["id"], a1["id"]]
    assert (listing["per_page"], listing["next_cursor"]) == (20, None)
    assert b1["id"] not in {item["id"] for item in listing["items"]}


def test_admins_list_everything(testapp, upload, alice, bob, admin_headers):
    upload(alice)
    upload(bob)

    assert len(testapp.get(UPLOADS, headers=admin_headers).json["items"]) == 2


def test_listing_filters(testapp, upload, alice, bob, make_user):
    report = upload(
        alice, "report.pdf", b"%PDF-1.7\n" + b"1" * 100, description="Quarterly numbers", tags="finance"
    ).json
    photo = upload(alice, "beach.png", tags="holiday,sea").json
    upload(bob, "bob.png", visibility="public", tags="holiday")
    bob_id = testapp.get("/api/v1/users/me", headers=bob).json["id"]

    def ids(**query):
        return [item["id"] for item in testapp.get(UPLOADS, query, headers=alice).json["items"]]

    assert ids(content_type="application/pdf") == [report["id"]]
    assert ids(q="quarterly") == [report["id"]]
    assert ids(q="BEACH") == [photo["id"]]
    assert ids(q="%") == []
    assert ids(tag="sea") == [photo["id"]]
    assert len(ids(tag="holiday")) == 2
    assert len(ids(owner=bob_id)) == 1
    created = datetime.fromisoformat(photo["created_at"])
    assert ids(created_after=(created - timedelta(microseconds=1)).isoformat()) == ids(owner=bob_id) + [photo["id"]]
    assert ids(created_before=created.isoformat()) == [report["id"]]


def test_listing_pages_follow_the_cursor_to_the_end(testapp, upload, alice):
    created = [upload(alice, f"f{i}.png").json["id"] for i in range(5)]

    pages, cursor = [], None
    while True:
        page = testapp.get(UPLOADS, {"per_page": 2, **({"cursor": cursor} if cursor else {})}, headers=alice).json
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == [[created[4], created[3]], [created[2], created[1]], [created[0]]]


def test_a_cursor_keeps_its_place_when_new_uploads_arrive(testapp, upload, alice):
    first = [upload(alice, f"f{i}.png").json["id"] for i in range(3)]
    page1 = testapp.get(UPLOADS, {"per_page": 2}, headers=alice).json

    upload(alice, "newer.png")
    page2 = testapp.get(UPLOADS, {"per_page": 2, "cursor": page1["next_cursor"]}, headers=alice).json

    assert [item["id"] for item in page2["items"]] == [first[0]]  # no repeats, no skips
    assert page2["next_cursor"] is None


def test_a_cursor_with_filters_stays_within_them(testapp, upload, alice):
    tagged = [upload(alice, f"t{i}.png", tags="keep").json["id"] for i in range(3)]
    upload(alice, "other.png")

    page1 = testapp.get(UPLOADS, {"per_page": 2, "tag": "keep"}, headers=alice).json
    page2 = testapp.get(UPLOADS, {"per_page": 2, "tag": "keep", "cursor": page1["next_cursor"]}, headers=alice).json

    assert [i["id"] for i in page1["items"] + page2["items"]] == tagged[::-1]


def _cursor(*position) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "x" * 201,
        _cursor(),
        _cursor("yesterday", "00000000-0000-0000-0000-000000000001"),
        _cursor("2026-01-01T00:00:00", "00000000-0000-0000-0000-000000000001"),  # no time zone
        _cursor("2026-01-01T00:00:00+00:00", "not-an-id"),
        _cursor("2026-01-01T00:00:00+00:00", 12),
    ],
)
def test_cursors_that_this_api_did_not_issue_are_422(testapp, alice, cursor):
    response = testapp.get(UPLOADS, {"cursor": cursor}, headers=alice, status=422)

    assert "cursor" in response.json["fields"]


@pytest.mark.parametrize(
    "query", [{"owner": "nope"}, {"created_after": "yesterday"}, {"tag": "no spaces"}, {"per_page": 0}, {"q": ""}]
)
def test_bad_listing_filters_are_422(testapp, alice, query):
    response = testapp.get(UPLOADS, query, headers=alice, status=422)

    assert set(response.json["fields"]) == set(query)


# --- metadata changes and deletion --------------------------------------------------------


def test_owner_changes_metadata_but_never_the_file(testapp, private_upload, alice, fetch):
    body, data = private_upload

    changed = testapp.patch_json(
        f"{UPLOADS}/{body['id']}", {"description": None, "visibility": "public", "tags": ["x", "y"]}, headers=alice
    ).json

    assert (changed["description"], changed["visibility"], changed["tags"]) == (None, "public", ["x", "y"])
    assert (changed["sha256"], changed["size"]) == (sha256_hex(data), len(data))


@pytest.mark.robustness("auth attacks")
@pytest.mark.parametrize("payload", [{"filename": "x.png"}, {"size": 1}, {"sha256": "0" * 64}, {"owner_id": "x"}])
def test_patch_cannot_touch_file_fields(testapp, private_upload, alice, payload):
    body, _data = private_upload

    response = testapp.patch_json(f"{UPLOADS}/{body['id']}", payload, headers=alice, status=422)

    assert list(response.json["fields"]) == list(payload)


def test_delete_removes_row_then_file(testapp, private_upload, alice, fetch, disk):
    body, _data = private_upload

    testapp.delete(f"{UPLOADS}/{body['id']}", headers=alice, status=204)

    assert fetch(lambda s: s.get(Upload, body["id"])) is None
    assert disk() == {"objects": [], "staging": []}
    testapp.get(f"{UPLOADS}/{body['id']}", headers=alice, status=404)


def test_deleting_a_user_deletes_their_uploads_and_files(testapp, make_user, login, upload, admin_headers, fetch, disk):
    owner = make_user(roles=["uploader"])
    keep = upload(admin_headers).json
    upload(bearer(login(owner)))
    upload(bearer(login(owner)))

    testapp.delete(f"/api/v1/users/{owner.id}", headers=admin_headers, status=204)

    rows = fetch(lambda s: s.scalars(select(Upload)).all())
    assert [row.id for row in rows] == [keep["id"]]
    assert disk()["objects"] == [rows[0].storage_key]


# --- downloads --------------------------------------------------------------------------


def test_download_streams_the_exact_bytes_with_safe_headers(testapp, private_upload, alice):
    body, data = private_upload

    response = testapp.get(f"{UPLOADS}/{body['id']}/content", headers=alice)

    assert response.body == data
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["ETag"] == f'"{sha256_hex(data)}"'
    assert response.headers["Content-Disposition"] == "attachment; filename=\"secret.png\"; filename*=UTF-8''secret.png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert response.headers["Accept-Ranges"] == "bytes"


def test_a_public_download_is_publicly_cacheable(testapp, upload, alice):
    body = upload(alice, visibility="public").json

    assert testapp.get(f"{UPLOADS}/{body['id']}/content", headers=alice).headers["Cache-Control"] == "public, no-cache"


def test_non_ascii_names_get_an_ascii_fallback_and_a_utf8_filename_star(testapp, upload, alice):
    body = upload(alice, "Ünïcødé ; x.png").json

    disposition = testapp.get(f"{UPLOADS}/{body['id']}/content", headers=alice).headers["Content-Disposition"]

    # ø has no ASCII decomposition and is dropped from the fallback; ';' would end the parameter.
    assert disposition == (
        "attachment; filename=\"Unicde _ x.png\"; filename*=UTF-8''%C3%9Cn%C3%AFc%C3%B8d%C3%A9%20%3B%20x.png"
    )


def test_if_none_match_gives_304(testapp, private_upload, alice):
    body, data = private_upload

    response = testapp.get(
        f"{UPLOADS}/{body['id']}/content", headers={**alice, "If-None-Match": f'"{sha256_hex(data)}"'}, status=304
    )

    assert response.body == b""


@pytest.mark.parametrize(
    ("header", "expected"),
    [("bytes=0-99", slice(0, 100)), ("bytes=9000-", slice(9000, None)), ("bytes=-10", slice(-10, None))],
)
def test_range_requests_give_206_with_the_slice(testapp, private_upload, alice, header, expected):
    body, data = private_upload

    response = testapp.get(f"{UPLOADS}/{body['id']}/content", headers={**alice, "Range": header}, status=206)

    assert response.body == data[expected]
    start = expected.start if expected.start is None or expected.start >= 0 else len(data) + expected.start
    start = len(data) - 10 if start is None else start
    assert response.headers["Content-Range"] == f"bytes {start}-{start + len(response.body) - 1}/{len(data)}"


@pytest.mark.parametrize("header", ["items=0-1", "bytes=abc", "bytes=0-1,3-4"])
def test_ranges_we_do_not_serve_are_ignored_with_the_whole_file(testapp, private_upload, alice, header):
    body, data = private_upload

    response = testapp.get(f"{UPLOADS}/{body['id']}/content", headers={**alice, "Range": header}, status=200)

    assert response.body == data


def test_a_suffix_longer_than_the_file_gives_the_whole_file(testapp, private_upload, alice):
    body, data = private_upload

    response = testapp.get(f"{UPLOADS}/{body['id']}/content", headers={**alice, "Range": "bytes=-999999"}, status=206)

    assert response.body == data
    assert response.headers["Content-Range"] == f"bytes 0-{len(data) - 1}/{len(data)}"


def test_an_unsatisfiable_range_is_416(testapp, private_upload, alice):
    body, data = private_upload

    response = testapp.get(
        f"{UPLOADS}/{body['id']}/content", headers={**alice, "Range": "bytes=50000-60000"}, status=416
    )

    assert response.headers["Content-Range"] == f"bytes */{len(data)}"


# --- share links ------------------------------------------------------------------------


def test_a_share_link_downloads_without_authorization(testapp, private_upload, alice):
    body, data = private_upload

    link = testapp.post_json(f"{UPLOADS}/{body['id']}/links", {"expires_in": 600}, headers=alice, status=201).json
    response = testapp.get(link["url"].replace("http://localhost", ""))

    assert response.body == data
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    expires = datetime.fromisoformat(link["expires_at"])
    assert timedelta(seconds=590) < expires - datetime.now(UTC) <= timedelta(seconds=600)


def test_link_lifetime_is_capped(testapp, private_upload, alice):
    body, _data = private_upload

    link = testapp.post_json(f"{UPLOADS}/{body['id']}/links", {"expires_in": 10**9}, headers=alice).json

    assert datetime.fromisoformat(link["expires_at"]) - datetime.now(UTC) <= timedelta(days=7)


def test_a_link_stops_working_when_it_expires(testapp, private_upload, alice):
    body, _data = private_upload
    link = testapp.post_json(f"{UPLOADS}/{body['id']}/links", {"expires_in": 1}, headers=alice).json

    time.sleep(1.1)

    response = testapp.get(link["url"].replace("http://localhost", ""), status=404)
    assert response.json["message"] == "This link is invalid or has expired."


def test_revoking_links_stops_every_earlier_link_but_not_later_ones(testapp, private_upload, alice):
    body, _data = private_upload
    first = testapp.post_json(f"{UPLOADS}/{body['id']}/links", {}, headers=alice).json

    testapp.delete(f"{UPLOADS}/{body['id']}/links", headers=alice, status=204)
    second = testapp.post_json(f"{UPLOADS}/{body['id']}/links", {}, headers=alice).json

    testapp.get(first["url"].replace("http://localhost", ""), status=404)
    testapp.get(second["url"].replace("http://localhost", ""), status=200)


def test_a_link_stops_working_while_its_owner_is_deactivated(testapp, upload, make_user, login, admin_headers):
    owner = make_user(roles=["uploader"])
    body = upload(bearer(login(owner))).json
    url = testapp.post_json(f"{UPLOADS}/{body['id']}/links", {}, headers=bearer(login(owner))).json["url"]
    path = url.replace("http://localhost", "")

    testapp.patch_json(f"/api/v1/users/{owner.id}", {"active": False}, headers=admin_headers)
    testapp.get(path, status=404)
    testapp.patch_json(f"/api/v1/users/{owner.id}", {"active": True}, headers=admin_headers)
    testapp.get(path, status=200)


def test_a_link_stops_working_when_the_upload_is_deleted(testapp, private_upload, alice):
    body, _data = private_upload
    link = testapp.post_json(f"{UPLOADS}/{body['id']}/links", {}, headers=alice).json

    testapp.delete(f"{UPLOADS}/{body['id']}", headers=alice)

    testapp.get(link["url"].replace("http://localhost", ""), status=404)


@pytest.mark.parametrize("mangle", [lambda t: t[:-2] + "xx", lambda t: "garbage", lambda t: t.split(".")[0]])
def test_forged_links_are_404(testapp, private_upload, alice, mangle):
    body, _data = private_upload
    token = testapp.post_json(f"{UPLOADS}/{body['id']}/links", {}, headers=alice).json["token"]

    testapp.get(f"/api/v1/links/{mangle(token)}", status=404)


def test_a_missing_file_is_reported_as_unavailable_not_a_crash(testapp, private_upload, alice, app):
    body, _data = private_upload
    with app.app_context(), manager:
        from app.extensions import db

        key = db.session.get(Upload, body["id"]).storage_key
    for path in (app.config["UPLOAD_DIR"] / __import__("pathlib").Path("objects")).glob(f"*/{key}"):
        path.unlink()

    response = testapp.get(f"{UPLOADS}/{body['id']}/content", headers=alice, status=503)

    assert response.json["error"] == "unavailable"
