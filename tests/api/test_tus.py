"""tus 1.0.0 resumable uploads over WebTest (app/api/tus.py, app/services/resumable_uploads.py):
the protocol's headers and statuses, the rules of `POST /uploads`, and the all-or-nothing
commit of the last byte. Every test runs on the local store and on S3 (moto, 5 MiB parts)."""

from __future__ import annotations

import base64
import hashlib
import io
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, update
from webtest import TestRequest

from app.extensions import db
from app.models import ResumableUpload, Upload
from app.models.base import utcnow
from app.services.storage_audit import StorageAuditService
from app.storage.base import FileStore
from app.storage.s3 import MIN_PART_SIZE
from app.transactions import manager
from tests.helpers import S3_BUCKET, S3_SETTINGS, png_bytes, sha256_hex

TUS = "/api/v1/tus"
V = {"Tus-Resumable": "1.0.0"}
OFFSET_TYPE = "application/offset+octet-stream"
MIB = 1024 * 1024


def metadata(**values: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items())


@pytest.fixture(params=["local", "s3"])
def store_settings(request) -> dict[str, str]:
    """The settings of each store in turn: the local folder, then S3 (moto) with 5 MiB parts."""
    if request.param == "local":
        return {}
    request.getfixturevalue("s3_client")
    return {**S3_SETTINGS, "S3_PART_SIZE_BYTES": str(MIN_PART_SIZE)}


@pytest.fixture
def app(app_factory, store_settings):
    """The app on the store of this run."""
    return app_factory(**store_settings)


@pytest.fixture
def uploader_on(uploader_on, store_settings):
    """conftest's uploader_on, on the store of this run."""
    return lambda **settings: uploader_on(**{**store_settings, **settings})


@pytest.fixture
def stored(request, store_settings, disk):
    """Everything in the store, whichever it is: stored() -> {"objects": [...], "staging": [...]}
    (on S3, every key in the bucket and every unfinished multipart upload)."""
    if not store_settings:
        return disk

    def listing() -> dict[str, list[str]]:
        s3 = request.getfixturevalue("s3_client")
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=S3_BUCKET).get("Contents", []))
        uploads = sorted(u["Key"] for u in s3.list_multipart_uploads(Bucket=S3_BUCKET).get("Uploads", []))
        return {
            "objects": [k.removeprefix("objects/") for k in keys if k.startswith("objects/")],
            "staging": [k for k in keys if not k.startswith("objects/")] + uploads,
        }

    return listing


@pytest.fixture
def create(testapp):
    def post(headers, length: int, status: int = 201, body: bytes | None = None, **meta: str):
        meta.setdefault("filename", "picture.png")
        all_headers = {**V, **headers, "Upload-Length": str(length), "Upload-Metadata": metadata(**meta)}
        if body is None:
            return testapp.post(TUS, headers=all_headers, status=status)
        return testapp.post(TUS, body, headers=all_headers, content_type=OFFSET_TYPE, status=status)

    return post


def patch(testapp, location: str, headers, offset: int, body: bytes, status: int = 204, **extra: str):
    return testapp.patch(
        location,
        body,
        headers={**V, **headers, "Upload-Offset": str(offset), **extra},
        content_type=OFFSET_TYPE,
        status=status,
    )


def path_of(response) -> str:
    return response.headers["Location"].split("localhost", 1)[-1]


def count(fetch, model) -> int:
    return fetch(lambda s: s.scalar(select(func.count()).select_from(model)))


def test_options_describes_the_server_without_a_token(testapp):
    response = testapp.options(TUS, status=204)

    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "termination",
        "checksum",
        "expiration",
    }
    assert int(response.headers["Tus-Max-Size"]) > 0
    assert "sha1" in response.headers["Tus-Checksum-Algorithm"].split(",")


