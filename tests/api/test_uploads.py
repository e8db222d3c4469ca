"""Storing uploads over WebTest: multipart and raw bodies, checks, and what is left on disk."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from sqlalchemy import func, select
from webtest import TestRequest
from werkzeug.test import EnvironBuilder
from werkzeug.wsgi import FileWrapper

from app.models import Upload
from tests.helpers import bearer, pdf_bytes, png_bytes, send_chunked, sha256_hex

UPLOADS = "/api/v1/uploads"


def count_uploads(fetch) -> int:
    return fetch(lambda s: s.scalar(select(func.count()).select_from(Upload)))


def assert_nothing_stored(fetch, disk):
    assert count_uploads(fetch) == 0
    assert disk() == {"objects": [], "staging": []}


class ExplodingInput(io.RawIOBase):
    """A request body that fails the test if anyone reads it."""

    def readable(self):
        return True

    def readinto(self, _buffer):
        raise AssertionError("the request body was read")


class InvalidChunkSize(Exception):  # noqa: N818 (named like gunicorn's, which it stands for)
    """What gunicorn raises from its body reader on bad chunk framing (not an OSError)."""


class UndecodableInput(io.RawIOBase):
    """A body the server fails to decode, as gunicorn's does on bad chunk framing."""

    def readable(self):
        return True

    def readinto(self, _buffer):
        raise InvalidChunkSize("zz")


def send_unread(testapp, path, headers, content_length, method="POST", status=None):
    """A request whose body must not be read: Content-Length says `content_length`, reading fails."""
    request = TestRequest.blank(path, method=method, headers=headers)
    request.environ["CONTENT_LENGTH"] = str(content_length)
    request.environ["wsgi.input"] = io.BufferedReader(ExplodingInput())
    return testapp.do_request(request, status=status)


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [("PUT", "/api/v1/uploads/notes.txt", "text/plain"), ("POST", UPLOADS, "multipart/form-data; boundary=x")],
)
def test_a_body_the_server_cannot_decode_is_400_and_stores_nothing(
    testapp, uploader_headers, fetch, disk, method, path, content_type
):
    request = TestRequest.blank(path, method=method, headers={**uploader_headers, "Content-Type": content_type})
    request.environ.pop("CONTENT_LENGTH", None)
    request.environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    request.environ["wsgi.input_terminated"] = True  # the server hands over its own body reader
    request.environ["wsgi.input"] = io.BufferedReader(UndecodableInput())

    response = testapp.do_request(request, status=400)

    assert response.json["error"] == "bad_request"
    assert "could not be read" in response.json["message"]
    assert_nothing_stored(fetch, disk)


# --- multipart --------------------------------------------------------------------------


def test_multipart_upload_stores_file_and_metadata_together(upload, uploader, uploader_headers, fetch, disk, app):
    data = png_bytes(5000)

    response = upload(uploader_headers, "holiday.png", data, description="Beach", visibility="public", tags="sea, sun")

    body = response.json
    assert response.headers["Location"] == f"http://localhost{UPLOADS}/{body['id']}"
    assert body["filename"] == "holiday.png"
    assert body["content_type"] == "image/png"
    assert (body["size"], body["sha256"]) == (5000, sha256_hex(data))
    assert (body["visibility"], body["description"], body["tags"]) == ("public", "Beach", ["sea", "sun"])
    assert body["owner_id"] == uploader.id
    assert body["download_url"] == f"http://localhost{UPLOADS}/{body['id']}/content"
    row = fetch(lambda s: s.get(Upload, body["id"]))
    assert disk() == {"objects": [row.storage_key], "staging": []}
    stored = next((app.config["UPLOAD_DIR"] / __import__("pathlib").Path("objects")).glob(f"*/{row.storage_key}"))
    assert stored.read_bytes() == data
    assert row.storage_key not in ("holiday.png",) and "holiday" not in str(stored)


def test_tags_may_be_repeated_fields(testapp, uploader_headers):
    response = testapp.post(
        UPLOADS,
        [("tags", "b"), ("tags", "a"), ("tags", "b")],
        upload_files=[("file", "x.png", png_bytes())],
        headers=uploader_headers,
        status=201,
    )

    assert response.json["tags"] == ["a", "b"]


