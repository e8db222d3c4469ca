"""Prometheus metrics: what /metrics reports, and the hooks that count requests.

Under gunicorn every worker is its own process, so counts are kept with prometheus_client's
multi-process mode when PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py sets it), and
/metrics adds up the files of every worker of this replica. Outside gunicorn (tests, the
development server) the process's own registry is used.

Route labels are URL rules (`/api/v1/uploads/<uuid:upload_id>`), never raw paths, so ids and
share-link tokens do not end up in metric names or multiply the series.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

# prometheus_client picks its storage when imported, from this same variable: decide once too.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

REQUESTS = Counter("depot_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "depot_http_request_duration_seconds",
    "Time to produce the response (streamed bodies excluded).",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
UPLOADS = Counter("depot_uploads_total", "Uploads committed.")
UPLOAD_BYTES = Counter("depot_upload_bytes_total", "Bytes of committed uploads.")
# Any other method token is counted as "other", so clients cannot create series at will.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STORAGE_ERRORS = Counter("depot_storage_errors_total", "File store operations that failed.", ["operation"])
# app/services/upload_slots.py: refusals per scope ("account", "address"), and Redis failures
# per operation ("acquire", "renew", "release"), during which each process counts on its own.
UPLOAD_SLOT_REFUSALS = Counter(
    "depot_upload_slot_refusals_total", "Uploads refused because a cap on concurrent uploads was reached.", ["scope"]
)
UPLOAD_SLOT_ERRORS = Counter(
    "depot_upload_slot_store_errors_total",
    "Upload-slot operations that failed in Redis (counted in the process instead).",
    ["operation"],
)


RESUMABLE_CREATED = Counter("depot_resumable_uploads_created_total", "Resumable (tus) uploads created.")
RESUMABLE_FINISHED = Counter("depot_resumable_uploads_finished_total", "Resumable (tus) uploads committed as uploads.")
RESUMABLE_BYTES = Counter("depot_resumable_upload_bytes_total", "Bytes received by tus PATCH requests, kept or not.")


def resumable_upload_created() -> None:
    RESUMABLE_CREATED.inc()


def resumable_upload_finished() -> None:
    RESUMABLE_FINISHED.inc()


def resumable_bytes_received(count: int) -> None:
    RESUMABLE_BYTES.inc(count)


def upload_committed(size: int) -> None:
    UPLOADS.inc()
    UPLOAD_BYTES.inc(size)


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    if started is not None:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        method = request.method if request.method in KNOWN_METHODS else "other"
        labels = (method, route, str(response.status_code))
        REQUESTS.labels(*labels).inc()
        LATENCY.labels(*labels).observe(time.perf_counter() - started)
    return response


class ResumableInProgress:
    """Resumable uploads unfinished and unexpired, and their bytes so far: read from the
    database at each scrape, so every replica reports the same figures for the whole service
    (a count kept in memory could not see uploads that other replicas created or that expired)."""

    def collect(self):
        from app.services.resumable_uploads import ResumableUploadService

        try:
            count, received = current_app.injector.get(ResumableUploadService).in_progress()
        except Exception:  # noqa: BLE001 (a scrape must not fail with the database; /readyz reports it)
            return
        yield GaugeMetricFamily(
            "depot_resumable_uploads_in_progress", "Resumable (tus) uploads unfinished and unexpired.", value=count
        )
        yield GaugeMetricFamily(
            "depot_resumable_upload_bytes_in_progress",
            "Bytes received and made durable by unfinished, unexpired resumable uploads.",
            value=received,
        )


def _exposition() -> Response:
    registry = CollectorRegistry()
    if MULTIPROCESS:
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessRegistry())
    registry.register(ResumableInProgress())
    # content_type, not mimetype: Werkzeug would append a second "; charset=utf-8".
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _ProcessRegistry:
    """This process's own registry, as a collector of the registry /metrics builds."""

    def collect(self):
        yield from REGISTRY.collect()


def register_metrics(app: Flask) -> None:
    app.before_request(_start_timer)
    app.after_request(_observe)
    app.add_url_rule("/metrics", "metrics", _exposition, methods=["GET"])