def test_an_upload_sent_in_parts_becomes_one_upload_at_its_last_byte(testapp, uploader_headers, create, fetch):
    data = png_bytes(300_000)
    created = create(uploader_headers, len(data), description="holiday", tags="a,b", visibility="public")
    location = path_of(created)
    assert created.headers["Upload-Expires"]

    first = patch(testapp, location, uploader_headers, 0, data[:100_000])
    head = testapp.head(location, headers={**V, **uploader_headers}, status=200)
    assert first.headers["Upload-Offset"] == head.headers["Upload-Offset"] == "100000"
    assert head.headers["Upload-Length"] == str(len(data))
    assert "Depot-Upload-Id" not in head.headers
    assert count(fetch, Upload) == 0  # nothing visible before the last byte
    assert testapp.get("/api/v1/uploads", headers=uploader_headers).json["items"] == []

    last = patch(testapp, location, uploader_headers, 100_000, data[100_000:])

    upload_id = last.headers["Depot-Upload-Id"]
    assert last.headers["Upload-Offset"] == str(len(data))
    assert last.headers["Content-Location"] == f"http://localhost/api/v1/uploads/{upload_id}"
    stored = testapp.get(f"/api/v1/uploads/{upload_id}", headers=uploader_headers).json
    assert (stored["sha256"], stored["size"], stored["filename"]) == (sha256_hex(data), len(data), "picture.png")
    assert (stored["description"], stored["tags"], stored["visibility"]) == ("holiday", ["a", "b"], "public")
    content = testapp.get(f"/api/v1/uploads/{upload_id}/content", headers=uploader_headers)
    assert content.body == data
    later = testapp.head(location, headers={**V, **uploader_headers}, status=200)
    assert later.headers["Depot-Upload-Id"] == upload_id
    status = testapp.get(location, headers={**V, **uploader_headers}).json
    assert (status["offset"], status["length"], status["upload"]["id"]) == (len(data), len(data), upload_id)


def test_patches_of_uneven_sizes_across_parts_make_the_whole_file(testapp, uploader_headers, create, stored):
    data = png_bytes(17 * MIB + 3)
    location = path_of(create(uploader_headers, len(data)))
    offset = 0
    for size in [3 * MIB, 7 * MIB, 1, 5 * MIB - 1, 1, MIB + 7]:  # then the rest
        response = patch(testapp, location, uploader_headers, offset, data[offset : offset + size])
        offset += size
        assert response.headers["Upload-Offset"] == str(offset)

    last = patch(testapp, location, uploader_headers, offset, data[offset:])

    upload_id = last.headers["Depot-Upload-Id"]
    assert testapp.get(f"/api/v1/uploads/{upload_id}", headers=uploader_headers).json["sha256"] == sha256_hex(data)
    assert testapp.get(f"/api/v1/uploads/{upload_id}/content", headers=uploader_headers).body == data
    assert stored() == {"objects": [upload_id.replace("-", "")], "staging": []}


def test_creation_with_upload_takes_the_first_bytes(testapp, uploader_headers, create):
    data = png_bytes(5000)

    created = create(uploader_headers, len(data), body=data)

    assert created.headers["Upload-Offset"] == str(len(data))
    assert created.headers["Depot-Upload-Id"]


def test_a_patch_at_the_wrong_offset_is_409_and_changes_nothing(testapp, uploader_headers, create):
    data = png_bytes(10_000)
    location = path_of(create(uploader_headers, len(data)))
    patch(testapp, location, uploader_headers, 0, data[:4000])

    refused = patch(testapp, location, uploader_headers, 3000, data[3000:], status=409)

    assert refused.json["error"] == "conflict"
    assert testapp.head(location, headers={**V, **uploader_headers}).headers["Upload-Offset"] == "4000"


def test_only_the_creator_or_an_admin_sees_an_upload(testapp, uploader_headers, admin_headers, create, uploader_on):
    data = png_bytes(10_000)
    location = path_of(create(uploader_headers, len(data)))
    other_headers = _second_uploader(testapp, admin_headers)

    testapp.head(location, headers={**V, **other_headers}, status=404)
    patch(testapp, location, other_headers, 0, data, status=404)
    testapp.delete(location, headers={**V, **other_headers}, status=404)

    done = patch(testapp, location, admin_headers, 0, data)  # an admin may continue it
    upload = testapp.get(f"/api/v1/uploads/{done.headers['Depot-Upload-Id']}", headers=admin_headers).json
    assert upload["owner_id"] == testapp.get("/api/v1/users/me", headers=uploader_headers).json["id"]


def _second_uploader(testapp, admin_headers) -> dict[str, str]:
    testapp.post_json(
        "/api/v1/users",
        {"email": "other@example.com", "password": "another-long-password", "name": "Other", "roles": ["uploader"]},
        headers=admin_headers,
        status=201,
    )
    credentials = {"email": "other@example.com", "password": "another-long-password"}
    token = testapp.post_json("/api/v1/auth/token", credentials)
    return {"Authorization": f"Bearer {token.json['access_token']}"}