def test_a_tag_it_does_not_accept_is_refused_saying_what_a_tag_may_hold(testapp, uploader_headers):
    response = testapp.post(
        UPLOADS,
        {"tags": "no spaces"},
        upload_files=[("file", "x.png", png_bytes())],
        headers=uploader_headers,
        status=422,
    )

    assert response.json["fields"]["tags"] == {"0": ["A tag is 1 to 50 letters, digits, '_', '.' or '-'."]}


def test_defaults_are_private_with_no_description_or_tags(upload, uploader_headers):
    body = upload(uploader_headers).json

    assert (body["visibility"], body["description"], body["tags"]) == ("private", None, [])


def test_a_plain_user_cannot_upload_and_the_body_is_not_read(testapp, make_user, login, fetch, disk):
    headers = {**bearer(login(make_user(roles=["user"]))), "Content-Type": "multipart/form-data; boundary=x"}

    response = send_unread(testapp, UPLOADS, headers, 1000, status=403)

    assert response.json["error"] == "forbidden"
    assert_nothing_stored(fetch, disk)


def test_an_admin_may_upload(upload, admin_headers):
    upload(admin_headers)


def test_an_unauthenticated_upload_is_401(upload):
    upload({}, status=401)


def test_content_length_over_the_limit_is_refused_before_reading(uploader_on):
    testapp, uploader_auth = uploader_on(MAX_UPLOAD_BYTES="1000000")
    headers = {**uploader_auth, "Content-Type": "multipart/form-data; boundary=x"}

    response = send_unread(testapp, UPLOADS, headers, 50_000_000, status=413)

    assert response.json["error"] == "payload_too_large"
    assert "1000000 bytes" in response.json["message"]


def test_a_streamed_body_over_the_limit_is_refused_and_leaves_nothing(uploader_on, fetch, disk):
    testapp, uploader_auth = uploader_on(MAX_UPLOAD_BYTES="100000")

    response = send_chunked(
        testapp,
        f"{UPLOADS}/big.png",
        png_bytes(200_000),
        "image/png",
        status=413,
        method="PUT",
        headers=uploader_auth,
    )

    assert response.json["error"] == "payload_too_large"
    assert_nothing_stored(fetch, disk)


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("run.exe", b"MZ" + b"\x00" * 100, None),  # extension not allowed
        ("archive.jpg.php", b"<?php echo 1; ?>", None),  # double extension: the last one counts
        ("README", b"plain text", None),  # no extension
        ("scan.pdf", png_bytes(), None),  # PNG bytes named .pdf
        ("page.png", b"<!DOCTYPE html><html><script>alert(1)</script></html>", None),  # HTML named .png
        ("notes.txt", b"<html><body><script>alert(1)</script></body></html>", None),  # HTML as text
        ("image.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', None),
        ("photo.png", png_bytes(), "application/pdf"),  # declared type contradicts the extension
    ],
)
def test_files_whose_name_type_or_bytes_disagree_are_415(
    upload, uploader_headers, fetch, disk, name, data, content_type
):
    response = upload(uploader_headers, name, data, status=415, content_type=content_type)

    assert response.json["error"] == "unsupported_media_type"
    assert_nothing_stored(fetch, disk)


def test_an_empty_file_is_422(upload, uploader_headers, fetch, disk):
    response = upload(uploader_headers, "empty.txt", b"", status=422)

    assert response.json["fields"] == {"file": ["The file is empty."]}
    assert_nothing_stored(fetch, disk)


def test_a_form_without_a_file_part_is_422(testapp, uploader_headers, fetch, disk):
    response = testapp.post(
        UPLOADS, {"description": "no file"}, headers=uploader_headers, content_type="multipart/form-data", status=422
    )

    assert response.json["fields"] == {"file": ["Missing data for required field."]}
    assert_nothing_stored(fetch, disk)


def test_two_file_parts_are_422(testapp, uploader_headers, fetch, disk):
    files = [("file", "a.png", png_bytes()), ("file", "b.png", png_bytes())]

    response = testapp.post(UPLOADS, upload_files=files, headers=uploader_headers, status=422)

    assert response.json["message"] == "Send exactly one file part."
    assert_nothing_stored(fetch, disk)


