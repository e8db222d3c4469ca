"""Hostile input, case by case: each gets its exact status and Depot's JSON error (or, where
the input is made safe rather than refused, the safe result), and nothing refused leaves a
row or a file behind."""

from __future__ import annotations

import io
import json

import pytest
from webtest import TestRequest

from tests.api.test_uploads import assert_nothing_stored
from tests.helpers import pdf_bytes, png_bytes, send_chunked

UPLOADS = "/api/v1/uploads"
pytestmark = pytest.mark.robustness("hostile inputs")

BOUNDARY = "hostileboundary"
TEXT = b"plain text\n"


def multipart(parts: list[tuple[str, bytes]], boundary: str = BOUNDARY, close: bool = True) -> bytes:
    """A multipart body from (raw part headers, content) pairs."""
    body = b"".join(
        f"--{boundary}\r\n{headers}\r\n\r\n".encode("utf-8", "surrogatepass") + content + b"\r\n"
        for headers, content in parts
    )
    return body + (f"--{boundary}--\r\n".encode() if close else b"")


def file_part(filename: str, content: bytes, content_type: str = "application/octet-stream") -> tuple[str, bytes]:
    return (
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\nContent-Type: {content_type}',
        content,
    )


def post_raw(testapp, headers, body: bytes, status: int, content_type: str | None = None, content_length=None):
    request = TestRequest.blank(UPLOADS, method="POST", headers=headers)
    request.environ["CONTENT_TYPE"] = content_type or f"multipart/form-data; boundary={BOUNDARY}"
    request.environ["CONTENT_LENGTH"] = str(len(body) if content_length is None else content_length)
    request.environ["wsgi.input"] = io.BytesIO(body)
    return testapp.do_request(request, status=status)


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.content_type == "application/json"
    assert (response.json["status"], response.json["error"]) == (status, code)
    assert set(response.json) == {"status", "error", "message", "fields", "request_id"}


# --- file names --------------------------------------------------------------------------

# (sent name, stored name): path parts, drive letters, control and bidi characters go;
# the name is only metadata, the file is stored under a generated key.
MADE_SAFE = [
    ("../../etc/passwd.txt", "passwd.txt"),
    ("C:\\Windows\\x.txt", "x.txt"),
    ("/etc/x.txt", "x.txt"),
    ("a\x00b.txt", "ab.txt"),
    ("tab\tand\x1bescape.txt", "tabandescape.txt"),
    ("\u202egnp.txt", "gnp.txt"),  # right-to-left override: would display as "txt.png"
    ("cafe\u0301.txt", "café.txt"),  # NFD becomes NFC
]

# (sent name, status, error code): names that cannot be stored.
REFUSED_NAMES = [
    ("../../etc/passwd", 415, "unsupported_media_type"),  # no extension once the path is gone
    ("C:\\x", 415, "unsupported_media_type"),
    ("/etc/x", 415, "unsupported_media_type"),
    ("x.jpg.php", 415, "unsupported_media_type"),  # only the last extension counts
    ("README", 415, "unsupported_media_type"),
    ("ｆｉｌｅ．ｔｘｔ", 415, "unsupported_media_type"),  # fullwidth dot: no real extension
    ("x" * 10_000 + ".txt", 422, "validation_failed"),
    ("..", 422, "validation_failed"),  # nothing usable is left of it
]


@pytest.mark.parametrize(("sent", "stored"), MADE_SAFE)
def test_dangerous_names_are_made_safe(testapp, uploader_headers, sent, stored):
    response = post_raw(testapp, uploader_headers, multipart([file_part(sent, TEXT)]), 201)

    assert response.json["filename"] == stored


@pytest.mark.parametrize(("sent", "status", "code"), REFUSED_NAMES)
def test_names_that_cannot_be_stored_are_refused(testapp, uploader_headers, fetch, disk, sent, status, code):
    response = post_raw(testapp, uploader_headers, multipart([file_part(sent, TEXT)]), status)

    assert_error(response, status, code)
    assert_nothing_stored(fetch, disk)


# --- contents ----------------------------------------------------------------------------

SCRIPT_HTML = b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>"
SCRIPT_SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'

# (name, content, declared type, status, error code)
REFUSED_CONTENTS = [
    ("a.png", pdf_bytes(), "image/png", 415, "unsupported_media_type"),  # bytes say PDF
    ("a.png", png_bytes(), "text/html", 415, "unsupported_media_type"),  # declared type disagrees
    ("page.txt", SCRIPT_HTML, "text/plain", 415, "unsupported_media_type"),
    ("page.html", SCRIPT_HTML, "text/html", 415, "unsupported_media_type"),
    ("image.svg", SCRIPT_SVG, "image/svg+xml", 415, "unsupported_media_type"),
    ("image.txt", SCRIPT_SVG, "text/plain", 415, "unsupported_media_type"),
    ("bad.txt", b"\xff\xfe not utf-8", "text/plain", 415, "unsupported_media_type"),
    ("empty.txt", b"", "text/plain", 422, "validation_failed"),
]


@pytest.mark.parametrize(("name", "content", "declared", "status", "code"), REFUSED_CONTENTS)
def test_contents_that_disagree_or_could_run_are_refused(
    testapp, uploader_headers, fetch, disk, name, content, declared, status, code
):
    response = post_raw(testapp, uploader_headers, multipart([file_part(name, content, declared)]), status)

    assert_error(response, status, code)
    assert_nothing_stored(fetch, disk)