def test_a_reader_may_not_create(testapp, admin_headers, create):
    testapp.post_json(
        "/api/v1/users",
        {"email": "reader@example.com", "password": "another-long-password", "name": "Reader", "roles": ["user"]},
        headers=admin_headers,
        status=201,
    )
    token = testapp.post_json(
        "/api/v1/auth/token", {"email": "reader@example.com", "password": "another-long-password"}
    )

    create({"Authorization": f"Bearer {token.json['access_token']}"}, 100, status=403)


def test_requests_need_a_token_and_the_tus_version(testapp, uploader_headers):
    testapp.post(TUS, headers={**V, "Upload-Length": "10"}, status=401)
    refused = testapp.post(TUS, headers={**uploader_headers, "Upload-Length": "10"}, status=412)

    assert refused.headers["Tus-Version"] == "1.0.0"


@pytest.mark.parametrize(
    ("meta", "status"),
    [
        ({"filename": "script.exe"}, 415),
        ({"filename": "notes.txt", "filetype": "image/png"}, 415),
        ({"filename": "a.png", "visibility": "everyone"}, 422),
        ({"filename": "a.png", "tags": "bad tag!"}, 422),
    ],
)
def test_names_types_and_metadata_are_checked_at_creation(uploader_headers, create, fetch, meta, status):
    create(uploader_headers, 100, status=status, **meta)

    assert count(fetch, ResumableUpload) == 0


def test_metadata_without_a_filename_is_422_and_uppys_name_is_one(uploader_headers, create, testapp):
    headers = {**V, **uploader_headers, "Upload-Length": "100"}
    testapp.post(TUS, headers={**headers, "Upload-Metadata": metadata(filetype="image/png")}, status=422)
    created = testapp.post(
        TUS, headers={**headers, "Upload-Metadata": metadata(name="x.png", type="image/png", relativePath="")}
    )

    assert created.status_int == 201


def test_bad_metadata_encoding_is_400(testapp, uploader_headers):
    testapp.post(
        TUS, headers={**V, **uploader_headers, "Upload-Length": "10", "Upload-Metadata": "filename !!"}, status=400
    )


def test_a_length_over_the_limit_or_the_quota_is_413(uploader_on):
    client, headers = uploader_on(MAX_UPLOAD_BYTES="1000", USER_QUOTA_BYTES="1500")
    base = {**V, **headers, "Upload-Metadata": metadata(filename="a.png")}

    client.post(TUS, headers={**base, "Upload-Length": "1001"}, status=413)
    client.post(TUS, headers={**base, "Upload-Length": "1000"}, status=201)
    # The first upload, unfinished, holds 1000 of the 1500 bytes: neither a second resumable
    # upload nor an ordinary one may take more than the 500 left.
    client.post(TUS, headers={**base, "Upload-Length": "600"}, status=413)
    client.put("/api/v1/uploads/b.png", png_bytes(600), headers=headers, content_type="image/png", status=413)
    client.post(TUS, headers={**base, "Upload-Length": "500"}, status=201)


def test_leading_bytes_that_contradict_the_type_end_the_upload_with_415(testapp, uploader_headers, create, fetch):
    location = path_of(create(uploader_headers, 20_000))

    patch(testapp, location, uploader_headers, 0, b"not a png at all" * 1000, status=415)

    assert count(fetch, ResumableUpload) == 0
    testapp.head(location, headers={**V, **uploader_headers}, status=404)


def test_a_matching_checksum_keeps_the_part_and_a_wrong_one_is_460(testapp, uploader_headers, create):
    data = png_bytes(20_000)
    location = path_of(create(uploader_headers, len(data)))
    good = base64.b64encode(hashlib.sha1(data[:9000], usedforsecurity=False).digest()).decode()
    wrong = base64.b64encode(hashlib.sha1(b"other", usedforsecurity=False).digest()).decode()

    patch(testapp, location, uploader_headers, 0, data[:9000], **{"Upload-Checksum": f"sha1 {good}"})
    refused = patch(
        testapp, location, uploader_headers, 9000, data[9000:], status=460, **{"Upload-Checksum": f"sha1 {wrong}"}
    )

    assert refused.json["error"] == "checksum_mismatch"
    assert testapp.head(location, headers={**V, **uploader_headers}).headers["Upload-Offset"] == "9000"
    patch(testapp, location, uploader_headers, 9000, data[9000:])