def test_too_many_fields_are_422(testapp, uploader_headers, fetch, disk):
    fields = [(f"field{i}", "x") for i in range(40)]

    response = testapp.post(
        UPLOADS, fields, upload_files=[("file", "a.png", png_bytes())], headers=uploader_headers, status=422
    )

    assert "Too many form parts" in response.json["message"]
    assert_nothing_stored(fetch, disk)


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"visibility": "everyone"}, "visibility"),
        ({"description": "x" * 2001}, "description"),
        ({"tags": "bad tag!"}, "tags"),
        ({"owner_id": "someone"}, "owner_id"),
        ({"sha256": "not-hex"}, "sha256"),
    ],
)
def test_invalid_metadata_is_422_and_leaves_nothing(upload, uploader_headers, fetch, disk, fields, bad):
    response = upload(uploader_headers, status=422, **fields)

    assert bad in response.json["fields"]
    assert_nothing_stored(fetch, disk)


def test_an_overlong_filename_is_422(upload, uploader_headers, fetch, disk):
    response = upload(uploader_headers, "a" * 10_000 + ".png", status=422)

    assert "file" in response.json["fields"]
    assert_nothing_stored(fetch, disk)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\x\\report.pdf", "report.pdf"),
        ("/etc/cron.d/job.txt", "job.txt"),
        ("evil\u202egnp.txt", "evilgnp.txt"),
        ("tab\tand\x01ctrl.txt", "tabandctrl.txt"),
        ("..hidden.txt", "hidden.txt"),
        ("Cafe\u0301.txt", "Café.txt"),
        ("é" * 300 + ".txt", "é" * 251 + ".txt"),
    ],
)
def test_client_filenames_are_kept_only_as_sanitized_metadata(upload, uploader_headers, raw, stored):
    data = pdf_bytes() if stored.endswith(".pdf") else b"just text\n"

    assert upload(uploader_headers, raw, data).json["filename"] == stored


def test_a_matching_sha256_field_is_accepted(upload, uploader_headers):
    data = png_bytes()

    upload(uploader_headers, data=data, sha256=sha256_hex(data).upper())


def test_a_wrong_sha256_field_is_422_and_leaves_nothing(upload, uploader_headers, fetch, disk):
    response = upload(uploader_headers, sha256="0" * 64, status=422)

    assert response.json["fields"] == {"sha256": ["Digest mismatch."]}
    assert_nothing_stored(fetch, disk)


def test_a_matching_content_digest_header_is_accepted(testapp, uploader_headers):
    data = b"some text\n"
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()

    testapp.put(
        f"{UPLOADS}/notes.txt",
        data,
        headers={**uploader_headers, "Content-Type": "text/plain", "Content-Digest": f"sha-256=:{digest}:"},
        status=201,
    )


@pytest.mark.parametrize(
    "header", ["sha-256=:" + base64.b64encode(b"\0" * 32).decode() + ":", "sha-256=:bm9wZQ==:", "md5=:x:"]
)
def test_a_wrong_or_malformed_content_digest_is_422(testapp, uploader_headers, fetch, disk, header):
    testapp.put(
        f"{UPLOADS}/notes.txt",
        b"some text\n",
        headers={**uploader_headers, "Content-Type": "text/plain", "Content-Digest": header},
        status=422,
    )

    assert_nothing_stored(fetch, disk)


@pytest.mark.parametrize(
    "body",
    [
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello',  # truncated
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello\r\n--x',  # no end
        b"garbage without any boundary",
    ],
)
def test_a_broken_multipart_body_is_400_and_leaves_nothing(testapp, uploader_headers, fetch, disk, body):
    response = testapp.post(
        UPLOADS, body, headers={**uploader_headers, "Content-Type": "multipart/form-data; boundary=x"}, status=400
    )

    assert response.json["error"] == "bad_request"
    assert_nothing_stored(fetch, disk)


def test_a_non_multipart_post_is_415(testapp, uploader_headers):
    response = testapp.post(UPLOADS, b"raw", headers={**uploader_headers, "Content-Type": "image/png"}, status=415)

    assert "multipart/form-data" in response.json["message"]


# --- raw PUT ----------------------------------------------------------------------------


