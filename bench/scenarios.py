"""The measurements, each repeated `runs` times with the contenders alternating inside every
run, so a drift in the machine's speed touches all of them alike."""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

from sqlalchemy import create_engine, insert, select

from bench.measure import (
    RssSampler,
    curl_download,
    curl_upload,
    multipart_script,
    settle,
    upload_id,
    wrk,
)
from bench.servers import Depot

MIB = 1024 * 1024
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@dataclass
class Results:
    """Every sample, by (scenario, contender, parameter)."""

    samples: dict[tuple[str, str, str], list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, scenario: str, contender: str, param, value: float) -> None:
        self.samples[(scenario, contender, str(param))].append(value)

    def median(self, scenario: str, contender: str, param) -> float | None:
        values = self.samples.get((scenario, contender, str(param)))
        return median(values) if values else None


def make_file(folder: Path, size: int) -> Path:
    """A file of `size` random bytes that starts like a PNG (Depot checks the magic number)."""
    path = folder / f"payload-{size}.png"
    with open(path, "wb") as out:
        out.write(PNG_HEADER)
        left = size - len(PNG_HEADER)
        while left > 0:
            block = os.urandom(min(left, 8 * MIB))
            out.write(block)
            left -= len(block)
    return path


def _ok(transfer, expected: int) -> None:
    if transfer.status != expected:
        raise RuntimeError(f"expected HTTP {expected}, got {transfer.status}: {transfer.body[:300]}")


def upload_throughput(results: Results, depot: Depot, baselines, files: dict[int, Path], runs: int) -> None:
    """MB/s for multipart and raw uploads: Depot (hash, fsync, commit) against the baselines."""
    reply = depot.upload_dir.parent / "reply.json"
    for _run in range(runs):
        for size, path in files.items():
            contenders = {
                "depot multipart": lambda p=path: curl_upload(
                    f"{depot.url}/api/v1/uploads", p, multipart=True, headers=(depot.auth,), reply=reply
                ),
                "naive multipart": lambda p=path: curl_upload(f"{baselines.url}/naive", p, multipart=True),
                "depot raw PUT": lambda p=path: curl_upload(
                    f"{depot.url}/api/v1/raw-uploads/{p.name}", p, multipart=False, headers=(depot.auth,), reply=reply
                ),
                "raw-body ceiling": lambda p=path: curl_upload(f"{baselines.url}/raw", p, multipart=False),
            }
            for name, send in contenders.items():
                transfer = send()
                _ok(transfer, 201)
                results.add("upload", name, size, transfer.mb_per_s(size))
                if name.startswith("depot"):
                    _delete(depot, upload_id(transfer))
                _clear(baselines.files)
                settle()


def _delete(depot: Depot, identifier: str) -> None:
    import requests

    requests.delete(
        f"{depot.url}/api/v1/uploads/{identifier}", headers={"Authorization": f"Bearer {depot.token}"}, timeout=60
    ).raise_for_status()