def test_a_polyglot_is_stored_but_served_inert(testapp, uploader_headers):
    # A real GIF header followed by script: it is a GIF, so it is accepted, and a browser
    # will neither sniff it as HTML nor run it.
    polyglot = b"GIF89a/*\x00\x00\x00\x00*/=1;alert(document.domain)//" + b"\x00" * 64

    created = post_raw(testapp, uploader_headers, multipart([file_part("x.gif", polyglot, "image/gif")]), 201)
    served = testapp.get(f"{UPLOADS}/{created.json['id']}/content", headers=uploader_headers)

    assert served.headers["Content-Type"] == "image/gif"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert served.headers["Content-Disposition"].startswith("attachment;")


# --- broken multipart bodies -------------------------------------------------------------

BROKEN_BODIES = [
    ("truncated", multipart([file_part("a.txt", TEXT * 1000)])[:-200], 400),
    ("boundary that never ends", multipart([file_part("a.txt", TEXT * 1000)], close=False), 400),
    ("no parts", f"--{BOUNDARY}--\r\n".encode(), 422),
    (
        "many parts",
        multipart(
            [(f'Content-Disposition: form-data; name="f{i}"', b"v") for i in range(40)] + [file_part("a.txt", TEXT)]
        ),
        422,
    ),
    ("huge part headers", multipart([("X-Junk: " + "j" * 500_000, b"v"), file_part("a.txt", TEXT)]), 400),
    (
        "field that is not UTF-8",
        multipart([('Content-Disposition: form-data; name="description"', b"\xff\xfe"), file_part("a.txt", TEXT)]),
        422,
    ),
    ("two file parts", multipart([file_part("a.txt", TEXT), file_part("b.txt", TEXT)]), 422),
    (
        "field over 8 KiB",
        multipart([('Content-Disposition: form-data; name="description"', b"d" * 20_000), file_part("a.txt", TEXT)]),
        422,
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status"), BROKEN_BODIES, ids=[case for case, _body, _status in BROKEN_BODIES]
)
def test_broken_multipart_bodies_are_refused(testapp, uploader_headers, fetch, disk, case, body, status):
    response = post_raw(testapp, uploader_headers, body, status)

    assert_error(response, status, {400: "bad_request", 422: "validation_failed"}[status])
    assert_nothing_stored(fetch, disk)


def test_a_content_length_shorter_than_the_body_reads_only_what_it_says(testapp, uploader_headers, fetch, disk):
    body = multipart([file_part("a.txt", TEXT * 1000)])

    response = post_raw(testapp, uploader_headers, body, 400, content_length=len(body) // 2)

    assert_error(response, 400, "bad_request")
    assert_nothing_stored(fetch, disk)


def test_a_content_length_longer_than_the_body_is_refused(testapp, uploader_headers, fetch, disk):
    request = TestRequest.blank(f"{UPLOADS}/notes.txt", method="PUT", headers=uploader_headers)
    request.environ.update({"CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "5000", "wsgi.input": io.BytesIO(TEXT)})

    response = testapp.do_request(request, status=400)

    assert_error(response, 400, "bad_request")
    assert_nothing_stored(fetch, disk)


def test_a_chunked_body_over_the_size_limit_is_413(uploader_on, fetch, disk):
    client, headers = uploader_on(MAX_UPLOAD_BYTES="1000")

    response = send_chunked(client, f"{UPLOADS}/big.txt", b"a" * 5000, "text/plain", 413, method="PUT", headers=headers)

    assert_error(response, 413, "payload_too_large")


# --- JSON bodies -------------------------------------------------------------------------

JSON_CASES = [
    ("invalid UTF-8", b'{"name": "\xff\xfe"}', "application/json", 400, "bad_request"),
    ("deeply nested", b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json", 400, "bad_request"),
    ("not JSON at all", b"name=x", "application/json", 400, "bad_request"),
    ("wrong content type", b'{"name": "x"}', "text/plain", 415, "unsupported_media_type"),
    ("no content type", b'{"name": "x"}', "", 415, "unsupported_media_type"),
    ("lone surrogate", b'{"name": "\\ud800"}', "application/json", 422, "validation_failed"),
    ("NUL in a string", b'{"name": "a\\u0000b"}', "application/json", 422, "validation_failed"),
]


@pytest.mark.parametrize(("case", "body", "content_type", "status", "code"), JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_hostile_json_bodies_are_refused(testapp, uploader_headers, case, body, content_type, status, code):
    request = TestRequest.blank("/api/v1/users/me", method="PATCH", headers=uploader_headers)
    request.environ.update(
        {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    )

    response = testapp.do_request(request, status=status)

    assert_error(response, status, code)
    assert testapp.get("/api/v1/users/me", headers=uploader_headers).json["name"] == "Test User"


def test_a_50_mb_json_body_is_refused_before_it_is_read(testapp, uploader_headers):
    request = TestRequest.blank("/api/v1/users/me", method="PATCH", headers=uploader_headers)
    request.environ.update(
        {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(50 * 1024 * 1024), "wsgi.input": io.BytesIO(b"{")}
    )

    response = testapp.do_request(request, status=413)

    assert_error(response, 413, "payload_too_large")


def test_a_chunked_json_body_over_the_limit_is_413(testapp, uploader_headers):
    body = json.dumps({"name": "x" * (2 * 1024 * 1024)}).encode()

    response = send_chunked(
        testapp, "/api/v1/users/me", body, "application/json", 413, method="PATCH", headers=uploader_headers
    )

    assert_error(response, 413, "payload_too_large")