def test_raw_put_stores_the_body_under_the_given_name(testapp, uploader_headers, fetch, disk):
    data = pdf_bytes(3000)

    response = testapp.put(
        f"{UPLOADS}/report.pdf?description=Q3&tags=finance&visibility=public",
        data,
        headers={**uploader_headers, "Content-Type": "application/pdf"},
        status=201,
    )

    body = response.json
    assert (body["filename"], body["content_type"], body["size"], body["sha256"]) == (
        "report.pdf",
        "application/pdf",
        3000,
        sha256_hex(data),
    )
    assert (body["description"], body["tags"], body["visibility"]) == ("Q3", ["finance"], "public")
    assert response.headers["Location"].endswith(f"{UPLOADS}/{body['id']}")
    assert len(disk()["objects"]) == 1


def test_raw_put_of_a_chunked_body_is_stored(testapp, uploader_headers):
    data = png_bytes(300_000)

    response = send_chunked(
        testapp, f"{UPLOADS}/big.png", data, "image/png", status=201, method="PUT", headers=uploader_headers
    )

    assert response.json["sha256"] == sha256_hex(data)


def test_raw_put_checks_types_like_multipart(testapp, uploader_headers, fetch, disk):
    testapp.put(
        f"{UPLOADS}/image.png", b"<html></html>", headers={**uploader_headers, "Content-Type": "image/png"}, status=415
    )

    assert_nothing_stored(fetch, disk)


# --- policy and quota -------------------------------------------------------------------


def test_policy_tells_the_limits(testapp, uploader_headers, upload):
    upload(uploader_headers, data=png_bytes(1234))

    policy = testapp.get(f"{UPLOADS}/policy", headers=uploader_headers).json

    assert policy["max_upload_bytes"] == 1024**3
    assert "png" in policy["allowed_extensions"] and "exe" not in policy["allowed_extensions"]
    assert (policy["quota_bytes"], policy["used_bytes"], policy["remaining_bytes"]) == (None, 1234, None)


@pytest.fixture
def quota_app(uploader_on):
    """An app where each user may store 10,000 bytes, with one uploader logged in."""
    testapp, uploader_auth = uploader_on(USER_QUOTA_BYTES="10000")
    return testapp, uploader_auth


def test_quota_is_enforced_at_commit_with_the_quota_in_the_message(quota_app):
    testapp, headers = quota_app
    testapp.post(UPLOADS, upload_files=[("file", "a.png", png_bytes(6000))], headers=headers, status=201)

    response = testapp.post(UPLOADS, upload_files=[("file", "b.png", png_bytes(6000))], headers=headers, status=413)

    assert "quota of 10000 bytes" in response.json["message"]
    policy = testapp.get(f"{UPLOADS}/policy", headers=headers).json
    assert (policy["quota_bytes"], policy["used_bytes"], policy["remaining_bytes"]) == (10000, 6000, 4000)


def test_quota_is_checked_before_reading_when_content_length_allows(quota_app):
    testapp, headers = quota_app

    response = send_unread(
        testapp, f"{UPLOADS}/big.png", {**headers, "Content-Type": "image/png"}, 20_000, method="PUT", status=413
    )

    assert "quota of 10000 bytes" in response.json["message"]


# --- found in review: edge cases that must not be 500s or silent successes ---------------


@pytest.mark.parametrize(
    ("name", "data"),
    [("cars.csv", b"BMW,Audi,VW\n1,2,3\n"), ("notes.md", b"ID3 tags are metadata\n"), ("mz.txt", b"MZ is a town\n")],
)
def test_text_that_happens_to_start_like_a_binary_signature_is_accepted(upload, uploader_headers, name, data):
    upload(uploader_headers, name, data)


def test_text_that_is_not_utf8_is_415(upload, uploader_headers, fetch, disk):
    upload(uploader_headers, "latin1.txt", "caf\xe9 cr\xe8me\n".encode("latin-1"), status=415)

    assert_nothing_stored(fetch, disk)


def test_utf8_cut_inside_a_character_at_the_sniffing_boundary_is_accepted(upload, uploader_headers):
    # "x" then 2-byte characters: the 8,192-byte head ends on the first byte of one of them.
    upload(uploader_headers, "long.txt", b"x" + ("é" * 5000).encode("utf-8"))


def test_invisible_characters_are_removed_from_names(upload, uploader_headers):
    body = upload(uploader_headers, "a\u061cb\u2060c\u2028d\u200be.txt", b"text\n").json

    assert body["filename"] == "abcde.txt"


