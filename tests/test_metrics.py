"""/metrics in Prometheus format: requests by route and status, upload counts and bytes,
file-store failures. Counters are process-wide, so each test compares before and after."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from app.storage.base import StorageError
from app.storage.local import LocalFileStore
from tests.helpers import png_bytes


def sample(client, name: str, **labels: str) -> float:
    """The value of one series on /metrics (0 when it does not exist yet)."""
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return item.value
    return 0.0


def test_metrics_are_prometheus_text(testapp):
    response = testapp.get("/metrics")

    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST  # one charset, the client's version
    assert "# TYPE depot_http_requests_total counter" in response.text
    assert "# TYPE depot_http_request_duration_seconds histogram" in response.text


def test_requests_are_counted_by_route_template_and_status(uploader_on):
    client, headers = uploader_on()
    detail = {"method": "GET", "route": "/api/v1/uploads/<uuid:upload_id>", "status": "404"}
    unknown = {"method": "GET", "route": "unmatched", "status": "404"}

    def counts():
        return [sample(client, "depot_http_requests_total", **labels) for labels in (detail, unknown)]

    before = counts()

    client.get("/api/v1/uploads/00000000-0000-0000-0000-000000000001", headers=headers, status=404)
    client.get("/api/v1/uploads/00000000-0000-0000-0000-000000000002", headers=headers, status=404)
    client.get("/no/such/path/abc", status=404)

    after = counts()
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)
    latency = sample(client, "depot_http_request_duration_seconds_count", **detail)
    assert latency >= 2


def test_unknown_methods_share_one_series(app, testapp):
    before = sample(testapp, "depot_http_requests_total", method="other", route="unmatched", status="405")

    for method in ("FOO", "BAR", "BAZ"):
        assert app.test_client().open("/healthz", method=method).status_code == 405

    assert sample(testapp, "depot_http_requests_total", method="other", route="unmatched", status="405") - before == 3
    assert 'method="FOO"' not in testapp.get("/metrics").text


def test_committed_uploads_and_their_bytes_are_counted(uploader_on):
    client, headers = uploader_on()
    before = sample(client, "depot_uploads_total"), sample(client, "depot_upload_bytes_total")

    client.post("/api/v1/uploads", upload_files=[("file", "a.png", png_bytes(1000))], headers=headers)
    client.post("/api/v1/uploads", upload_files=[("file", "b.png", png_bytes(3000))], headers=headers)
    client.post("/api/v1/uploads", upload_files=[("file", "c.exe", b"MZ")], headers=headers, status=415)

    after = sample(client, "depot_uploads_total"), sample(client, "depot_upload_bytes_total")
    assert (after[0] - before[0], after[1] - before[1]) == (2, 4000)


def test_file_store_failures_are_counted_by_operation(testapp, monkeypatch):
    before = sample(testapp, "depot_storage_errors_total", operation="check")

    def unwritable(_store):
        raise StorageError("EROFS")

    monkeypatch.setattr(LocalFileStore, "check", unwritable)
    testapp.get("/readyz", status=503)

    assert sample(testapp, "depot_storage_errors_total", operation="check") - before == 1


def test_resumable_uploads_in_progress_and_their_bytes(uploader_on):
    client, headers = uploader_on()
    tus = {**headers, "Tus-Resumable": "1.0.0"}
    data = png_bytes(5000)
    created = client.post(
        "/api/v1/tus", headers={**tus, "Upload-Length": "5000", "Upload-Metadata": "filename YS5wbmc="}
    )
    location = created.headers["Location"].split("localhost", 1)[-1]
    received_before = sample(client, "depot_resumable_upload_bytes_total")
    client.patch(
        location,
        data[:2000],
        headers={**tus, "Upload-Offset": "0"},
        content_type="application/offset+octet-stream",
        status=204,
    )

    assert sample(client, "depot_resumable_uploads_in_progress") == 1
    assert sample(client, "depot_resumable_upload_bytes_in_progress") == 2000
    assert sample(client, "depot_resumable_upload_bytes_total") - received_before == 2000

    client.patch(
        location,
        data[2000:],
        headers={**tus, "Upload-Offset": "2000"},
        content_type="application/offset+octet-stream",
        status=204,
    )

    assert sample(client, "depot_resumable_uploads_in_progress") == 0
    assert sample(client, "depot_resumable_upload_bytes_in_progress") == 0