def test_an_unknown_checksum_algorithm_is_422(testapp, uploader_headers, create):
    location = path_of(create(uploader_headers, 100))

    patch(testapp, location, uploader_headers, 0, png_bytes(100), status=422, **{"Upload-Checksum": "crc99 AAAA"})


def test_a_whole_file_digest_that_differs_removes_the_upload(testapp, uploader_headers, create, fetch):
    data = png_bytes(3000)
    location = path_of(create(uploader_headers, len(data), sha256="0" * 64))

    patch(testapp, location, uploader_headers, 0, data, status=422)

    assert (count(fetch, Upload), count(fetch, ResumableUpload)) == (0, 0)


def test_a_body_past_the_length_is_413_and_keeps_nothing_past_it(testapp, uploader_headers, create, fetch):
    location = path_of(create(uploader_headers, 1000))

    patch(testapp, location, uploader_headers, 0, png_bytes(1500), status=413)

    assert count(fetch, Upload) == 0


def test_termination_removes_the_row_and_its_bytes(testapp, uploader_headers, create, fetch, stored):
    location = path_of(create(uploader_headers, 12 * MIB))
    patch(testapp, location, uploader_headers, 0, png_bytes(12 * MIB)[: 7 * MIB + 5])  # past a part, on S3
    assert stored()["staging"] != []

    testapp.delete(location, headers={**V, **uploader_headers}, status=204)

    assert count(fetch, ResumableUpload) == 0
    assert stored() == {"objects": [], "staging": []}
    testapp.head(location, headers={**V, **uploader_headers}, status=404)


def test_an_expired_upload_answers_410(testapp, uploader_headers, create, app):
    location = path_of(create(uploader_headers, 10_000))
    with app.app_context(), manager:
        db.session.execute(update(ResumableUpload).values(expires_at=utcnow() - timedelta(seconds=1)))

    testapp.head(location, headers={**V, **uploader_headers}, status=410)
    patch(testapp, location, uploader_headers, 0, png_bytes(100), status=410)


def test_a_patch_while_another_holds_the_upload_is_423(testapp, uploader_headers, create, app):
    location = path_of(create(uploader_headers, 10_000))
    with app.app_context(), manager:
        db.session.execute(
            update(ResumableUpload).values(lock_token="x" * 32, locked_until=utcnow() + timedelta(seconds=30))
        )

    patch(testapp, location, uploader_headers, 0, png_bytes(100), status=423)


def test_a_lease_left_by_a_dead_request_runs_out(testapp, uploader_headers, create, app):
    location = path_of(create(uploader_headers, 100))
    with app.app_context(), manager:
        db.session.execute(
            update(ResumableUpload).values(lock_token="x" * 32, locked_until=utcnow() - timedelta(seconds=1))
        )

    assert patch(testapp, location, uploader_headers, 0, png_bytes(100)).headers["Depot-Upload-Id"]


def test_errors_carry_tus_resumable(testapp, uploader_headers):
    missing = testapp.head(f"{TUS}/{'0' * 32}", headers={**V, **uploader_headers}, status=404)

    assert missing.headers["Tus-Resumable"] == "1.0.0"