def test_a_raw_body_shorter_than_its_content_length_is_400_and_leaves_nothing(testapp, uploader_headers, fetch, disk):
    request = TestRequest.blank(
        f"{UPLOADS}/short.png", method="PUT", headers={**uploader_headers, "Content-Type": "image/png"}
    )
    request.environ["CONTENT_LENGTH"] = "9000"
    request.environ["wsgi.input"] = io.BytesIO(png_bytes(5000))
    request.environ["wsgi.input_terminated"] = True  # as gunicorn says: the server ends the stream

    response = testapp.do_request(request, status=400)

    assert "5000 of 9000 bytes" in response.json["message"]
    assert_nothing_stored(fetch, disk)


def test_a_form_part_without_a_name_is_422(testapp, uploader_headers, fetch, disk):
    body = (
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello\r\n'
        b"--x\r\nContent-Disposition: form-data\r\n\r\nnameless\r\n"
        b'--x\r\nContent-Disposition: form-data; name="zzz"\r\n\r\nunknown\r\n--x--\r\n'
    )

    response = testapp.post(
        UPLOADS, body, headers={**uploader_headers, "Content-Type": "multipart/form-data; boundary=x"}, status=422
    )

    assert response.json["message"] == "Every form part needs a name."
    assert_nothing_stored(fetch, disk)


def test_a_plain_user_gets_403_whatever_the_body_looks_like(testapp, make_user, login):
    headers = bearer(login(make_user(roles=["user"])))

    testapp.post(UPLOADS, b"x", headers={**headers, "Content-Type": "text/plain"}, status=403)
    testapp.put(f"{UPLOADS}/a.txt", b"x", headers={**headers, "Content-Digest": "nonsense"}, status=403)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_times_outside_what_utc_can_hold_are_422(testapp, uploader_headers, when):
    response = testapp.get(UPLOADS, {"created_after": when}, headers=uploader_headers, status=422)

    assert "created_after" in response.json["fields"]


def test_lone_surrogates_in_json_text_are_422(testapp, upload, uploader_headers):
    body = upload(uploader_headers).json

    response = testapp.patch(
        f"{UPLOADS}/{body['id']}",
        '{"description": "a\\ud800b"}',
        headers={**uploader_headers, "Content-Type": "application/json"},
        status=422,
    )

    assert response.json["fields"] == {"description": ["Must be valid Unicode text."]}
    testapp.post(
        "/api/v1/auth/token",
        '{"email": "a@example.com", "password": "x\\ud800"}',
        headers={"Content-Type": "application/json"},
        status=422,
    )