def _clear(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()


def store_for_download(depot: Depot, path: Path) -> tuple[str, Path]:
    """Upload `path` once; its id and where Depot keeps it on disk (nginx serves that file)."""
    transfer = curl_upload(
        f"{depot.url}/api/v1/raw-uploads/{path.name}",
        path,
        multipart=False,
        headers=(depot.auth,),
        reply=depot.upload_dir.parent / "reply.json",
    )
    _ok(transfer, 201)
    identifier = upload_id(transfer)
    key = identifier.replace("-", "")
    return identifier, depot.upload_dir / "objects" / key[:2] / key


def download_throughput(results: Results, depot: Depot, nginx, identifier: str, on_disk: Path, runs: int) -> None:
    """MB/s for a whole download and for a Range of half the file, against nginx's sendfile."""
    size = on_disk.stat().st_size
    start, end = size // 4, size // 4 + size // 2 - 1
    url = f"{depot.url}/api/v1/uploads/{identifier}/content"
    for _run in range(runs):
        contenders = {
            "depot": (lambda: curl_download(url, (depot.auth,)), size),
            f"depot Range ({size // 2 // MIB} MiB)": (
                lambda: curl_download(url, (depot.auth, f"Range: bytes={start}-{end}")),
                size // 2,
            ),
            "nginx (sendfile)": (lambda: curl_download(f"{nginx.url}/files/{on_disk.name}"), size),
        }
        for name, (fetch, length) in contenders.items():
            transfer = fetch()
            _ok(transfer, 206 if "Range" in name else 200)
            results.add("download", name, size, transfer.mb_per_s(length))
            settle()


def memory(results: Results, depot: Depot, identifier: str, path: Path, runs: int) -> None:
    """Peak RSS growth of a Depot worker while it receives and while it sends `path`."""
    reply = depot.upload_dir.parent / "reply.json"
    for _run in range(runs):
        with RssSampler(depot.server.process.pid) as sampler:
            transfer = curl_upload(
                f"{depot.url}/api/v1/uploads", path, multipart=True, headers=(depot.auth,), reply=reply
            )
        _ok(transfer, 201)
        results.add("memory", "upload (multipart)", path.stat().st_size, sampler.growth_mib)
        _delete(depot, upload_id(transfer))
        with RssSampler(depot.server.process.pid) as sampler:
            _ok(curl_download(f"{depot.url}/api/v1/uploads/{identifier}/content", (depot.auth,)), 200)
        results.add("memory", "download", path.stat().st_size, sampler.growth_mib)
        settle()


def small_requests(results: Results, depot: Depot, baselines, concurrencies: list[int], seconds: float, runs: int):
    """Requests/s and latency of authenticated GET /users/me against a bare Flask JSON answer."""
    for _run in range(runs):
        for connections in concurrencies:
            for name, url, headers in (
                ("depot GET /api/v1/users/me", f"{depot.url}/api/v1/users/me", (depot.auth,)),
                ("bare Flask GET /hello", f"{baselines.url}/hello", ()),
            ):
                outcome = wrk(url, connections, seconds, headers)
                if outcome.errors:
                    raise RuntimeError(f"{name}: {outcome.errors} failed requests\n{outcome.output}")
                results.add("small rps", name, connections, outcome.requests_per_s)
                results.add("small p50", name, connections, outcome.p50_ms)
                results.add("small p99", name, connections, outcome.p99_ms)
                settle()


def small_uploads(results: Results, contenders: dict, work: Path, seconds: float, runs: int) -> None:
    """4 KiB multipart uploads from 8 connections: uploads/s, p50 and p99.

    `contenders` maps a name to (url, bearer token or None)."""
    body = PNG_HEADER + os.urandom(4096 - len(PNG_HEADER))
    scripts = {
        name: multipart_script(work / f"small-{uuid.uuid4().hex[:6]}.lua", body, token)
        for name, (_url, token) in contenders.items()
    }
    for _run in range(runs):
        for name, (url, _token) in contenders.items():
            outcome = wrk(url, 8, seconds, script=scripts[name])
            if outcome.errors:
                raise RuntimeError(f"{name}: {outcome.errors} failed uploads\n{outcome.output}")
            results.add("small uploads/s", name, 8, outcome.requests_per_s)
            results.add("small uploads p50", name, 8, outcome.p50_ms)
            results.add("small uploads p99", name, 8, outcome.p99_ms)
            settle()


def fill_uploads(depot: Depot, count: int) -> str:
    """Insert `count` upload rows owned by the admin; the cursor of the row at 90% of the listing."""
    from app.models import Upload, User
    from app.services.pagination import encode_cursor

    engine = create_engine(depot.database_url)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        owner = conn.execute(select(User.id)).scalar_one()
        rows = []
        for i in range(count):
            identifier = str(uuid.uuid4())
            rows.append(
                {
                    "id": identifier,
                    "owner_id": owner,
                    "storage_key": identifier.replace("-", ""),
                    "filename": f"file-{i}.png",
                    "content_type": "image/png",
                    "size": 4096,
                    "sha256": "0" * 64,
                    "visibility": "private",
                    "description": None,
                    "link_generation": 0,
                    "created_at": start + timedelta(seconds=i),
                    "updated_at": start + timedelta(seconds=i),
                }
            )
        conn.execute(insert(Upload.__table__), rows)
    engine.dispose()
    # Newest first: the row at 90% of the listing is the one inserted at 10%.
    deep = rows[count // 10]
    return encode_cursor(deep["created_at"], deep["id"])


def listing_growth(results: Results, depots: dict[int, tuple[Depot, str]], seconds: float, runs: int) -> None:
    """p50 of GET /api/v1/uploads (first page, and a page 90% deep) by number of rows."""
    for _run in range(runs):
        for rows, (depot, cursor) in depots.items():
            for page, query in (("first page", "per_page=20"), ("page at 90%", f"per_page=20&cursor={cursor}")):
                outcome = wrk(f"{depot.url}/api/v1/uploads?{query}", 1, seconds, (depot.auth,))
                if outcome.errors:
                    raise RuntimeError(f"listing: {outcome.errors} failed requests\n{outcome.output}")
                results.add("listing p50", page, rows, outcome.p50_ms)
                settle()