class _StallingBody(io.RawIOBase):
    """A PATCH body that sends `data`, then stalls: the idle timeout fires (TimeoutError)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        count = self._data.readinto(buffer)
        if not count:
            raise TimeoutError("timed out")
        return count


def test_a_patch_that_stalls_ends_with_408_and_keeps_what_arrived(testapp, uploader_headers, create):
    data = png_bytes(50_000)
    location = path_of(create(uploader_headers, 100_000))
    request = TestRequest.blank(
        location,
        method="PATCH",
        headers={**V, **uploader_headers, "Upload-Offset": "0", "Content-Type": OFFSET_TYPE},
    )
    request.environ["CONTENT_LENGTH"] = "100000"
    request.environ["wsgi.input"] = _StallingBody(data)  # one read per call, as gunicorn's

    stalled = testapp.do_request(request, status=408)

    assert stalled.json["error"] == "body_timeout"
    assert testapp.head(location, headers={**V, **uploader_headers}).headers["Upload-Offset"] == "50000"


def test_storage_check_counts_an_unfinished_upload_once_and_repairs_abandoned_bytes(
    testapp, uploader_headers, create, app, stored
):
    location = path_of(create(uploader_headers, 12 * MIB))
    patch(testapp, location, uploader_headers, 0, png_bytes(12 * MIB)[: 6 * MIB + 1])  # a part and a segment, on S3
    with app.app_context(), manager:
        partial_id = db.session.scalar(select(ResumableUpload.partial_id))
    with app.app_context():
        audit = app.injector.get(StorageAuditService)
        in_progress = audit.check(grace_seconds=0)
        with manager:  # the row is lost (say, restored from an older backup); its bytes stay
            db.session.execute(delete(ResumableUpload))
        repaired = audit.check(grace_seconds=0, repair=True)

    assert (in_progress.resumable, in_progress.stale_staged, in_progress.consistent) == ([partial_id], [], True)
    assert (repaired.stale_staged, repaired.removed, repaired.consistent) == ([partial_id], [partial_id], True)
    assert stored() == {"objects": [], "staging": []}


def test_a_patch_that_lost_its_lease_while_stalled_writes_nothing_more(
    testapp, uploader_headers, create, app, monkeypatch
):
    import app.services.resumable_uploads as resumable

    monkeypatch.setattr(resumable, "RENEW_SECONDS", 0)  # renew before every block
    data = png_bytes(200_000)
    location = path_of(create(uploader_headers, len(data)))
    taken_over, store_work_after = [], []
    store = app.injector.get(FileStore)
    open_partial = store.open_partial

    class Watched:
        """The store's writer, noting any write or sync once the upload was taken over."""

        def __init__(self, writer) -> None:
            self._writer = writer

        def write(self, chunk) -> None:
            store_work_after.extend(["write"] if taken_over else [])
            self._writer.write(chunk)

        def sync(self) -> int:
            store_work_after.extend(["sync"] if taken_over else [])
            return self._writer.sync()

        def __getattr__(self, name):
            return getattr(self._writer, name)

    monkeypatch.setattr(store, "open_partial", lambda *args: Watched(open_partial(*args)))

    class TakenOverMidway(io.RawIOBase):
        """Sends the first 64 KiB; while the client stalls, another request takes the upload."""

        def __init__(self) -> None:
            self._data, self._reads = io.BytesIO(data), 0

        def readable(self):
            return True

        def readinto(self, buffer):
            self._reads += 1
            if self._reads == 2:
                taken_over.append(True)
                with app.app_context(), manager:
                    db.session.execute(
                        update(ResumableUpload).values(
                            lock_token="y" * 32, locked_until=utcnow() + timedelta(seconds=30)
                        )
                    )
            return self._data.readinto(buffer)

    request = TestRequest.blank(
        location, method="PATCH", headers={**V, **uploader_headers, "Upload-Offset": "0", "Content-Type": OFFSET_TYPE}
    )
    request.environ["CONTENT_LENGTH"] = str(len(data))
    request.environ["wsgi.input"] = TakenOverMidway()

    testapp.do_request(request, status=423)

    with app.app_context():
        row = db.session.scalar(select(ResumableUpload))
    assert (row.lock_token, row.offset) == ("y" * 32, 0)  # the new holder's, and nothing recorded
    assert store_work_after == []  # not even a sync of what it had written before


def test_storage_check_repair_removes_expired_uploads_and_their_bytes(testapp, uploader_headers, create, app, stored):
    location = path_of(create(uploader_headers, 12 * MIB))
    patch(testapp, location, uploader_headers, 0, png_bytes(12 * MIB)[: 6 * MIB + 1])
    with app.app_context(), manager:
        upload_id = db.session.scalar(select(ResumableUpload.id))
        db.session.execute(update(ResumableUpload).values(expires_at=utcnow() - timedelta(seconds=1)))
    with app.app_context():
        audit = app.injector.get(StorageAuditService)
        found = audit.check(grace_seconds=0)
        repaired = audit.check(grace_seconds=0, repair=True)
        rows = db.session.scalar(select(func.count()).select_from(ResumableUpload))

    assert (found.expired_resumable, found.consistent) == ([upload_id], False)
    assert upload_id in repaired.removed and repaired.consistent
    assert rows == 0
    assert stored() == {"objects": [], "staging": []}