@pytest.mark.parametrize(
    ("conditions", "status"),
    [
        ({"If-Match": '"not-this-file"'}, 412),
        ({"If-Match": "*"}, 200),
        ({"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, 412),
        ({"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}, 200),
        ({"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}, 304),
        ({"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, 200),
    ],
)
def test_download_preconditions_follow_rfc_9110(testapp, upload, uploader_headers, conditions, status):
    created = upload(uploader_headers, data=png_bytes(2000)).json

    response = testapp.get(
        f"{UPLOADS}/{created['id']}/content", headers={**uploader_headers, **conditions}, status=status
    )

    if status == 200:
        assert len(response.body) == 2000
    elif status == 412:
        assert response.json["error"] == "precondition_failed"
    else:
        assert response.body == b""


def test_if_none_match_wins_over_range(testapp, upload, uploader_headers):
    created = upload(uploader_headers).json
    etag = f'"{created["sha256"]}"'

    response = testapp.get(
        f"{UPLOADS}/{created['id']}/content",
        headers={**uploader_headers, "If-None-Match": etag, "Range": "bytes=0-9"},
        status=304,
    )

    assert response.headers["ETag"] == etag


@pytest.mark.parametrize(
    ("if_range", "status"),
    [("etag", 206), ('"other"', 200), ("Fri, 01 Jan 2100 00:00:00 GMT", 206), ("Mon, 01 Jan 2001 00:00:00 GMT", 200)],
)
def test_if_range_serves_the_range_only_for_the_same_file(testapp, upload, uploader_headers, if_range, status):
    data = png_bytes(3000)
    created = upload(uploader_headers, data=data).json
    if_range = f'"{created["sha256"]}"' if if_range == "etag" else if_range

    response = testapp.get(
        created["download_url"],
        headers={**uploader_headers, "Range": "bytes=100-199", "If-Range": if_range},
        status=status,
    )

    assert response.body == (data[100:200] if status == 206 else data)


def test_a_whole_local_file_is_handed_to_the_servers_file_wrapper(app, upload, uploader_headers):
    """So gunicorn sends it with sendfile, from the descriptor opened before answering."""
    data = png_bytes(3000)
    created = upload(uploader_headers, data=data).json
    handed = []

    class ServerFileWrapper(FileWrapper):
        def __init__(self, file, buffer_size=8192):
            handed.append(file.fileno())  # a real descriptor, as sendfile needs
            super().__init__(file, buffer_size)

    environ = EnvironBuilder(path=created["download_url"], headers=uploader_headers).get_environ()
    environ["wsgi.file_wrapper"] = ServerFileWrapper
    body = app(environ, lambda status, headers, exc_info=None: None)
    try:
        assert b"".join(body) == data
    finally:
        body.close()

    assert len(handed) == 1


def test_upload_widgets_extra_form_fields_are_accepted_and_ignored(testapp, uploader_headers):
    # Uppy's XHR upload with its default options sends each file's `name`, `type` and
    # `relativePath` ("null" outside a folder) beside the file part.
    fields = {"name": "renamed in the widget.png", "type": "image/png", "relativePath": "null"}

    created = testapp.post(
        UPLOADS, fields, upload_files=[("file", "holiday.png", png_bytes())], headers=uploader_headers, status=201
    ).json

    assert created["filename"] == "holiday.png"  # the file part's own name counts
    assert (created["description"], created["visibility"], created["tags"]) == (None, "private", [])


def test_a_widget_field_is_still_checked_for_size_and_repeats(testapp, uploader_headers, fetch, disk):
    fields = [("name", "a.png"), ("name", "b.png")]

    response = testapp.post(
        UPLOADS, fields, upload_files=[("file", "a.png", png_bytes())], headers=uploader_headers, status=422
    )

    assert response.json["fields"] == {"name": ["Send it once."]}
    too_long = testapp.post(
        UPLOADS,
        {"relativePath": "x" * 9000},
        upload_files=[("file", "a.png", png_bytes())],
        headers=uploader_headers,
        status=422,
    )
    assert too_long.json["fields"] == {"relativePath": ["Too long."]}
    assert_nothing_stored(fetch, disk)


@pytest.mark.parametrize(
    ("name", "data", "declared", "served"),
    [
        # What browsers on Windows report, from the registry, for common files.
        ("table.csv", b"a,b\n1,2\n", "application/vnd.ms-excel", "text/csv"),
        ("archive.zip", b"PK\x03\x04" + b"\x00" * 60, "application/x-zip-compressed", "application/zip"),
        ("log.gz", b"\x1f\x8b\x08\x00" + b"\x00" * 60, "application/x-gzip", "application/gzip"),
        ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 60, "image/pjpeg", "image/jpeg"),
        ("photo.png", png_bytes(), "image/x-png", "image/png"),
        ("notes.md", b"# Notes\n", "text/x-markdown", "text/markdown"),
    ],
)
def test_content_types_browsers_commonly_send_are_aliases_of_the_extensions_type(
    upload, uploader_headers, name, data, declared, served
):
    created = upload(uploader_headers, name, data, content_type=declared).json

    assert created["content_type"] == served


def test_an_alias_of_another_extensions_type_is_still_415(upload, uploader_headers, fetch, disk):
    response = upload(
        uploader_headers, "photo.png", png_bytes(), status=415, content_type="application/x-zip-compressed"
    )

    assert "does not match a '.png' file" in response.json["message"]
    assert_nothing_stored(fetch, disk)


def test_links_in_answers_are_absolute_on_the_host_and_scheme_the_client_used(upload, testapp, uploader_headers):
    # A browser app on another origin uses them as they are, like a share link's url.
    headers = {**uploader_headers, "Host": "files.example.com"}

    created = upload(headers, "holiday.png", png_bytes())

    assert created.headers["Location"] == f"http://files.example.com{UPLOADS}/{created.json['id']}"
    assert created.json["download_url"] == f"http://files.example.com{UPLOADS}/{created.json['id']}/content"
    listed = testapp.get(UPLOADS, headers=headers, extra_environ={"wsgi.url_scheme": "https"}).json["items"]
    assert listed[0]["download_url"] == f"https://files.example.com{UPLOADS}/{created.json['id']}/content"
